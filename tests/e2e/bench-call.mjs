// Call benchmark (docs/call-media.md): two apps in a meeting on a coordinator of their own
// ("Stream" mode, its SFU on 127.0.0.1), then two confab-call-probe participants (640x360
// H.264 and a tone each) to make four. Prints figures beside their targets; asserts nothing.
//   glass to glass: B's wall clock when its tile of A drew a frame minus the time A's fake
//     camera rendered it (read back from the frame's time code; both apps share the clock),
//     sampled every 100 ms for 15 s; p50 and p95.
//   join to first remote frame: from B's click on Join to B's first frame drawn in A's tile
//     (both the page's clock), over several joins (B leaves and joins again); median. Also
//     whether A shows B's video again after each of B's re-joins.
//   A's speaker: A plays on a null sink of its own, recorded for 4 s while B's fake microphone
//     sings: the share of 10 ms blocks of digital silence (playout gaps).
//   CPU: each app's process tree (the app and its WebKit processes), user + system time from
//     /proc/<pid>/stat over 10 s, in percent of one core; in a call of 2 and of 4.
//   memory: the proportional set size (smaps_rollup Pss) of one app's tree in a call of 4.
// Like call.test.mjs, it runs inside a network namespace of its own (loopback only).
// Run inside the test session: bash scripts/bench.sh call
//   (or, with the debug build: xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- \
//    keyctl session - bash scripts/test-session.sh node tests/e2e/bench-call.mjs)
// JOINS (default 5) and G2G_SECONDS (the glass-to-glass window, default 15) change the runs.

import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  Coordinator, Probe, appPids, cpuPercent, describeCpu, describeSound, inOwnNetwork, joinCall, leaveCallRest,
  listen, newAppPid, nullSink, patternProblem, pick, pssMegabytes, runInOwnNetwork, sampleTile,
  signInStream, sleep, tileOf, waitForFrames,
} from './call-helpers.mjs';
import { onScreen } from './flows.mjs';
import { repoRoot, waitFor, withApp } from './webdriver.mjs';

const thisFile = fileURLToPath(import.meta.url);
const JOINS = Number(process.env.JOINS ?? 5);
const SECONDS = Number(process.env.G2G_SECONDS ?? 15);
const CPU_MS = 10_000;

if (!inOwnNetwork()) {
  const { code, signal, hint } = await runInOwnNetwork(thisFile, { timeoutMs: 15 * 60_000 });
  if (code !== 0) console.error(`the benchmark failed (exit ${code ?? signal}).${hint}`);
  process.exit(code ?? 1);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.round((xs.length - 1) * 0.95))];
const verdict = (ok) => (ok ? 'meets' : 'MISSES');
const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

process.env.CONFAB_APP ??= path.join(repoRoot, 'target', 'release', 'confab');
console.log(`app: ${path.relative(repoRoot, process.env.CONFAB_APP)}; ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (the figures assume a machine doing nothing else)`);

const callId = `bench${Date.now().toString(36)}`;
const coordinator = await Coordinator.start();
const probes = [];
const results = [];
const report = (line) => {
  results.push(line);
  console.log(line);
};
// What each window's call says (#call-media-status: a fault such as a lost device), whenever it
// changes: a figure taken while it says something is taken in those conditions.
const said = new Map();
async function watchStatus(app, name) {
  const text = await app.evalAsync(`return document.getElementById('call-media-status').textContent;`).catch(() => null);
  if (text !== null && text !== (said.get(name) ?? '')) {
    said.set(name, text);
    report(`(${name}'s call now says: "${text}")`);
  }
}

async function signInAndPick(app, user, name) {
  await signInStream(app, coordinator, user, name);
  await pick(app, 'pick-camera', { value: 'fake:camera:test-pattern' });
  await pick(app, 'pick-microphone', { value: 'fake:microphone:tone' });
}

/** In `app`'s page, from now on: the wall clock at the first frame drawn in `identity`'s tile. */
const watchFirstFrame = (app, identity) => app.evalAsync(`
  const identity = args[0];
  window.__firstFrameAt = null;
  window.__firstFrameObserver?.disconnect();
  const check = () => {
    if (window.__firstFrameAt !== null) return;
    const tile = document.querySelector('#call-grid .tile[data-identity="' + CSS.escape(identity) + '"]');
    if (Number(tile?.dataset.framesDrawn ?? 0) > 0) {
      window.__firstFrameAt = Date.now();
      window.__firstFrameObserver.disconnect();
    }
  };
  window.__firstFrameObserver = new MutationObserver(check);
  window.__firstFrameObserver.observe(document.getElementById('call-grid'), { subtree: true, childList: true, attributes: true, attributeFilter: ['data-frames-drawn'] });
  return true;`, identity);

const sinkA = await nullSink('confab_a', 'Confab-A');
try {
  const beforeA = await appPids();
  await withApp({ name: 'bench-call-a' }, async (a) => {
    const pidA = await newAppPid(beforeA);
    await signInAndPick(a, 'alice', 'Alice Anders');
    await pick(a, 'pick-speaker', { label: 'Confab-A' });
    await joinCall(a, callId);
    const beforeB = await appPids();
    await withApp({ name: 'bench-call-b' }, async (b) => {
      const pidB = await newAppPid(beforeB);
      await signInAndPick(b, 'bob', 'Bob Berg');

      // The first join: B's first frame of A, and A's of B.
      const firstFrames = [];
      await watchFirstFrame(b, 'alice');
      const firstClick = await joinCall(b, callId);
      firstFrames.push(await waitFor('B\'s first frame of A', () => b.evalAsync('return window.__firstFrameAt;'), { timeoutMs: 20000, intervalMs: 50 }) - firstClick);
      await waitForFrames(a, 'bob');

      // Glass to glass: B's tile of A, sampled every 100 ms; each frame counted once, at the
      // time B drew it.
      await sleep(2000);
      const latencies = [];
      const seen = new Set();
      let unreadable = 0;
      let lastProblem = null;
      const deadline = Date.now() + SECONDS * 1000;
      const framesBefore = (await tileOf(b, 'alice')).framesDrawn;
      let picture = null;
      while (Date.now() < deadline) {
        const sample = await sampleTile(b, 'alice');
        const problem = patternProblem(sample, 10_000);
        if (problem) {
          unreadable += 1;
          lastProblem = problem;
        } else if (!seen.has(sample.code)) {
          seen.add(sample.code);
          picture = `${sample.picture.width}x${sample.picture.height}`;
          latencies.push((sample.drawnAt ?? sample.now) - sample.code);
        }
        await sleep(100);
      }
      const fps = ((await tileOf(b, 'alice')).framesDrawn - framesBefore) / SECONDS;
      await watchStatus(a, 'A');
      await watchStatus(b, 'B');
      const g50 = median(latencies);
      const g95 = p95(latencies);
      report(`glass to glass (B's tile of A): p50 ${fmt(g50)} ms, p95 ${fmt(g95)} ms over ${latencies.length} frames in ${SECONDS} s` +
        ` (min ${fmt(Math.min(...latencies))}, max ${fmt(Math.max(...latencies))})` +
        `${unreadable ? `, ${unreadable} samples unreadable (last: ${lastProblem})` : ''}` +
        ` [targets: p50 ≤ 40 ms: ${verdict(g50 <= 40)}; p95 ≤ 80 ms: ${verdict(g95 <= 80)}]`);
      report(`B drew A's video at ${fmt(fps, 1)} frames per second (the tile's picture ${picture} device pixels)`);

      // A's speaker plays B's tone: how much of it is missing (playout gaps).
      const heard = await listen(sinkA.name, [440], 4000);
      report(`A's speaker playing B's microphone (4 s): ${describeSound(heard, [440])} [target: no silent blocks]`);

      await watchStatus(a, 'A');
      // CPU in a call of 2.
      const [cpuA2, cpuB2, sfu2] = await cpuPercent([pidA, pidB, coordinator.child.pid], CPU_MS);
      report(`CPU in a call of 2, in % of one core (each app's process tree, over ${CPU_MS / 1000} s): A ${describeCpu(cpuA2)}, B ${describeCpu(cpuB2)}; the coordinator and its SFU ${fmt(sfu2.total)} %`);

      // Two probes make four.
      for (const user of ['probe1', 'probe2']) {
        const credentials = await coordinator.joinCall(user, callId);
        const probe = Probe.start({ ...credentials, seconds: 600 });
        probes.push(probe);
        await probe.waitFor('"joined" event', (e) => e.event === 'joined', 15_000);
      }
      for (const app of [a, b]) {
        for (const user of ['probe1', 'probe2']) await waitForFrames(app, user, { timeoutMs: 30000 });
      }
      await sleep(3000);
      const [cpuA4, cpuB4, sfu4, ...cpuProbes] = await cpuPercent([pidA, pidB, coordinator.child.pid, ...probes.map((p) => p.child.pid)], CPU_MS);
      report(`CPU in a call of 4 (A, B and two confab-call-probe), in % of one core: A ${describeCpu(cpuA4)}, B ${describeCpu(cpuB4)}; the coordinator and its SFU ${fmt(sfu4.total)} %; the probes ${cpuProbes.map((c) => `${fmt(c.total)} %`).join(', ')}`);
      await watchStatus(a, 'A');
      await watchStatus(b, 'B');
      const pss = await pssMegabytes(pidA);
      report(`memory of A in a call of 4: PSS ${fmt(pss.total)} MB (${pss.parts.map((p) => `${p.name} ${fmt(p.mb)}`).join(', ')}) [target: < 320 MB: ${verdict(pss.total < 320)}]`);
      const drawn = await a.evalAsync('return window.__confabCall.tiles().map((t) => t.identity + " " + t.video + " " + t.framesDrawn);');
      console.log(`A's tiles in the call of 4: ${drawn.join(', ')}`);
      for (const probe of probes.splice(0)) await probe.stop();
      for (const user of ['probe1', 'probe2']) await leaveCallRest(coordinator, user, callId);

      // Join to first remote frame, again: B leaves and joins. Also whether A shows B again.
      let aSawB = 0;
      const rejoinFailures = [];
      for (let i = 1; i < JOINS; i++) {
        await b.click('#leave-call');
        await onScreen(b, 'lobby');
        await waitFor('B gone from A\'s call', async () => (await tileOf(a, 'bob')) === null, { timeoutMs: 15000 });
        await sleep(1000);
        await watchFirstFrame(b, 'alice');
        const clickedAt = await joinCall(b, callId);
        const drawnAt = await waitFor('B\'s first frame of A', () => b.evalAsync('return window.__firstFrameAt;'), { timeoutMs: 20000, intervalMs: 50 });
        firstFrames.push(drawnAt - clickedAt);
        await watchStatus(a, 'A');
        const failure = await waitForFrames(a, 'bob', { timeoutMs: 10000 }).then(() => null, (err) => err.message);
        if (failure) rejoinFailures.push(failure.replace(/^.*; the page had /, ''));
        else aSawB += 1;
      }
      const ff = median(firstFrames);
      report(`join to first remote frame: median ${fmt(ff)} ms over ${JOINS} joins (${firstFrames.map((x) => fmt(x)).join(', ')}) [target: ≤ 1000 ms: ${verdict(ff <= 1000)}]`);
      report(`A drew B's video again after ${aSawB} of ${JOINS - 1} re-joins of B${rejoinFailures.length ? ` (what A's page had 10 s after B drew A: ${rejoinFailures.join('; ')})` : ''} [target: all]`);
    }, { shot: 'bench-call-b' });
  }, { shot: 'bench-call-a' });
} finally {
  for (const probe of probes) await probe.stop();
  await coordinator.stop();
  await sinkA.unload();
}
console.log('\nsummary');
for (const line of results) console.log(`  ${line}`);
