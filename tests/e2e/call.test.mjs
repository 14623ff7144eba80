// Calls with audio and video (docs/call-media.md), end to end in real windows: two apps signed
// in as different people in one meeting see each other's camera (the fake test pattern, read
// back from the tile's canvas: the bars' colours and a recent time code) and hear each other
// (each app plays on a PulseAudio null sink of its own, whose monitor is recorded and measured:
// A's fake microphone sings 440 Hz, B's 660 Hz); muting, the camera and leaving reach the other
// window; a third person from LiveKit's browser client in Chromium shows up in both; someone
// who leaves and joins again is seen again; and after two confab-call-probe participants come
// and go, a newcomer is seen and heard in both windows.
//
// The apps sign in to a confab-coordinator of the test's own in "Stream" mode: its join answers
// carry LiveKit-protocol SFU credentials (the embedded SFU, bound to 127.0.0.1), so media flows.
// The whole file runs inside a network namespace of its own with only a loopback interface
// (call-helpers.mjs runInOwnNetwork), as tests/interop does.
//
// Run inside the test session:
//   cargo build -p confab -p confab-coordinator -p confab-call-probe
//   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- keyctl session - \
//     bash scripts/test-session.sh node --test tests/e2e/call.test.mjs
// (CONFAB_CALL_TESTS=<a name pattern> runs only the tests it matches, e.g. "two windows".)
// Screenshots: target/e2e/call-*.png.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  ChromeDriver, Coordinator, Probe, aliceAndBob, browserLog, chooseDevices, describeSound, inOwnNetwork, inPage,
  interopPageRoutes, inViewport, redact, joinCall, leaveCallRest, listen, nullSink, patternProblem, pick, runInOwnNetwork,
  sampleTile, servePage, signInForVideo, signInStream, sleep, tileOf, tiles, waitForFrames,
} from './call-helpers.mjs';
import { onScreen } from './flows.mjs';
import { waitFor, withApp } from './webdriver.mjs';

const thisFile = fileURLToPath(import.meta.url);

const TWO_WINDOWS = 'two windows in one meeting: each sees and hears the other; mute, camera off and leaving reach the other window';
const CHROMIUM = 'a third participant from livekit-client in Chromium: both windows get a tile for them and draw their video';
const REJOIN = 'someone who leaves and joins again is seen again by the one who stayed';
const AFTER_LEAVERS = 'after two people leave, someone new who joins is seen and heard in both windows';
const RUST_DECODE = 'a webview without WebCodecs gets H.264 decoded by the backend: the tile still shows the pattern';
const TEST_TIMEOUT_MS = 300_000;

// A's microphone, and B's.
const A_HZ = 440;
const B_HZ = 660;
const PITCHES = [A_HZ, B_HZ];
// How old the picture in a tile may be (the time code against the page's clock).
const MAX_PICTURE_AGE_MS = 1500;
const SIZES = [[1100, 720], [720, 520]];

const newCallId = () => `call${randomBytes(4).toString('hex')}`;

/** Waits until `identity`'s tile in `app` shows the fake camera's pattern; resolves to the sample. */
async function seesPattern(app, identity, { timeoutMs = 15000 } = {}) {
  let problem = 'not sampled';
  try {
    return await waitFor(`${identity}'s test pattern`, async () => {
      const sample = await sampleTile(app, identity);
      problem = patternProblem(sample, MAX_PICTURE_AGE_MS);
      return problem ? null : sample;
    }, { timeoutMs, intervalMs: 200 });
  } catch {
    throw new Error(`${identity}'s tile never showed the test pattern with a time code under ${MAX_PICTURE_AGE_MS} ms old: last, ${problem}`);
  }
}

/**
 * In `app`'s page: the wall-clock time at which `identity`'s tile first matches `test` (a JS
 * expression over `tile`, the element, and `mic`, its .tile-mic), watched from now on.
 * `seenAt(app, name)` reads it back.
 */
const watchTile = (app, name, identity, test) => app.evalAsync(`
  const [name, identity] = args;
  window.__seen ??= {};
  window.__seen[name] = null;
  const check = () => {
    const tile = document.querySelector('#call-grid .tile[data-identity="' + CSS.escape(identity) + '"]');
    const mic = tile?.querySelector('.tile-mic');
    if (window.__seen[name] === null && (${test})) window.__seen[name] = Date.now();
  };
  new MutationObserver(check).observe(document.getElementById('call-grid'), { subtree: true, childList: true, attributes: true });
  check();
  return window.__seen[name];`, name, identity);
const seenAt = (app, name) => app.evalAsync('return window.__seen?.[args[0]] ?? null;', name);

/** Records both sinks at once and checks each carries the other's pitch and not its own. */
async function hearEachOther(a, b) {
  const [heardByA, heardByB] = await Promise.all([listen(a.sink, PITCHES), listen(b.sink, PITCHES)]);
  console.log(`A's speaker (${a.sink}): ${describeSound(heardByA, PITCHES)}`);
  console.log(`B's speaker (${b.sink}): ${describeSound(heardByB, PITCHES)}`);
  return { heardByA, heardByB };
}

const LOUD_DBFS = -45; // a tone plays well above this; silence and leaks are far below
function assertHears(heard, wanted, unwanted, who) {
  const text = describeSound(heard, PITCHES);
  assert.ok(heard[wanted].dbfs > LOUD_DBFS, `${who} does not play ${wanted} Hz (over ${LOUD_DBFS} dBFS): ${text}`);
  assert.ok(heard[wanted].power > 10 * heard[unwanted].power, `${who} plays ${unwanted} Hz too (${wanted} Hz must be 10x stronger): ${text}`);
  assert.ok(heard[wanted].share > 0.3, `${who}'s output is mostly something else than ${wanted} Hz: ${text}`);
}

async function twoWindows(t) {
  const problems = [];
  const check = (ok, message) => {
    if (!ok) problems.push(message);
  };
  const sinkA = await nullSink('confab_a', 'Confab-A');
  const sinkB = await nullSink('confab_b', 'Confab-B');
  const coordinator = await Coordinator.start();
  const callId = newCallId();
  try {
    await withApp(t, async (a) => {
      await signInStream(a, coordinator, 'alice', 'Alice Anders');
      const speakerA = await chooseDevices(a, 'Confab-A');
      await joinCall(a, callId);
      await withApp(t, async (b) => {
        await signInStream(b, coordinator, 'bob', 'Bob Berg');
        const speakerB = await chooseDevices(b, 'Confab-B');
        console.log(`speakers: A ${speakerA}, B ${speakerB}`);
        await joinCall(b, callId);

        // Each window gets a tile for the other and draws their camera: the pattern's bars
        // and a time code no older than MAX_PICTURE_AGE_MS.
        await waitForFrames(a, 'bob');
        await waitForFrames(b, 'alice');
        const bobInA = await seesPattern(a, 'bob');
        const aliceInB = await seesPattern(b, 'alice');
        console.log(`A draws B's camera ${bobInA.now - bobInA.code} ms after it was rendered (${bobInA.picture.width}x${bobInA.picture.height} in ${bobInA.width}x${bobInA.height}); ` +
          `B draws A's ${aliceInB.now - aliceInB.code} ms after (${aliceInB.picture.width}x${aliceInB.picture.height})`);
        assert.deepEqual((await tiles(a)).map((x) => [x.identity, x.self]).sort(), [['alice', true], ['bob', false]]);
        assert.equal((await tileOf(a, 'bob')).video, 'on');
        assert.equal((await tileOf(a, 'bob')).micMuted, 'false');
        // Checked here, reported at the end (so that one wrong label does not hide the rest).
        const names = await a.evalAsync(`return Array.from(document.querySelectorAll('#call-grid .tile')).map((t) => [t.dataset.identity, t.querySelector('.tile-name').textContent]);`);
        check(JSON.stringify(names.sort()) === JSON.stringify([['alice', 'Alice Anders (you)'], ['bob', 'Bob Berg']]),
          `A's tiles are named ${JSON.stringify(names)}, not Alice Anders (you) and Bob Berg (the names they signed in with)`);

        // The statistics panel lists what A sends and receives, B's video with its frame rate
        // and bit rate (the cells: direction, participant, kind, codec, resolution, fps,
        // kbit/s, loss, rtt).
        await a.click('#open-stats');
        let rows = [];
        const flowing = await waitFor('the statistics', async () => {
          rows = await a.evalAsync(`return Array.from(document.querySelectorAll('#stats-body tr[data-direction]')).map((tr) => [tr.dataset.direction, tr.dataset.kind, ...Array.from(tr.cells).map((c) => c.textContent)]);`);
          const inVideo = rows.find(([d, k]) => d === 'in' && k === 'video');
          return inVideo && Number(inVideo[7]) > 0 && Number(inVideo[8]) > 0 && rows.some(([d, k]) => d === 'out' && k === 'audio');
        }, { timeoutMs: 10000, intervalMs: 500 }).catch(() => false);
        console.log(`A's statistics: ${rows.map((r) => r.slice(2).join(' ')).join(' | ')}`);
        check(flowing, 'A\'s statistics panel never showed B\'s video arriving (frame rate and kbit/s above 0) and A\'s audio going out');
        await a.screenshot('call-a-stats');
        await a.click('#open-stats');

        // Each speaker carries the other's pitch and not its own.
        const first = await hearEachOther({ sink: sinkA.name }, { sink: sinkB.name });
        assertHears(first.heardByA, B_HZ, A_HZ, 'A\'s speaker');
        assertHears(first.heardByB, A_HZ, B_HZ, 'B\'s speaker');

        // Both sizes: the controls stay in the window.
        for (const [width, height] of SIZES) {
          for (const [app, name] of [[a, 'a'], [b, 'b']]) {
            await app.setWindowSize(width, height);
            await sleep(500);
            for (const control of ['#leave-call', '#toggle-mic']) {
              const where = await inViewport(app, control);
              assert.ok(where.inside, `${name.toUpperCase()}'s ${control} at ${width}x${height} is outside the viewport: ${JSON.stringify(where)}`);
            }
            await app.screenshot(`call-${name}-${width}x${height}`);
          }
        }
        await a.setWindowSize(1100, 720);
        await b.setWindowSize(1100, 720);
        // The resized tiles still draw the pattern.
        await seesPattern(a, 'bob');

        // B mutes: A's tile of B says so within a second, and B's pitch leaves A's speaker.
        await watchTile(a, 'bobMuted', 'bob', `mic?.dataset.muted === 'true'`);
        await b.evalAsync(`
          window.__micClickedAt = null;
          document.getElementById('toggle-mic').addEventListener('click', () => { window.__micClickedAt = Date.now(); }, { once: true, capture: true });
          return true;`);
        await b.click('#toggle-mic');
        await waitFor('B\'s own button to say muted', async () => (await b.attribute('#toggle-mic', 'aria-pressed')) === 'true', { timeoutMs: 5000 });
        const mutedSeen = await waitFor('A to show B muted', () => seenAt(a, 'bobMuted'), { timeoutMs: 10000, intervalMs: 50 });
        const clicked = await b.evalAsync('return window.__micClickedAt;');
        const muteMs = mutedSeen - clicked;
        console.log(`B's mute showed in A's window ${muteMs} ms after the click`);
        assert.ok(muteMs < 1000, `A showed B muted ${muteMs} ms after B's click (must be under 1000 ms)`);
        await sleep(500);
        const afterMute = await listen(sinkA.name, PITCHES);
        console.log(`A's speaker with B muted: ${describeSound(afterMute, PITCHES)}`);
        assert.ok(afterMute[B_HZ].dbfs < Math.min(LOUD_DBFS - 15, first.heardByA[B_HZ].dbfs - 30),
          `B's ${B_HZ} Hz is still on A's speaker after B muted: ${describeSound(afterMute, PITCHES)} (before: ${describeSound(first.heardByA, PITCHES)})`);
        await a.screenshot('call-a-bob-muted');
        // B's fake microphone goes on singing. Whether B's window says "you're muted" depends
        // on the capture processing: its noise suppression may take a steady tone for noise,
        // so this is reported, not required.
        const banner = await waitFor('B\'s "you\'re muted" banner', async () => (await b.attribute('#speaking-while-muted', 'hidden')) === null, { timeoutMs: 3000 }).catch(() => false);
        console.log(`B's window ${banner ? 'showed' : 'did not show'} #speaking-while-muted within 3 s of muting`);
        await b.screenshot('call-b-muted');

        // B turns the camera off: A's tile of B shows B's initials instead of video.
        await b.click('#toggle-camera');
        await waitFor('A to show B\'s camera off', async () => {
          const tile = await tileOf(a, 'bob');
          return tile?.video === 'off' && tile.cameraOff === 'true' && tile.initialsShown;
        }, { timeoutMs: 10000 });
        assert.equal(await a.text('#call-grid .tile[data-identity="bob"] .tile-initials'), 'BB');
        await a.screenshot('call-a-bob-camera-off');
        await b.screenshot('call-b-camera-off');

        // B leaves: A's tile of B goes.
        await b.click('#leave-call');
        await onScreen(b, 'lobby');
        await waitFor('B\'s tile gone from A', async () => (await tileOf(a, 'bob')) === null, { timeoutMs: 15000 });
        assert.deepEqual((await tiles(a)).map((x) => x.identity), ['alice']);
        assert.deepEqual(problems, [], `problems:\n  ${problems.join('\n  ')}`);
      }, { env: { CONFAB_FAKE_TONE_HZ: String(B_HZ) }, shot: 'call-b-end' });
    }, { env: { CONFAB_FAKE_TONE_HZ: String(A_HZ) }, shot: 'call-a-end' });
  } catch (err) {
    console.error(`----- the coordinator's stderr\n${redact(coordinator.stderr.join('\n'))}`);
    throw err;
  } finally {
    await coordinator.stop();
    await sinkA.unload();
    await sinkB.unload();
  }
}

async function chromiumParticipant(t) {
  const routes = interopPageRoutes();
  try {
    await access(routes['/livekit-client.umd.js']);
  } catch {
    t.skip('tests/interop/node_modules is missing: run `npm ci --prefix tests/interop` (scripts/setup.sh --test does)');
    return;
  }
  const coordinator = await Coordinator.start();
  const callId = newCallId();
  const cleanups = [() => coordinator.stop()];
  let session;
  try {
    const page = await servePage(routes);
    cleanups.push(() => page.close());
    await aliceAndBob(t, coordinator, callId, async (a, b) => {
      // Carol joins from Chromium with credentials from the coordinator's join, and
      // publishes Chromium's fake camera and microphone with livekit-client's defaults.
      const carol = await coordinator.joinCall('carol', callId);
      const driver = await ChromeDriver.start();
      cleanups.push(() => driver.stop());
      session = await driver.launch();
      cleanups.push(() => session.quit());
      await session.cmd('POST', '/timeouts', { script: 30_000 });
      await session.cmd('POST', '/url', { url: `${page.url}/` });
      const me = await inPage(session, 'connect', [carol.url, carol.token, {}], 45_000);
      const published = await inPage(session, 'publish', [], 30_000);
      console.log(`Chromium joined as ${me.identity} and published ${published.map((p) => `${p.kind} ${p.mime ?? ''}`).join(', ')}`);
      assert.equal(me.identity, 'carol');

      // Both windows get Carol's tile and draw her video.
      for (const [app, name] of [[a, 'A'], [b, 'B']]) {
        const tile = await waitFor(`${name}'s tile for carol`, () => tileOf(app, 'carol'), { timeoutMs: 15000 });
        let last = tile;
        try {
          await waitFor(`${name} to draw carol's video`, async () => {
            last = await tileOf(app, 'carol');
            return last?.video === 'undecodable' || last?.framesDrawn >= 10;
          }, { timeoutMs: 20000, intervalMs: 200 });
        } catch {
          /* reported below */
        }
        const codec = await app.evalAsync(`return window.__confabCall.view()?.participants?.find((p) => p.identity === 'carol')?.video?.codec ?? null;`);
        assert.notEqual(last?.video, 'undecodable', `${name} cannot show carol's ${codec} video: the tile says "${await app.text('#call-grid .tile[data-identity="carol"] .tile-placeholder').catch(() => '?')}"`);
        assert.ok(last?.framesDrawn >= 10, `${name} drew ${last?.framesDrawn} frames of carol's ${codec} video in 20 s: ${JSON.stringify(last)}`);
        // Still drawing: more frames within 3 s (a layer switch waits for Chromium's next
        // keyframe, which can hold the picture for a second on a busy machine).
        const drawn = last.framesDrawn;
        let later = last;
        await waitFor(`${name} to keep drawing carol's video`, async () => {
          later = await tileOf(app, 'carol');
          return later.framesDrawn > drawn;
        }, { timeoutMs: 3000, intervalMs: 200 }).catch(() => {});
        assert.ok(later.framesDrawn > drawn, `${name} stopped drawing carol's video (${drawn} then ${later.framesDrawn} frames in 3 s)`);
        const sample = await sampleTile(app, 'carol');
        assert.ok(sample && !sample.blank, `${name}'s canvas for carol is blank: ${JSON.stringify(sample)}`);
        console.log(`${name} draws carol's ${codec} video: ${later.framesDrawn} frames, picture ${sample.picture.width}x${sample.picture.height}`);
        await app.screenshot(`call-chromium-${name.toLowerCase()}`);
      }

      // And Chromium decodes both apps' video.
      for (const identity of ['alice', 'bob']) {
        const remote = await waitFor(`Chromium to decode ${identity}'s video`, async () => {
          const r = await session.evalAsync('return window.interop.remote(...args)', identity);
          const video = r?.tracks.find((tr) => tr.kind === 'video' && tr.subscribed);
          return video?.framesDecoded > 10 ? video : null;
        }, { timeoutMs: 20000, intervalMs: 500 });
        console.log(`Chromium decodes ${identity}'s video: ${remote.framesDecoded} frames ${remote.frameWidth}x${remote.frameHeight} ${remote.codec}`);
      }
      // Carol leaves the SFU session: her video goes from both windows; then the call (the
      // coordinator's participants, which she joined through REST): her tile goes.
      await inPage(session, 'disconnect', [], 10_000);
      for (const [app, name] of [[a, 'A'], [b, 'B']]) {
        await waitFor(`${name} to stop showing carol's video`, async () => {
          const tile = await tileOf(app, 'carol');
          return tile === null || tile.video === 'off';
        }, { timeoutMs: 15000 });
      }
      await leaveCallRest(coordinator, 'carol', callId);
      await waitFor('carol\'s tile gone', async () => (await tileOf(a, 'carol')) === null && (await tileOf(b, 'carol')) === null, { timeoutMs: 15000 });
    }, 'call-chromium');
  } catch (err) {
    if (session) {
      const events = await session.evalAsync('return window.interop?.events ?? []').catch((e) => [String(e)]);
      console.error(`----- Chromium's page events\n${events.map((e) => JSON.stringify(e)).join('\n')}`);
      console.error(`----- Chromium's console\n${(await browserLog(session)).join('\n')}`);
    }
    console.error(`----- the coordinator's stderr\n${redact(coordinator.stderr.join('\n'))}`);
    throw err;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err) => console.error(`cleanup: ${err.message}`));
  }
}

/**
 * In `app`'s page: console warnings and errors from now on (window.__consoleLog), for a failure
 * report; the decoder says there why a tile cannot show a video.
 */
const keepConsole = (app) => app.evalAsync(`
  window.__consoleLog ??= [];
  if (!window.__consoleKept) {
    window.__consoleKept = true;
    for (const level of ['warn', 'error']) {
      const original = console[level].bind(console);
      console[level] = (...parts) => {
        window.__consoleLog.push(level + ': ' + parts.map(String).join(' '));
        original(...parts);
      };
    }
  }
  return true;`);
const consoleLog = (app) => app.evalAsync('return window.__consoleLog ?? [];');

// B joins, leaves and joins again (as after a dropped connection or a wrong click) while A
// stays: A must show B's camera again, as it did the first time.
async function rejoin(t) {
  const coordinator = await Coordinator.start();
  const callId = newCallId();
  try {
    await withApp(t, async (a) => {
      await signInForVideo(a, coordinator, 'alice', 'Alice Anders');
      await joinCall(a, callId);
      await keepConsole(a);
      await withApp(t, async (b) => {
        await signInForVideo(b, coordinator, 'bob', 'Bob Berg');
        for (const round of [1, 2, 3]) {
          await joinCall(b, callId);
          await seesPattern(b, 'alice', { timeoutMs: 20000 });
          try {
            await seesPattern(a, 'bob', { timeoutMs: 20000 });
          } catch (err) {
            const tile = await tileOf(a, 'bob');
            const placeholder = await a.text('#call-grid .tile[data-identity="bob"] .tile-placeholder').catch(() => '');
            const received = await a.evalAsync(`return [window.__confabCall.framesReceived('bob'), window.__confabCall.decoded('bob')];`);
            await a.screenshot(`call-rejoin-a-round-${round}`);
            throw new Error(`join ${round} of B: ${err.message}. A's tile of B: ${JSON.stringify(tile)}; ` +
              `it says "${placeholder}"; frames received ${received[0]}, decoded ${received[1]}; ` +
              `A's page said: ${JSON.stringify(await consoleLog(a))}`);
          }
          console.log(`join ${round} of B: A draws B's camera`);
          await b.click('#leave-call');
          await onScreen(b, 'lobby');
          await waitFor('B\'s tile gone from A', async () => (await tileOf(a, 'bob')) === null, { timeoutMs: 15000 });
          await sleep(1000);
        }
      }, { shot: 'call-rejoin-b-end' });
    }, { shot: 'call-rejoin-a-end' });
  } finally {
    await coordinator.stop();
  }
}

/** The identities `app` receives audio or video from, by the statistics (call_media_stats). */
const receivingFrom = async (app) => (await app.evalAsync(`return await window.__TAURI__.core.invoke('call_media_stats');`))
  .filter((s) => s.direction === 'in').map((s) => `${s.identity} ${s.kind}`).sort();

// A and B are in a call; two confab-call-probe participants (640x360 H.264 and a tone each)
// join and leave; then a third joins: both windows must receive and draw the newcomer, as
// they did the first two.
async function newcomerAfterLeavers(t) {
  const coordinator = await Coordinator.start();
  const callId = newCallId();
  const probes = [];
  const startProbe = async (user) => {
    const probe = Probe.start({ ...(await coordinator.joinCall(user, callId)), seconds: 120 });
    probes.push(probe);
    await probe.waitFor('"joined" event', (e) => e.event === 'joined', 15_000);
    return probe;
  };
  try {
    await aliceAndBob(t, coordinator, callId, async (a, b) => {
      for (const user of ['probe1', 'probe2']) await startProbe(user);
      for (const app of [a, b]) {
        for (const user of ['probe1', 'probe2']) await waitForFrames(app, user, { timeoutMs: 20000 });
      }
      for (const probe of probes.splice(0)) await probe.stop();
      for (const user of ['probe1', 'probe2']) await leaveCallRest(coordinator, user, callId);
      for (const app of [a, b]) {
        await waitFor('the probes\' tiles gone', async () => (await tiles(app)).every((x) => !x.identity.startsWith('probe')), { timeoutMs: 15000 });
      }

      await startProbe('probe3');
      const problems = [];
      for (const [app, name] of [[a, 'A'], [b, 'B']]) {
        const drawn = await waitForFrames(app, 'probe3', { timeoutMs: 15000 }).then(() => null, (err) => err.message);
        const from = await receivingFrom(app);
        console.log(`${name} receives: ${from.join(', ')}${drawn ? '; it does not draw probe3' : '; it draws probe3'}`);
        if (drawn) problems.push(`${name} (in the call before the others came and went) does not show the newcomer: ${drawn}; it receives only ${from.join(', ')}`);
        if (!from.includes('probe3 audio')) problems.push(`${name} does not receive the newcomer's audio`);
        await app.screenshot(`call-newcomer-${name.toLowerCase()}`);
      }
      assert.deepEqual(problems, [], `problems:\n  ${problems.join('\n  ')}`);
    }, 'call-newcomer');
  } catch (err) {
    for (const probe of probes) console.error(`----- ${probe.events.find((e) => e.event === 'joined')?.identity ?? 'a probe'}\n${redact(probe.report())}`);
    console.error(`----- the coordinator's stderr\n${redact(coordinator.stderr.join('\n'))}`);
    throw err;
  } finally {
    for (const probe of probes) await probe.stop();
    await coordinator.stop();
  }
}

// As a webview without VideoDecoder would (the page's test hook): the backend decodes H.264
// and sends pictures, which the tile draws. A probe publishes the test pattern.
async function rustDecode(t) {
  const coordinator = await Coordinator.start();
  const callId = newCallId();
  let probe = null;
  try {
    await withApp(t, async (a) => {
      await signInForVideo(a, coordinator, 'alice', 'Alice Anders');
      await a.evalAsync('window.__confabCall.decodeInRustNextCall(); return true;');
      await joinCall(a, callId);
      probe = Probe.start({ ...(await coordinator.joinCall('probe', callId)), seconds: 60 });
      await waitForFrames(a, 'probe', { timeoutMs: 20000 });
      const sample = await seesPattern(a, 'probe');
      console.log(`A draws the probe's pictures (decoded in Rust) ${sample.now - sample.code} ms after they were rendered (${sample.picture.width}x${sample.picture.height})`);
      // Nothing was decoded by WebCodecs: the pictures came decoded.
      assert.equal(await a.evalAsync(`return window.__confabCall.decoded('probe');`), 0);
    }, { shot: 'call-rust-decode' });
  } finally {
    await probe?.stop();
    await coordinator.stop();
  }
}

// The tests run in a network namespace of their own: this file runs itself again in one.
if (inOwnNetwork()) {
  test(TWO_WINDOWS, { timeout: TEST_TIMEOUT_MS }, twoWindows);
  test(CHROMIUM, { timeout: TEST_TIMEOUT_MS }, chromiumParticipant);
  test(REJOIN, { timeout: TEST_TIMEOUT_MS }, rejoin);
  test(AFTER_LEAVERS, { timeout: TEST_TIMEOUT_MS }, newcomerAfterLeavers);
  test(RUST_DECODE, { timeout: TEST_TIMEOUT_MS }, rustDecode);
} else {
  test('calls with audio and video (in a network namespace of its own)', { timeout: 5 * TEST_TIMEOUT_MS + 60_000 }, async () => {
    // CONFAB_CALL_TESTS (a name pattern) runs only the tests it matches.
    const only = process.env.CONFAB_CALL_TESTS ? [`--test-name-pattern=${process.env.CONFAB_CALL_TESTS}`] : [];
    const { code, signal, hint } = await runInOwnNetwork(thisFile, {
      nodeArgs: ['--test-reporter=spec', ...only],
      timeoutMs: 5 * TEST_TIMEOUT_MS + 30_000,
    });
    assert.equal(code, 0, `the tests in the namespace failed (exit ${code ?? signal}): their output is above.${hint}`);
  });
}
