// Livestream benchmark: a host app goes live in local mode with the fake camera at 1280x720,
// 30 fps (published once, through its embedded SFU); viewers watch it both ways, side by side
// against the same host. Prints figures beside their targets; asserts nothing.
//   WebRTC (a viewer with the host's call token):
//     time to first frame: from submitting "Watch" to the first frame drawn in the host's tile
//       (the page's clock), for a viewer joining a running broadcast; several joins, median;
//     glass to glass: the viewer's clock when its tile drew a frame minus the time the fake
//       camera rendered it (the frame's time code; both apps share the clock), every 100 ms.
//   HLS (a viewer without a token: the playlist the coordinator packages from the SFU's packets):
//     time to first frame: submit to the video's first `playing` event;
//     glass to glass: the viewer's clock minus the time code of the frame on show.
// It runs inside a network namespace of its own (loopback only), as the call benchmark does.
// Run inside the test session: bash scripts/bench.sh livestream
// JOINS (default 5) and G2G_SECONDS (default 15) change the runs. The SFU's CPU with 50
// viewers is crates/call-probe/benches/livestream.rs.

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { inOwnNetwork, patternProblem, runInOwnNetwork, sampleTile, sleep } from './call-helpers.mjs';
import { SAMPLE_FRAME, goLive, onScreen } from './flows.mjs';
import { repoRoot, waitFor, withApp } from './webdriver.mjs';

const thisFile = fileURLToPath(import.meta.url);
if (!inOwnNetwork()) {
  const { code, signal, hint } = await runInOwnNetwork(thisFile, { timeoutMs: 15 * 60_000 });
  if (code !== 0) console.error(`the benchmark failed (exit ${code ?? signal}).${hint}`);
  process.exit(code ?? 1);
}

process.env.CONFAB_APP ??= path.join(repoRoot, 'target', 'release', 'confab');
const JOINS = Number(process.env.JOINS ?? 5);
const SECONDS = Number(process.env.G2G_SECONDS ?? 15);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.round((xs.length - 1) * 0.95))];
const verdict = (ok) => (ok ? 'meets' : 'MISSES');

// In the viewer's page: stamps the next submit of the watch form, then the first frame (the
// host's tile drew one, or the video element played).
const ARM_FIRST_FRAME = `
  window.__benchSubmit = null; window.__benchFirst = null;
  const firstFrame = () => {
    if (window.__benchFirst !== null) return;
    if ((window.__confabWatch?.framesDrawn() ?? 0) > 0) window.__benchFirst = performance.now();
    else requestAnimationFrame(firstFrame);
  };
  document.getElementById('watch-form').addEventListener('submit', () => {
    window.__benchSubmit = performance.now();
    requestAnimationFrame(firstFrame);
  }, { once: true, capture: true });
  document.getElementById('player').addEventListener('playing', () => { window.__benchFirst ??= performance.now(); }, { once: true });
  return true;`;

async function firstFrames(viewer, where, token) {
  const out = [];
  for (let i = 0; i < JOINS; i++) {
    if (i > 0) {
      await viewer.click('#stop-watching');
      await onScreen(viewer, 'start');
      await sleep(500);
    }
    await viewer.evalAsync(ARM_FIRST_FRAME);
    if (i === 0) {
      await viewer.click('#backend-stream');
      await viewer.fill('#stream-api-key', where.apiKey);
      await viewer.fill('#stream-base-url', where.baseURL);
      await viewer.fill('#watch-call', 'bench');
      await viewer.fill('#watch-token', token ?? '');
    }
    await viewer.click('#watch-form button[type="submit"]');
    out.push(await waitFor('the first frame', () => viewer.evalAsync(
      'return window.__benchFirst !== null && window.__benchSubmit !== null ? window.__benchFirst - window.__benchSubmit : null;'),
    { timeoutMs: 20000, intervalMs: 50 }));
  }
  return out;
}

async function sampleFor(ms, sample) {
  const out = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const age = await sample();
    if (age !== null) out.push(age);
    await sleep(100);
  }
  return out;
}

console.log(`app: ${path.relative(repoRoot, process.env.CONFAB_APP)}`);
await withApp({ name: 'bench-livestream-host' }, async (host) => {
  const where = await goLive(host, 'bench');
  await host.click('#share-viewer-token');
  const token = await waitFor('a viewer token', () => host.attribute('#host-result', 'data-token'), { timeoutMs: 5000 });

  await withApp({ name: 'bench-livestream-webrtc' }, async (viewer) => {
    const ttff = await firstFrames(viewer, where, token);
    const delivery = await viewer.attribute('#watch-delivery', 'data-delivery');
    await sleep(2000);
    const ages = await sampleFor(SECONDS * 1000, async () => {
      const s = await sampleTile(viewer, 'host', '#watch-stage');
      return patternProblem(s, 60_000) === null ? s.now - s.code : null;
    });
    console.log(`WebRTC viewer (${delivery}): time to first frame median ${median(ttff).toFixed(0)} ms over ${JOINS} joins (min ${Math.min(...ttff).toFixed(0)}, max ${Math.max(...ttff).toFixed(0)}) [target 500 ms: ${verdict(median(ttff) <= 500)}]`);
    console.log(`WebRTC viewer: glass to glass p50 ${median(ages).toFixed(0)} ms, p95 ${p95(ages).toFixed(0)} ms over ${ages.length} samples [target p95 300 ms: ${verdict(p95(ages) <= 300)}]`);
  });

  await withApp({ name: 'bench-livestream-hls' }, async (viewer) => {
    const ttff = await firstFrames(viewer, where, null);
    const delivery = await viewer.attribute('#watch-delivery', 'data-delivery');
    await sleep(3000); // let the player settle at its live edge
    const ages = await sampleFor(SECONDS * 1000, async () => {
      const frame = await viewer.evalAsync(SAMPLE_FRAME);
      return frame ? frame.now - frame.renderedAt : null;
    });
    console.log(`HLS viewer (${delivery}): time to first frame median ${median(ttff).toFixed(0)} ms over ${JOINS} joins (min ${Math.min(...ttff).toFixed(0)}, max ${Math.max(...ttff).toFixed(0)})`);
    console.log(`HLS viewer: glass to glass p50 ${median(ages).toFixed(0)} ms, p95 ${p95(ages).toFixed(0)} ms over ${ages.length} samples`);
  });
  console.log(`host: ${await host.text('#broadcast-status')}`);
});
