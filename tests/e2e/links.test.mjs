// confab:// links (#18): a second launch hands its link to the window already open and exits;
// bad links show the page's plain message and change nothing; one app hosts for the network
// (on a second loopback address, never a real one) and a second opens its invite link and
// lands in the host's lobby as a guest.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { test } from 'node:test';

import { connected, onScreen } from './flows.mjs';
import { StandaloneCoordinator } from './standalone-coordinator.mjs';
import { freePort, repoRoot, waitFor, withApp } from './webdriver.mjs';

const application = process.env.CONFAB_APP ?? path.join(repoRoot, 'target', 'debug', 'confab');

/** Launches the app again with `link`, as a desktop would; resolves to its exit code. */
function secondLaunch(instance, link) {
  const child = spawn(application, [link], {
    env: { ...process.env, CONFAB_INSTANCE: instance },
    stdio: 'ignore',
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the second launch with ${link} was still running after 15 s`));
    }, 15000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

const banner = (app) => app.text('#session-error');

test('a second launch hands its confab://watch link to the open window, which watches; the second process exits', async (t) => {
  const coordinator = await StandaloneCoordinator.start();
  const bin = process.env.CONFAB_BROADCAST
    ?? path.join(path.dirname(process.env.CONFAB_COORDINATOR ?? 'target/debug/confab-coordinator'), 'confab-broadcast');
  const broadcaster = spawn(bin, ['--call', 'livestream:demo', '--base-url', coordinator.baseURL,
    '--data-dir', coordinator.dataDir, '--size', '640x360', '--seconds', '120'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const instance = `links${process.pid}`;
  try {
    for await (const line of readline.createInterface({ input: broadcaster.stdout })) {
      if (JSON.parse(line).state === 'live') break;
    }
    const host = new URL(coordinator.baseURL).host;
    const token = await coordinator.callToken('viewer', ['livestream:demo']);
    const otherToken = await coordinator.callToken('viewer', ['livestream:other']);
    const watchLink = (t) => `confab://watch/livestream/demo?host=${host}&key=${coordinator.apiKey}&token=${t}`;
    await withApp(t, async (app) => {
      // Bad links: the banner says why, the window stays where it was.
      const bad = [
        ['confab://call/default/standup', /does not do/],
        ['confab://join/default/no:colons', /cannot exist/],
        ['confab://join/default/standup?junk=1', /does not understand/],
        [watchLink(otherToken), /it is for another call/],
        [`confab://watch/livestream/demo?host=127.0.0.1:${await freePort()}&key=${coordinator.apiKey}`, /Could not reach the coordinator/],
      ];
      for (const [link, message] of bad) {
        assert.equal(await secondLaunch(instance, link), 0, link);
        await waitFor(`the banner for ${link}`, async () => message.test(await banner(app)), { timeoutMs: 10000 });
        assert.equal(await app.attribute('#app', 'data-screen'), 'start', link);
        await app.evalAsync(`document.getElementById('session-error').textContent = ''; return true;`);
      }
      await app.screenshot('links-bad-link-banner');

      // The good one: the second process exits and this window watches.
      assert.equal(await secondLaunch(instance, watchLink(token)), 0);
      await onScreen(app, 'watch', { timeoutMs: 10000 });
      assert.equal(await app.text('#watch-screen-title'), 'Livestream demo');
      await waitFor('live', async () => (await app.text('#watch-live')) === 'Live', { timeoutMs: 10000 });
      assert.equal(await banner(app), '');
    }, { env: { CONFAB_INSTANCE: instance }, shot: 'links-watch' });
  } finally {
    broadcaster.kill('SIGKILL');
    await coordinator.stop();
  }
});

test('one app hosts for the network on 127.0.0.2; a second opens its invite link and joins the call as a guest', async (t) => {
  await withApp(t, async (host) => {
    await host.fill('#sign-in-user', 'hana');
    await host.fill('#sign-in-name', 'Hana Host');
    await host.click('#sign-in-form button[type="submit"]');
    await connected(host);
    await host.fill('#join-call', 'standup');
    await host.click('#join-form button[type="submit"]');
    await onScreen(host, 'call');
    assert.equal(await host.attribute('#hosting-invite', 'hidden'), 'true', 'hosting starts off');

    await host.click('#hosting-on');
    await waitFor('hosting on', async () => (await host.attribute('#hosting', 'data-state')) === 'on');
    const invite = await host.evalAsync(`return document.getElementById('hosting-link').value;`);
    assert.match(invite, /^confab:\/\/join\/default\/standup\?host=127\.0\.0\.2:\d+&key=\w+$/);
    const qr = await host.evalAsync(`return document.getElementById('hosting-qr').src;`);
    assert.match(qr, /^data:image\/svg\+xml;base64,/);
    assert.match(await host.text('#hosting'), /anyone on your network who has the link/);
    await host.screenshot('hosting-on');
    const lan = `http://${new URL(invite.replace('confab://', 'http://')).searchParams.get('host')}/video`;

    await withApp(t, async (guest) => {
      await waitFor('the invite', async () => /You are invited to default:standup on the Confab at 127\.0\.0\.2:\d+/.test(await guest.text('#invite-note')));
      await guest.fill('#guest-name', 'Gus Guest');
      await guest.click('#guest-form button[type="submit"]');
      await onScreen(guest, 'lobby');
      await connected(guest);
      assert.match(await guest.text('#who'), /Gus Guest \(guest\)/);
      assert.equal(await guest.evalAsync(`return document.getElementById('join-call').value;`), 'standup');
      await guest.click('#join-form button[type="submit"]');
      await onScreen(guest, 'call');
      await waitFor('both in the guest\'s call', async () => (await guest.text('#participant-count')) === '2', { timeoutMs: 10000 });
      await waitFor('the guest in the host\'s call', async () => (await host.text('#participants')).includes('Gus Guest'), { timeoutMs: 10000 });
    }, { args: [invite], shot: 'hosting-guest' });

    // Off: the network listener closes.
    await host.click('#hosting-on');
    await waitFor('hosting off', async () => (await host.attribute('#hosting', 'data-state')) === 'off');
    await assert.rejects(fetch(`${lan}/`, { signal: AbortSignal.timeout(3000) }));
  }, { env: { CONFAB_HOST_ADDRESS: '127.0.0.2' }, shot: 'hosting-host' });
});
