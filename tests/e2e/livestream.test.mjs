// Livestream media (#8): one app instance hosts in local mode and goes live with the fake
// camera; a second instance, anonymous, plays the broadcast with hls.js. The video advances
// and a frame read back from the page shows the pattern's colours.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SAMPLE_FRAME, goLive, watchAnonymously } from './flows.mjs';
import { waitFor, withApp } from './webdriver.mjs';

const BARS = [[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16], [235, 16, 235], [235, 16, 16], [16, 16, 235]];

test('a host goes live with the fake camera and a second, anonymous instance plays it', async (t) => {
  await withApp(t, async (host) => {
    const where = await goLive(host, 'launch');
    await host.screenshot('screen-call-broadcasting');
    await withApp(t, async (viewer) => {
      await watchAnonymously(viewer, where, 'launch');
      // Live first: frames from a call still in backstage would mean the wrong thing played.
      await waitFor('live', async () => (await viewer.text('#watch-live')) === 'Live', { timeoutMs: 10000 });
      await waitFor('the video to play', async () => Number(await viewer.evalAsync(`return document.getElementById('player').currentTime;`)) > 0.5, { timeoutMs: 20000 });
      const first = await viewer.evalAsync(`return document.getElementById('player').currentTime;`);
      await waitFor('the video to advance', async () => Number(await viewer.evalAsync(`return document.getElementById('player').currentTime;`)) > first + 1, { timeoutMs: 10000 });

      const frame = await viewer.evalAsync(SAMPLE_FRAME);
      assert.equal(frame.width, 1280);
      frame.bars.forEach((px, i) => px.forEach((c, k) =>
        assert.ok(Math.abs(c - BARS[i][k]) <= 40, `bar ${i} channel ${k}: ${px} vs ${BARS[i]}`)));
      // The time code reads back as a time from the last minute (the pattern's own clock).
      assert.ok(frame.now - frame.renderedAt >= 0 && frame.now - frame.renderedAt < 60000, JSON.stringify(frame));
      assert.equal(await viewer.text('#watch-live'), 'Live');
      await waitFor('the viewer counted', async () => (await viewer.text('#watch-viewers')) === '1 watching', { timeoutMs: 8000 });
      await viewer.screenshot('screen-watch-playing');

      // The host stops: the viewer is told the stream has ended.
      await host.click('#stop-live');
      await waitFor('the host back in backstage', async () => (await host.text('#call-live')) === 'Backstage', { timeoutMs: 15000 });
      await waitFor('the end', async () => (await viewer.text('#player-state')) === 'The stream has ended.', { timeoutMs: 10000 });
      assert.equal(await host.text('#broadcast-status'), 'The broadcast has ended.');
    }, { shot: 'livestream-viewer' });
  }, { shot: 'livestream-host' });
});

test('`confab-broadcast` feeds a viewer; when its playlist stops growing the viewer shows reconnecting, then the end', async (t) => {
  const { spawn } = await import('node:child_process');
  const readline = await import('node:readline');
  const path = await import('node:path');
  const { StandaloneCoordinator } = await import('./standalone-coordinator.mjs');
  const coordinator = await StandaloneCoordinator.start();
  // The synthetic broadcaster is confab-media's binary, built next to the coordinator's.
  const bin = process.env.CONFAB_BROADCAST
    ?? path.join(path.dirname(process.env.CONFAB_COORDINATOR ?? 'target/debug/confab-coordinator'), 'confab-broadcast');
  const broadcaster = spawn(bin, ['--call', 'livestream:demo', '--base-url', coordinator.baseURL,
    '--data-dir', coordinator.dataDir, '--size', '640x360', '--seconds', '120'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    // The command prints its status as JSON lines; wait for the first uploaded segment.
    for await (const line of readline.createInterface({ input: broadcaster.stdout })) {
      if (JSON.parse(line).state === 'live') break;
    }
    await withApp(t, async (viewer) => {
      await watchAnonymously(viewer, { baseURL: coordinator.baseURL, apiKey: coordinator.apiKey }, 'demo');
      await waitFor('live', async () => (await viewer.text('#watch-live')) === 'Live', { timeoutMs: 10000 });
      await waitFor('the video to play', async () => Number(await viewer.evalAsync(`return document.getElementById('player').currentTime;`)) > 0.5, { timeoutMs: 20000 });
      const frame = await viewer.evalAsync(SAMPLE_FRAME);
      assert.deepEqual([frame.width, frame.height], [640, 360]);

      // The broadcaster dies without ending the broadcast: no new segments.
      broadcaster.kill('SIGKILL');
      await waitFor('reconnecting', async () => (await viewer.text('#player-state')) === 'Reconnecting…', { timeoutMs: 15000 });
      await viewer.screenshot('viewer-reconnecting');
      // The host (here, the test) ends it: the viewer hears it on its next check.
      await coordinator.rest('POST', '/call/livestream/demo/stop_broadcasting', await coordinator.token('broadcaster'), {});
      await waitFor('the end', async () => (await viewer.text('#player-state')) === 'The stream has ended.', { timeoutMs: 10000 });
    });
  } finally {
    broadcaster.kill('SIGKILL');
    await coordinator.stop();
  }
});
