// Livestream benchmark (#8): a host app goes live with the fake camera at 1280x720, 30 fps; a
// second app watches anonymously. Prints figures; asserts nothing.
//   time to first frame: from submitting "Watch" to the video's first `playing` event (page
//     clock), for a viewer joining a running broadcast; several joins, median.
//   glass to glass: the viewer's clock minus the time the fake camera drew into the frame
//     (read back from the frame's time code), sampled over 15 s; both apps share the clock.
// Run inside the test session: bash scripts/bench.sh livestream

import path from 'node:path';

import { SAMPLE_FRAME, goLive, onScreen, watchAnonymously } from './flows.mjs';
import { repoRoot, waitFor, withApp } from './webdriver.mjs';

process.env.CONFAB_APP ??= path.join(repoRoot, 'target', 'release', 'confab');
const JOINS = Number(process.env.JOINS ?? 5);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.round((xs.length - 1) * 0.95))];

console.log(`app: ${path.relative(repoRoot, process.env.CONFAB_APP)}`);
await withApp({ name: 'bench-host' }, async (host) => {
  const where = await goLive(host, 'bench');
  await withApp({ name: 'bench-viewer' }, async (viewer) => {
    // The first join also sets the Stream fields; later joins go back and watch again.
    const firstFrames = [];
    for (let i = 0; i < JOINS; i++) {
      await viewer.evalAsync(`
        window.__benchSubmit = null; window.__benchPlaying = null;
        document.getElementById('watch-form').addEventListener('submit', () => { window.__benchSubmit = performance.now(); }, { once: true, capture: true });
        document.getElementById('player').addEventListener('playing', () => { window.__benchPlaying ??= performance.now(); }, { once: true });
        return true;`);
      if (i === 0) await watchAnonymously(viewer, where, 'bench');
      else {
        await viewer.click('#watch-form button[type="submit"]');
      }
      const ms = await waitFor('the first frame', () => viewer.evalAsync(
        'return window.__benchPlaying && window.__benchSubmit ? window.__benchPlaying - window.__benchSubmit : null;'), { timeoutMs: 20000, intervalMs: 50 });
      firstFrames.push(ms);
      if (i < JOINS - 1) {
        await viewer.click('#stop-watching');
        await onScreen(viewer, 'start');
      }
    }
    console.log(`time to first frame: median ${median(firstFrames).toFixed(0)} ms over ${JOINS} joins (min ${Math.min(...firstFrames).toFixed(0)}, max ${Math.max(...firstFrames).toFixed(0)}) [target: 2000 ms]`);

    await sleep(3000); // let the player settle at its live edge
    const latencies = [];
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      const frame = await viewer.evalAsync(SAMPLE_FRAME);
      if (frame) latencies.push(frame.now - frame.renderedAt);
      await sleep(500);
    }
    console.log(`glass to glass: median ${median(latencies).toFixed(0)} ms, p95 ${p95(latencies).toFixed(0)} ms over ${latencies.length} samples [target: 3000 ms]`);
  }, { });
  const sent = await host.text('#broadcast-status');
  console.log(`host: ${sent}`);
});
