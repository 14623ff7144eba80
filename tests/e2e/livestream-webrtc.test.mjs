// Livestreams over the SFU (#16), end to end in real windows: a host app (local mode, its
// coordinator and SFU embedded) goes live with the fake camera and a tone microphone. An
// anonymous viewer with a call token for that livestream watches over WebRTC: the host's tile
// shows the pattern with a recent time code, and the viewer's speaker (a PulseAudio null sink
// of its own, chosen in the lobby beforehand and recorded from its monitor) carries the tone. The host allows one WebRTC viewer
// (CONFAB_LIVESTREAM_WEBRTC_VIEWERS=1), so a second viewer with the same token plays the HLS
// playlist the coordinator packages from the host's forwarded packets, with the tone too. The
// host stops: both viewers show the end.
//
// The file runs itself again in a network namespace with only a loopback interface, as the
// call tests do (call-helpers.mjs runInOwnNetwork).
//
// Run inside the test session:
//   cargo build -p confab -p confab-coordinator
//   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- keyctl session - \
//     bash scripts/test-session.sh node --test tests/e2e/livestream-webrtc.test.mjs
// Screenshots: target/e2e/livestream-webrtc-*.png.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  BARS, describeSound, inOwnNetwork, listen, nullSink, patternProblem, pick, runInOwnNetwork, sampleTile, sleep,
} from './call-helpers.mjs';
import { SAMPLE_FRAME, goLive, onScreen } from './flows.mjs';
import { waitFor, withApp } from './webdriver.mjs';

const thisFile = fileURLToPath(import.meta.url);
const TEST_TIMEOUT_MS = 300_000;
const TITLE = 'a host goes live; a viewer with a call token sees and hears it over WebRTC, the next one (over the cap) over HLS; both see the end';

// The host's microphone sings this; another pitch must not be what the viewers hear.
const TONE_HZ = 523;
const OTHER_HZ = 784;
const PITCHES = [TONE_HZ, OTHER_HZ];
const LOUD_DBFS = -45;
// How old the WebRTC viewer's picture may be (its time code against the page's clock).
const MAX_PICTURE_AGE_MS = 1500;

/** The tone, loud and mostly unbroken (at most `maxSilent` of 10 ms blocks digital silence). */
function assertHearsTone(heard, who, maxSilent) {
  const text = describeSound(heard, PITCHES);
  console.log(`${who}: ${text}`);
  assert.ok(heard[TONE_HZ].dbfs > LOUD_DBFS, `${who} does not play ${TONE_HZ} Hz (over ${LOUD_DBFS} dBFS): ${text}`);
  assert.ok(heard[TONE_HZ].share > 0.3, `${who}'s output is mostly something else than ${TONE_HZ} Hz: ${text}`);
  assert.ok(heard.silentShare <= maxSilent, `${who} plays with gaps (over ${maxSilent * 100} % of 10 ms blocks silent): ${text}`);
}

/** The host goes live with the fake camera and the tone; resolves to where viewers find it and a viewer token. */
async function hostGoesLive(host, callId) {
  const where = await goLive(host, callId, {
    inLobby: async () => {
      await pick(host, 'pick-camera', { value: 'fake:camera:test-pattern' });
      await pick(host, 'pick-microphone', { value: 'fake:microphone:tone' });
    },
  });
  await host.click('#share-viewer-token');
  const token = await waitFor('a viewer token', () => host.attribute('#host-result', 'data-token'), { timeoutMs: 5000 });
  return { ...where, token };
}

/**
 * The viewer's speaker, chosen as a person would: in the lobby (as a guest on this computer),
 * then signed out; the choice is remembered, and watching plays on it.
 */
async function chooseSpeaker(viewer, label) {
  await viewer.fill('#guest-name', 'Vera Viewer');
  await viewer.click('#guest-form button[type="submit"]');
  await onScreen(viewer, 'lobby');
  await pick(viewer, 'pick-speaker', { label });
  await viewer.click('#sign-out');
  await onScreen(viewer, 'start');
}

/** Watches `callId` anonymously from the start screen with the call token; waits for the watch screen. */
async function watchWithToken(viewer, { baseURL, apiKey, token }, callId) {
  await viewer.click('#backend-stream');
  await viewer.fill('#stream-api-key', apiKey);
  await viewer.fill('#stream-base-url', baseURL);
  await viewer.fill('#watch-call', callId);
  await viewer.fill('#watch-token', token);
  await viewer.click('#watch-form button[type="submit"]');
  await onScreen(viewer, 'watch');
}

const delivery = (viewer) => viewer.attribute('#watch-delivery', 'data-delivery');

async function liveOverSfu(t) {
  const callId = `live${randomBytes(4).toString('hex')}`;
  const sinkOne = await nullSink('confab_viewer_one', 'Viewer-One');
  const sinkTwo = await nullSink('confab_viewer_two', 'Viewer-Two');
  try {
    await withApp(t, async (host) => {
      const where = await hostGoesLive(host, callId);
      await withApp(t, async (one) => {
        await chooseSpeaker(one, sinkOne.description);
        await watchWithToken(one, where, callId);
        await waitFor('WebRTC delivery', async () => (await delivery(one)) === 'webrtc', { timeoutMs: 15000 });
        assert.equal(await one.text('#watch-delivery'), 'Watching live over WebRTC');

        // The host's tile draws the pattern, with a time code under MAX_PICTURE_AGE_MS old.
        let problem = 'not sampled';
        const sample = await waitFor('the host\'s pattern over WebRTC', async () => {
          const s = await sampleTile(one, 'host', '#watch-stage');
          problem = patternProblem(s, MAX_PICTURE_AGE_MS);
          return problem ? null : s;
        }, { timeoutMs: 20000, intervalMs: 200 }).catch(() => { throw new Error(`the WebRTC viewer never drew the pattern: ${problem}`); });
        console.log(`WebRTC viewer draws the host's camera ${sample.now - sample.code} ms after it was rendered (${sample.picture.width}x${sample.picture.height})`);
        // Playout on a busy machine (three apps, debug builds) has some gaps; none would be 100 %.
        assertHearsTone(await listen(sinkOne.name, PITCHES), 'the WebRTC viewer\'s speaker', 0.5);
        assert.equal(await one.text('#watch-live'), 'Live');
        await waitFor('one viewer counted', async () => (await one.text('#watch-viewers')) === '1 watching', { timeoutMs: 8000 });
        await one.screenshot('livestream-webrtc-viewer');

        await withApp(t, async (two) => {
          // Its sound plays in the page's player: the webview's GStreamer follows PULSE_SINK.
          await watchWithToken(two, where, callId);
          // The cap is 1: this viewer is sent to HLS, and the screen says why.
          await waitFor('HLS delivery', async () => (await delivery(two)) === 'hls', { timeoutMs: 15000 });
          const says = await two.text('#watch-delivery');
          assert.match(says, /^Watching over HLS/, says);
          await waitFor('the video to play', async () => Number(await two.evalAsync(`return document.getElementById('player').currentTime;`)) > 0.5, { timeoutMs: 25000 });
          // The pattern's bars and a time code from the last 15 s (the playlist runs behind).
          let last = null;
          const frame = await waitFor('the pattern from the playlist', async () => {
            last = await two.evalAsync(SAMPLE_FRAME);
            const age = last ? last.now - last.renderedAt : -1;
            const bars = last?.bars.every((px, i) => px.every((c, k) => Math.abs(c - BARS[i][k]) <= 48));
            return bars && age >= 0 && age < 15000 ? last : null;
          }, { timeoutMs: 10000, intervalMs: 250 }).catch(() => { throw new Error(`the HLS viewer never showed the pattern: ${JSON.stringify(last)}`); });
          // One of the host's simulcast layers, as forwarded: the best one flowing (it follows
          // the host's send bandwidth estimate, which a busy machine keeps below 720p at times).
          assert.ok(['1280x720', '640x360', '320x180'].includes(`${frame.width}x${frame.height}`), `${frame.width}x${frame.height}`);
          const age = frame.now - frame.renderedAt;
          console.log(`HLS viewer: ${says}; ${frame.width}x${frame.height}, ${age} ms behind the camera`);
          // The tone, not its continuity: this webview's HLS sound has gaps that vary from run
          // to run (0-75 % of 10 ms blocks silent measured; 83-91 % when hls.js caught up by
          // playing faster). The gaps are logged, not asserted.
          // Its sound may start a little after its picture (the player appends the audio of a
          // segment on its own schedule): listened to again, up to twice, before it counts as
          // missing.
          let heard = await listen(sinkTwo.name, PITCHES);
          for (let again = 0; again < 2 && !(heard[TONE_HZ].dbfs > LOUD_DBFS); again++) {
            console.log(`the HLS viewer's speaker, not yet: ${describeSound(heard, PITCHES)}`);
            await sleep(2000);
            heard = await listen(sinkTwo.name, PITCHES);
          }
          assertHearsTone(heard, 'the HLS viewer\'s speaker', 1);
          await waitFor('both viewers counted', async () => (await two.text('#watch-viewers')) === '2 watching', { timeoutMs: 8000 });
          await two.screenshot('livestream-webrtc-hls-viewer');

          // The host stops: both viewers are told the stream has ended.
          await host.click('#stop-live');
          await waitFor('the host back in backstage', async () => (await host.text('#call-live')) === 'Backstage', { timeoutMs: 15000 });
          for (const [who, viewer] of [['WebRTC', one], ['HLS', two]]) {
            await waitFor(`the end for the ${who} viewer`, async () => (await viewer.text('#player-state')) === 'The stream has ended.', { timeoutMs: 15000 });
          }
        }, { env: { PULSE_SINK: sinkTwo.name }, shot: 'livestream-webrtc-two' });
      }, { env: { PULSE_SINK: sinkOne.name }, shot: 'livestream-webrtc-one' });
    }, { env: { CONFAB_FAKE_TONE_HZ: String(TONE_HZ), CONFAB_LIVESTREAM_WEBRTC_VIEWERS: '1' }, shot: 'livestream-webrtc-host' });
  } finally {
    await sinkOne.unload();
    await sinkTwo.unload();
  }
}

if (inOwnNetwork()) {
  test(TITLE, { timeout: TEST_TIMEOUT_MS }, liveOverSfu);
} else {
  test(`${TITLE} (in a network namespace of its own)`, { timeout: TEST_TIMEOUT_MS + 60_000 }, async () => {
    const { code, signal, hint } = await runInOwnNetwork(thisFile, { nodeArgs: ['--test-reporter=spec'], timeoutMs: TEST_TIMEOUT_MS + 30_000 });
    assert.equal(code, 0, `the test in the namespace failed (exit ${code ?? signal}): its output is above.${hint}`);
  });
}
