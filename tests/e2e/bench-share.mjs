// Screen sharing benchmark: two apps in a meeting (release builds, a coordinator of their own,
// its SFU on 127.0.0.1); A shares a 1280x720 window drawing the test pattern with its wall-clock
// time code (confab-pattern-window). Prints figures; asserts nothing.
//   capture to paint: B's wall clock when its tile of A's screen drew a frame minus the time
//     the window drew it (read back from the time code; one clock), sampled every 100 ms for
//     SECONDS, with A's camera on and then off; p50 and p95. It includes the window's own
//     drawing, the capture beat (15 fps), encoding, the SFU, decoding and painting.
//   CPU: A's process tree (the app and its WebKit processes) over 10 s, sharing and not.
// Runs in a network namespace of its own (loopback only), as bench-call.mjs.
// Run inside the test session: bash scripts/bench.sh share
// SECONDS (default 15) changes the sampling window.

import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  Coordinator, appPids, cpuPercent, describeCpu, inOwnNetwork, joinCall, newAppPid, patternProblem, patternWindow,
  runInOwnNetwork, sampleTile, shareWindow, signInForVideo, sleep, tileOf, waitForFrames,
} from './call-helpers.mjs';
import { repoRoot, withApp } from './webdriver.mjs';

const thisFile = fileURLToPath(import.meta.url);
const SECONDS = Number(process.env.SECONDS ?? 15);
const CPU_MS = 10_000;
const TITLE = 'Bench pattern';
const SCREEN_TILE = 'alice#screen';

if (!inOwnNetwork()) {
  const { code, signal, hint } = await runInOwnNetwork(thisFile, { timeoutMs: 10 * 60_000 });
  if (code !== 0) console.error(`the benchmark failed (exit ${code ?? signal}).${hint}`);
  process.exit(code ?? 1);
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => sorted(xs)[Math.floor(xs.length / 2)];
const p95 = (xs) => sorted(xs)[Math.min(xs.length - 1, Math.round((xs.length - 1) * 0.95))];

process.env.CONFAB_APP ??= path.join(repoRoot, 'target', 'release', 'confab');
console.log(`app: ${path.relative(repoRoot, process.env.CONFAB_APP)}; ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (the figures assume a machine doing nothing else)`);

/** Capture to paint of B's tile of A's screen, each frame once: { p50, p95, n, fps, unreadable }. */
async function captureToPaint(b) {
  const latencies = [];
  const seen = new Set();
  let unreadable = 0;
  const before = (await tileOf(b, SCREEN_TILE)).framesDrawn;
  const deadline = Date.now() + SECONDS * 1000;
  while (Date.now() < deadline) {
    const sample = await sampleTile(b, SCREEN_TILE);
    if (patternProblem(sample, 10_000)) unreadable += 1;
    else if (!seen.has(sample.code)) {
      seen.add(sample.code);
      latencies.push((sample.drawnAt ?? sample.now) - sample.code);
    }
    await sleep(100);
  }
  const fps = ((await tileOf(b, SCREEN_TILE)).framesDrawn - before) / SECONDS;
  return { p50: median(latencies), p95: p95(latencies), n: latencies.length, fps, unreadable };
}

const coordinator = await Coordinator.start();
const window = await patternWindow(TITLE, { size: '1280x720', seconds: 600 });
const callId = `benchshare${Date.now().toString(36)}`;
const results = [];
const report = (line) => {
  results.push(line);
  console.log(line);
};
try {
  const beforeA = await appPids();
  await withApp({ name: 'bench-share-a' }, async (a) => {
    const pidA = await newAppPid(beforeA);
    await signInForVideo(a, coordinator, 'alice', 'Alice Anders');
    await joinCall(a, callId);
    await withApp({ name: 'bench-share-b' }, async (b) => {
      await signInForVideo(b, coordinator, 'bob', 'Bob Berg');
      await joinCall(b, callId);
      await waitForFrames(b, 'alice');
      await sleep(2000);
      const [idle] = await cpuPercent([pidA], CPU_MS);

      await shareWindow(a, TITLE);
      await waitForFrames(b, SCREEN_TILE, { timeoutMs: 20000 });
      await sleep(2000);
      const withCamera = await captureToPaint(b);
      const [sharing] = await cpuPercent([pidA], CPU_MS);
      await a.click('#toggle-camera');
      await sleep(2000);
      const cameraOff = await captureToPaint(b);

      report('screen sharing, a 1280x720 window at 15 fps, two apps on loopback (release builds):');
      for (const [label, r] of [['A\'s camera on ', withCamera], ['A\'s camera off', cameraOff]]) {
        report(`  capture to paint, ${label}: p50 ${r.p50} ms, p95 ${r.p95} ms (${r.n} frames over ${SECONDS} s, ${r.fps.toFixed(1)} fps drawn, ${r.unreadable} unreadable samples)`);
      }
      report(`  A's CPU in the call, not sharing: ${describeCpu(idle)}`);
      report(`  A's CPU in the call, sharing:     ${describeCpu(sharing)}`);
    });
  });
} finally {
  await window.stop();
  await coordinator.stop();
}
console.log('\n' + results.join('\n'));
