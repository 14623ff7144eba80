// Stream mode against a coordinator in its own process (standing in for Stream's service):
// signing in with a token or a token URL, "Remember me" through the real keychain across a
// restart, participants from the coordinator's events, and the coordinator going away and
// coming back.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { promisify } from 'node:util';

import { StandaloneCoordinator } from './standalone-coordinator.mjs';
import { connected, onScreen } from './flows.mjs';
import { waitFor, withApp } from './webdriver.mjs';

const run = promisify(execFile);
let coordinator;

before(async () => { coordinator = await StandaloneCoordinator.start(); });
after(async () => { await coordinator?.stop(); });
// Whatever a failed test left in the keychain must not sign in the next test's app (a remembered
// sign-in skips the start screen, and one failure then failed the two tests after it).
afterEach(async () => {
  await run('secret-tool', ['clear', 'service', 'dev.confab.desktop']).catch(() => {});
});

const state = (app) => app.attribute('#connection', 'data-state');
async function chooseStream(app) {
  await app.click('#backend-stream');
  await app.fill('#stream-api-key', coordinator.apiKey);
  await app.fill('#stream-base-url', coordinator.baseURL);
}

/** Every file under the app's data, config and cache folders whose bytes contain `needle`. */
async function filesContaining(needle) {
  const found = [];
  const walk = async (dir) => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(file);
      else if (entry.isFile() && (await readFile(file).catch(() => Buffer.alloc(0))).includes(needle)) found.push(file);
    }
  };
  for (const root of [process.env.XDG_DATA_HOME, process.env.XDG_CONFIG_HOME, process.env.XDG_CACHE_HOME]) {
    if (root) await walk(root);
  }
  return found;
}

async function keychainHolds(needle) {
  const { stdout } = await run('secret-tool', ['search', '--all', 'service', 'dev.confab.desktop']).catch((e) => ({ stdout: e.stdout ?? '' }));
  return stdout.includes(needle);
}

test('remember me keeps a Stream sign-in in the keychain across a restart, and sign out leaves nothing behind', async (t) => {
  assert.ok(process.env.XDG_CONFIG_HOME, 'run under scripts/test-session.sh, which gives the app throwaway folders');
  const token = await coordinator.token('alice');
  let exportFile;
  await withApp(t, async (app) => {
    await chooseStream(app);
    await app.screenshot('screen-start-stream');
    await app.fill('#sign-in-user', 'alice');
    await app.fill('#sign-in-name', 'Alice Stream');
    await app.fill('#sign-in-token', token);
    await app.click('#remember-me');
    await app.click('#sign-in-form button[type="submit"]');
    await connected(app);
    await onScreen(app, 'lobby');
    assert.equal(await app.text('#mode'), 'Stream');
    assert.equal(await app.attribute('#remember-result', 'data-stored'), 'true', await app.text('#remember-result'));

    // Signed in, with a token in use: the diagnostics export holds none of it.
    await app.click('#open-diagnostics');
    await app.click('#export-diagnostics');
    exportFile = await waitFor('the export', () => app.attribute('#export-result', 'data-path'));
    const exported = await readFile(exportFile, 'utf8');
    assert.ok(JSON.parse(exported).connection_timeline.some((e) => e.state === 'connected'));
    assert.ok(!exported.includes(token), 'the export holds no token');
    assert.doesNotMatch(exported, /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/, 'nor anything shaped like one');
    await app.click('#open-diagnostics');
  });
  // A positive control for the search below: it finds a file the app is known to write.
  assert.ok((await filesContaining('"connection_timeline"')).includes(exportFile), 'the file search covers the app folders');
  assert.ok(await keychainHolds(token), 'the token is in the keychain');
  assert.deepEqual(await filesContaining(token), [], 'and in no file');

  await withApp(t, async (app) => {
    // Signed in from the keychain at start, with the Stream settings shown.
    await connected(app);
    assert.equal(await app.attribute('#app', 'data-screen'), 'lobby');
    assert.equal(await app.text('#who'), 'Alice Stream');
    assert.equal(await app.text('#remember-result'), 'Signed in from the keychain.');
    await app.click('#open-diagnostics');
    await waitFor('the inspector', async () => (await app.text('#token-inspector dd[data-field="source"]')) === 'static token');
    await app.click('#open-diagnostics');

    await app.click('#sign-out');
    await waitFor('signed out', async () => (await state(app)) === 'idle');
    assert.equal(await app.attribute('#stream-api-key', 'value'), coordinator.apiKey);
  }, { shot: 'remember-me-after-restart' });
  assert.equal(await keychainHolds(token), false, 'sign out removed it from the keychain');
  assert.equal(await keychainHolds('alice'), false, 'and everything else about the sign-in');
  assert.deepEqual(await filesContaining(token), [], 'no file holds the token');

  // A third start: nobody is signed in.
  await withApp(t, async (app) => {
    assert.equal(await app.attribute('#app', 'data-screen'), 'start');
    assert.equal(await state(app), 'idle');
  }, { shot: 'remember-me-after-sign-out' });
});

test('a token URL signs in through the provider and refreshes an expired token; a bad token is refused in plain words', async (t) => {
  await withApp(t, async (app) => {
    await chooseStream(app);
    await app.fill('#sign-in-user', 'bob');
    await app.fill('#sign-in-token', 'not-a-jwt');
    await app.click('#sign-in-form button[type="submit"]');
    await waitFor('the refusal', async () => /The token cannot be used: .*not a JWT/.test(await app.text('#session-error')));

    // A token signed with another secret: the coordinator rejects its signature.
    const forged = (await coordinator.token('bob')).replace(/\.[^.]+$/, '.c2lnbmVkLWVsc2V3aGVyZQ');
    await app.fill('#sign-in-token', forged);
    await app.click('#sign-in-form button[type="submit"]');
    await waitFor('the rejection', async () => (await app.text('#session-error')) === 'The token was rejected. Ask for a new one.');

    await app.fill('#sign-in-token', '');
    await app.fill('#sign-in-token-url', `${new URL(coordinator.baseURL).origin}/api/token`);
    await app.click('#sign-in-form button[type="submit"]');
    await connected(app);
    await app.click('#open-diagnostics');
    await waitFor('the inspector', async () => (await app.text('#token-inspector dd[data-field="source"]')) === 'token URL (provider)');
    assert.equal(await app.text('#token-inspector dd[data-field="provider-calls"]'), '1');
    assert.equal(await app.text('#token-inspector dd[data-field="user"]'), 'bob');

    // The coordinator declares bob's token expired: the status says the app is refreshing it,
    // the provider is asked again, and the app is connected again by itself.
    await coordinator.fault({ action: 'expire_tokens', user_id: 'bob' });
    await waitFor('refreshing in the timeline', async () => (await app.evalAsync(
      `return Array.from(document.querySelectorAll('#timeline li')).some((li) => li.dataset.state === 'refreshing');`)));
    await connected(app, { timeoutMs: 20000 });
    await waitFor('a second provider call', async () =>
      Number(await app.text('#token-inspector dd[data-field="provider-calls"]')) >= 2);
  });
});

test('the call screen lists participants from events, and the status follows the coordinator stopping and starting', async (t) => {
  const bobToken = await coordinator.token('bob');
  await withApp(t, async (app) => {
    await chooseStream(app);
    await app.fill('#sign-in-user', 'carol');
    await app.fill('#sign-in-name', 'Carol');
    await app.fill('#sign-in-token', await coordinator.token('carol'));
    await app.click('#sign-in-form button[type="submit"]');
    await connected(app);

    await app.fill('#join-call', 'standup');
    await app.click('#join-form button[type="submit"]');
    await onScreen(app, 'call');
    assert.equal(await app.text('#participant-count'), '1');

    // Bob joins from elsewhere: the coordinator's event adds him.
    await coordinator.rest('POST', '/call/default/standup/join', bobToken, { create: false });
    await waitFor('bob in the list', async () => (await app.text('#participant-count')) === '2');
    const names = await app.evalAsync(`return Array.from(document.querySelectorAll('#participants li')).map((li) => li.textContent);`);
    assert.deepEqual(names.sort(), ['Carol (you)', 'bob']);
    await app.screenshot('screen-call');
    await coordinator.rest('POST', '/call/default/standup/leave', bobToken, {});
    await waitFor('bob gone', async () => (await app.text('#participant-count')) === '1');

    // The coordinator goes away: the status says so and counts down to the next try...
    await coordinator.kill();
    const seen = await waitFor('reconnecting', async () => {
      const s = await state(app);
      return (s === 'reconnecting' || s === 'offline') && s;
    });
    assert.match(await app.text('#connection'), /(Reconnecting|Offline: coordinator unreachable, retrying) \(attempt \d+, next in \d+\.\d s\)/);
    await app.screenshot('status-reconnecting');
    // ...and when it is back on the same address, the app is connected again by itself.
    await coordinator.serve();
    await connected(app, { timeoutMs: 30000 });
    const timeline = await app.evalAsync(`return Array.from(document.querySelectorAll('#timeline li')).map((li) => li.dataset.state);`);
    assert.ok(timeline.includes(seen) && timeline.at(-1) === 'connected', String(timeline));
    await app.click('#leave-call');
    await app.click('#sign-out');
  });
});

test('without a keychain the app says so and keeps the sign-in in memory only', async (t) => {
  await withApp(t, async (app) => {
    await waitFor('the note', async () => (await app.attribute('#keychain-note', 'data-keychain')) === 'unavailable');
    assert.match(await app.text('#keychain-note'), /No keychain is available on this computer/);
    assert.equal(await app.attribute('#remember-me', 'disabled'), 'true');
    await app.fill('#sign-in-user', 'dana');
    await app.click('#sign-in-form button[type="submit"]');
    await connected(app);
  }, { env: { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/confab-no-bus' } });
});
