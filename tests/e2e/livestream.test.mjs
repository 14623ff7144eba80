// Livestream media: one app instance hosts in local mode and goes live with the fake camera; a
// second instance, anonymous and without a call token, plays the HLS playlist the coordinator
// packages from the host's SFU packets, with hls.js. The video advances and a frame read back
// from the page shows the pattern's colours. Then the synthetic broadcaster hosts through a
// standalone coordinator's SFU, a viewer with a call token watches over WebRTC, and the
// broadcaster is killed: reconnecting, then the end. (livestream-webrtc.test.mjs has the
// WebRTC viewer's sound and the cap.)

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

test('`confab-broadcast` hosts through the SFU; a viewer with a call token watches over WebRTC; when the host is killed the viewer shows reconnecting, then the end', async (t) => {
  const { spawn } = await import('node:child_process');
  const readline = await import('node:readline');
  const path = await import('node:path');
  const { StandaloneCoordinator } = await import('./standalone-coordinator.mjs');
  const { patternProblem, sampleTile } = await import('./call-helpers.mjs');
  const coordinator = await StandaloneCoordinator.start();
  // The synthetic broadcaster is a binary of confab-call-probe, built next to the coordinator.
  const bin = process.env.CONFAB_BROADCAST
    ?? path.join(path.dirname(process.env.CONFAB_COORDINATOR ?? 'target/debug/confab-coordinator'), 'confab-broadcast');
  const broadcaster = spawn(bin, ['--call', 'livestream:demo', '--base-url', coordinator.baseURL,
    '--data-dir', coordinator.dataDir, '--size', '640x360', '--seconds', '120'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    // The command prints its status as JSON lines; wait until it is live with HLS.
    for await (const line of readline.createInterface({ input: broadcaster.stdout })) {
      if (JSON.parse(line).state === 'live') break;
    }
    const token = await coordinator.callToken('viewer', ['livestream:demo']);
    await withApp(t, async (viewer) => {
      await viewer.click('#backend-stream');
      await viewer.fill('#stream-api-key', coordinator.apiKey);
      await viewer.fill('#stream-base-url', coordinator.baseURL);
      await viewer.fill('#watch-call', 'demo');
      await viewer.fill('#watch-token', token);
      await viewer.click('#watch-form button[type="submit"]');
      await waitFor('live', async () => (await viewer.text('#watch-live')) === 'Live', { timeoutMs: 10000 });
      await waitFor('WebRTC delivery', async () => (await viewer.attribute('#watch-delivery', 'data-delivery')) === 'webrtc', { timeoutMs: 15000 });
      let problem = 'not sampled';
      await waitFor('the broadcaster\'s pattern', async () => {
        problem = patternProblem(await sampleTile(viewer, 'broadcaster', '#watch-stage'), 2000);
        return problem === null;
      }, { timeoutMs: 20000, intervalMs: 200 }).catch(() => { throw new Error(`the pattern never showed: ${problem}`); });

      // The host's process dies without ending anything: the viewer says it is reconnecting,
      // and once the host has been gone for the coordinator's grace period, that it ended.
      broadcaster.kill('SIGKILL');
      await waitFor('reconnecting', async () => (await viewer.text('#player-state')) === 'Reconnecting…', { timeoutMs: 15000 });
      await viewer.screenshot('viewer-reconnecting');
      await waitFor('the end', async () => (await viewer.text('#player-state')) === 'The stream has ended.', { timeoutMs: 30000 });
    });
  } finally {
    broadcaster.kill('SIGKILL');
    await coordinator.stop();
  }
});
