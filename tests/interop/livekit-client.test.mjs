// LiveKit's own browser client, npm livekit-client 2.23.0 unchanged, in headless Chromium,
// against the SFU embedded in confab-coordinator (issue #14), with Confab's Rust participant
// (confab-call-probe) on the other side: each must receive and decode the other's audio and
// video.
//
// Run alone (as root, or where unprivileged user namespaces are allowed):
//   cargo build -p confab-coordinator -p confab-call-probe
//   node --test tests/interop/livekit-client.test.mjs
// CONFAB_INTEROP_LOG=debug adds livekit-client's debug log to the browser log printed on failure.
//
// The network: the test re-runs itself inside a new network namespace (`unshare --net`) that
// has only a loopback interface, which it brings up. The browser, the SFU and the probe all
// bind 127.0.0.1 anyway; the namespace makes "nothing leaves the machine" a fact rather than
// a convention (Chromium has background traffic of its own, and ICE gathers candidates on
// every interface it sees), and keeps the host's interfaces out of the candidates. The test
// does this itself, rather than test-session.sh wrapping it, so that it holds however the file
// is run. The namespace also gets its own PID namespace (`--pid --fork --kill-child`): when the
// run ends or is killed, every process in it (chromedriver, Chromium's many processes, the
// coordinator, the probe) is killed by the kernel, even ones the cleanup code missed.
// CONFAB_INTEROP_NETNS=1 runs the test body directly, in the current namespace.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ChromeDriver, browserLog, inPage, redact, screenshot, servePage } from './browser.mjs';
import { Coordinator, Probe, requireBinaries } from './confab.mjs';
import { inOwnNetwork, runInOwnNetwork } from './netns.mjs';

const thisFile = fileURLToPath(import.meta.url);
const here = path.dirname(thisFile);

/** How long the probe stays in the call (its --seconds). */
const PROBE_SECONDS = 20;
/** The whole run inside the namespace: the probe's time plus start-up and shutdown. */
const INNER_TIMEOUT_MS = 120_000;

const NAME = 'livekit-client 2.23.0 in Chromium and confab-call-probe exchange audio and video through the embedded SFU';

const NETNS_ENV = 'CONFAB_INTEROP_NETNS';

if (inOwnNetwork(NETNS_ENV)) {
  test(NAME, { timeout: INNER_TIMEOUT_MS }, run);
} else {
  test(`${NAME} (in a network namespace of its own)`, { timeout: INNER_TIMEOUT_MS + 30_000 }, inNamespace);
}

/** Runs this file again in a network of its own (netns.mjs), and fails if it fails. */
async function inNamespace() {
  // Chromium's profile and the coordinator's data go in the run's own TMPDIR.
  const { code, signal, hint } = await runInOwnNetwork(thisFile, {
    envName: NETNS_ENV,
    label: 'interop',
    nodeArgs: ['--test-reporter=spec'],
    timeoutMs: INNER_TIMEOUT_MS + 20_000,
  });
  assert.equal(code, 0, `the test in the namespace failed (exit ${code ?? signal}): its output is above.${hint}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every `intervalMs` until it returns a truthy value; fails after `timeoutMs`. */
async function until(what, probe, timeoutMs, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

const sameMime = (a, b) => String(a).toLowerCase() === String(b).toLowerCase();

async function run() {
  const t0 = Date.now();
  const step = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);
  await requireBinaries();
  const umd = path.join(here, 'node_modules', 'livekit-client', 'dist', 'livekit-client.umd.js');
  await access(umd).catch(() => {
    throw new Error(`${umd} is missing: run \`npm ci --prefix tests/interop\` (scripts/setup.sh --test does)`);
  });

  // Cleanups, run last-in first-out whatever happens; each is bounded.
  const cleanups = [];
  let coordinator;
  let probe;
  let session;
  // The last of what the page reported, for the failure report.
  const seen = { localVideo: null, remote: null };
  let failed = true;
  try {
    const page = await servePage({
      '/': path.join(here, 'page', 'index.html'),
      '/interop.js': path.join(here, 'page', 'interop.js'),
      '/livekit-client.umd.js': umd,
    });
    cleanups.push(() => page.close());

    coordinator = await Coordinator.start();
    cleanups.push(() => coordinator.stop());
    step(`coordinator at ${coordinator.baseURL}`);

    // Both join one new call through the REST API, as the app does, and get the SFU's URL and
    // a LiveKit access token each.
    const callId = `interop${randomBytes(4).toString('hex')}`;
    const forBrowser = await coordinator.joinCall('chromium', callId);
    const forProbe = await coordinator.joinCall('probe', callId);
    step(`joined call default:${callId}; SFU at ${forBrowser.url}`);

    const driver = await ChromeDriver.start();
    cleanups.push(() => driver.stop());
    session = await driver.launch();
    cleanups.push(() => session.quit());
    await session.cmd('POST', '/timeouts', { script: 30_000 });
    await session.cmd('POST', '/url', { url: `${page.url}/` });
    const version = await session.evalAsync('return LivekitClient.version');
    assert.equal(version, '2.23.0', 'the page loaded another livekit-client');
    step(`Chromium has the page with livekit-client ${version}`);

    probe = Probe.start({ ...forProbe, seconds: PROBE_SECONDS });
    cleanups.push(() => probe.stop());
    const probeJoined = await probe.waitFor('"joined" event', (e) => e.event === 'joined', 15_000);
    const probeIdentity = probeJoined.identity;
    step(`probe joined as ${probeIdentity} (${probeJoined.sid})`);

    const logLevel = process.env.CONFAB_INTEROP_LOG ?? 'info';
    const me = await inPage(session, 'connect', [forBrowser.url, forBrowser.token, { logLevel }], 45_000);
    step(`Chromium connected as ${me.identity} (${me.sid}), server version ${me.serverVersion}`);

    const published = await inPage(session, 'publish', [], 30_000);
    step(`Chromium published ${published.map((p) => `${p.kind} ${p.sid} ${p.mime ?? ''}`).join(', ')}`);

    // The published video's sizes, sampled until the probe is done: the keyframe the probe
    // saw must have one of them.
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        seen.localVideo = (await session.evalAsync('return window.interop.localVideo()').catch(() => null)) ?? seen.localVideo;
        await sleep(500);
      }
    })();
    cleanups.push(async () => {
      sampling = false;
      await sampler;
    });

    // Both directions are checked to the end, and every problem reported together: one
    // direction failing says little without the other.
    const problems = [];
    const check = (ok, message) => {
      if (!ok) problems.push(message);
    };

    // Meanwhile the probe sees Chromium's tracks, and reports what it received when its time
    // is up.
    const probeHasTracks = probe.waitFor(`tracks from ${me.identity}`, () =>
      ['audio', 'video'].every((kind) => probe.events.some((e) => e.event === 'track' && e.identity === me.identity && e.kind === kind)),
    15_000).then(() => step('the probe has both of Chromium\'s tracks'), (err) => problems.push(err.message));

    // Chromium receives and decodes the probe's H.264 video and Opus audio.
    const remote = await until('Chromium to decode the probe\'s video (framesDecoded > 10) and audio (packetsReceived > 20)', async () => {
      const r = await session.evalAsync('return window.interop.remote(...args)', probeIdentity);
      seen.remote = r ?? seen.remote; // the last sample before the probe left
      const video = r?.tracks.find((tr) => tr.kind === 'video' && tr.subscribed);
      const audio = r?.tracks.find((tr) => tr.kind === 'audio' && tr.subscribed);
      return video?.framesDecoded > 10 && audio?.packetsReceived > 20 ? { video, audio } : null;
    }, 20_000).catch((err) => {
      problems.push(err.message);
      return null;
    });
    if (remote) {
      step(`Chromium decoded the probe's video: ${remote.video.framesDecoded} frames ${remote.video.frameWidth}x${remote.video.frameHeight} ` +
        `${remote.video.codec} (${remote.video.decoderImplementation}); audio: ${remote.audio.packetsReceived} packets ${remote.audio.codec}`);
      check(sameMime(remote.video.codec, 'video/H264'), `the probe's video arrived in Chromium as ${remote.video.codec}, not H.264`);
      check(sameMime(remote.audio.codec, 'audio/opus'), `the probe's audio arrived in Chromium as ${remote.audio.codec}, not Opus`);
    }

    await probeHasTracks;
    const { code, signal } = await probe.finish(PROBE_SECONDS * 1000 + 15_000);
    sampling = false;
    await sampler;
    const { localVideo } = seen;
    step(`Chromium's video: ${JSON.stringify(localVideo)}`);
    check(code === 0, `confab-call-probe exited with ${code ?? signal}`);
    const summary = probe.events.find((e) => e.event === 'summary');
    check(summary, 'confab-call-probe printed no summary');
    step(`probe summary: ${JSON.stringify(summary)}`);

    const fromBrowser = (summary?.tracks ?? []).filter((tr) => tr.identity === me.identity);
    const video = fromBrowser.find((tr) => tr.kind === 'video');
    const audio = fromBrowser.find((tr) => tr.kind === 'audio');
    check(video, `the probe received no video from ${me.identity}`);
    if (video) {
      check(sameMime(video.mime, 'video/VP8'), `Chromium's video reached the probe as ${video.mime}, not livekit-client's default VP8`);
      check(video.keyframes >= 1, `the probe saw no keyframe in Chromium's video: ${JSON.stringify(video)}`);
      const sizes = new Set([
        ...(localVideo?.encodings ?? []).map((e) => `${e.width}x${e.height}`),
        ...(localVideo?.layers ?? []).map((l) => `${l.width}x${l.height}`),
        ...(localVideo?.sentSizes ?? []),
      ]);
      const keyframeSize = `${video.keyframe_width}x${video.keyframe_height}`;
      check(sizes.has(keyframeSize), `the probe's keyframe is ${keyframeSize}, none of Chromium's layers (${[...sizes].join(', ') || 'none reported'})`);
    }
    check(audio, `the probe received no audio from ${me.identity}`);
    if (audio) {
      check(sameMime(audio.mime, 'audio/opus'), `Chromium's audio reached the probe as ${audio.mime}, not Opus`);
      check(audio.frames > 20, `the probe received only ${audio.frames} audio frames from Chromium`);
    }
    assert.deepEqual(problems, [], `problems:\n  ${problems.join('\n  ')}`);

    await inPage(session, 'disconnect', [], 10_000);
    step('Chromium left the call');
    failed = false;
  } finally {
    if (failed) await report({ session, probe, coordinator, seen });
    if (session) await screenshot(session, 'livekit-client').catch(() => {});
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((err) => console.error(`cleanup: ${err.message}`));
    }
  }
}

/** Prints what each side saw, for a failed run. */
async function report({ session, probe, coordinator, seen }) {
  const section = (title, text) => console.error(`\n----- ${title}\n${text || '(nothing)'}`);
  section('what Chromium sent (its published video, last sample)', JSON.stringify(seen.localVideo, null, 1));
  section('what Chromium received from the probe (last sample)', JSON.stringify(seen.remote, null, 1));
  if (session) {
    const events = await session.evalAsync('return window.interop?.events ?? []').catch((err) => [String(err)]);
    section('page events', redact(events.map((e) => JSON.stringify(e)).join('\n')));
    section('browser console', (await browserLog(session)).join('\n'));
  }
  if (probe) section('confab-call-probe', redact(probe.report()));
  if (coordinator) section('confab-coordinator stderr', redact(coordinator.stderr.join('\n')));
}
