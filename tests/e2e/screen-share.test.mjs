// Screen sharing in a call, end to end under Xvfb: a window draws the fake camera's test
// pattern (confab-pattern-window: colour bars and a wall-clock time code); Alice's app picks
// it from the share picker (which shows a live picture of it) and shares it; Bob's app shows
// it as the large tile with Alice's name, the bars' colours and a recent time code; stopping
// removes the tile; sharing again and then closing the window stops the share and tells both.
//
// The coordinator and the apps run as in call.test.mjs, in a network namespace of their own.
// Run inside the test session:
//   cargo build -p confab -p confab-coordinator -p confab-screen
//   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- keyctl session - \
//     bash scripts/test-session.sh node --test tests/e2e/screen-share.test.mjs
// Screenshots: target/e2e/share-*.png.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  Coordinator, aliceAndBob, inOwnNetwork, patternProblem, patternWindow, pickerEntry, redact, runInOwnNetwork, sampleTile,
  shareWindow, tileOf, waitForFrames,
} from './call-helpers.mjs';
import { waitFor } from './webdriver.mjs';

const thisFile = fileURLToPath(import.meta.url);
const TEST_TIMEOUT_MS = 240_000;
const TITLE = 'Shared test pattern';
// The share's time code against the watching page's clock: capture at 15 fps, encode, SFU,
// decode, paint, on a 2-core machine running two apps.
const MAX_PICTURE_AGE_MS = 1500;
const SCREEN_TILE = 'alice#screen';

/** Waits until `app`'s tile of Alice's screen shows the pattern with a recent time code. */
async function seesSharedPattern(app) {
  let problem = 'not sampled';
  try {
    return await waitFor('the shared pattern', async () => {
      const sample = await sampleTile(app, SCREEN_TILE);
      problem = patternProblem(sample, MAX_PICTURE_AGE_MS);
      return problem ? null : sample;
    }, { timeoutMs: 20000, intervalMs: 250 });
  } catch {
    throw new Error(`B's tile of Alice's screen never showed the pattern with a time code under ${MAX_PICTURE_AGE_MS} ms old: last, ${problem}`);
  }
}

async function shareAWindow(t) {
  const coordinator = await Coordinator.start();
  const window = await patternWindow(TITLE);
  const callId = `share${randomBytes(4).toString('hex')}`;
  try {
    await aliceAndBob(t, coordinator, callId, async (a, b) => {
      // The share button is there for a participant of a meeting (the screenshare capability).
      assert.equal(await a.attribute('#toggle-share', 'hidden'), null, 'A has no share button');

      // The picker lists the screen and the window, with a live picture of the window.
      // (Waited for: the first picture of a window covered by others can be partly black, until
      // it repaints into the off-screen copy the capture asks the server to keep; the picker
      // takes a new one each second. Seen once in a full run: its first bar black, its last blue.)
      const showsPattern = (e) => e.firstBar.every((c) => c > 190) && e.lastBar[2] > 190 && e.lastBar[0] < 60;
      const entry = await pickerEntry(a, TITLE, showsPattern);
      console.log(`the picker lists ${entry.kinds.join(', ')} (${entry.titles.join(' | ')}); the window's picture: first bar ${entry.firstBar}, last ${entry.lastBar}`);
      assert.equal(entry.kinds[0], 'screen', 'the whole screen comes first');
      assert.ok(entry.kinds.includes('window'));
      // Each Confab window is named after its call and its person, not just "Confab".
      for (const person of ['Alice Anders', 'Bob Berg']) {
        const name = `Call ${callId} — ${person} — Confab`;
        assert.ok(entry.titles.includes(name), `the picker does not list "${name}": ${entry.titles.join(' | ')}`);
      }
      assert.ok(entry.firstBar.every((c) => c > 190), `the picture's first bar is not white: ${entry.firstBar}`);
      assert.ok(entry.lastBar[2] > 190 && entry.lastBar[0] < 60, `the picture's last bar is not blue: ${entry.lastBar}`);
      await a.screenshot('share-a-picker');
      await a.click('#share-cancel');
      await waitFor('the picker to close', async () => !(await a.evalAsync(`return document.getElementById('share-picker').open;`)), { timeoutMs: 5000 });

      // A shares the window: A's window says so; B shows it large, named, with the pattern.
      await shareWindow(a, TITLE);
      const banner = await a.text('#sharing-text');
      assert.equal(banner, `You are sharing “${TITLE}”`);
      assert.equal(await a.attribute('#toggle-share', 'aria-pressed'), 'true');
      await waitForFrames(b, SCREEN_TILE, { timeoutMs: 20000 });
      const sample = await seesSharedPattern(b);
      const tile = await tileOf(b, SCREEN_TILE);
      console.log(`B draws A's shared window ${sample.now - sample.code} ms after it was drawn (${sample.picture.width}x${sample.picture.height} in ${sample.width}x${sample.height}); the tile is in the ${tile.spot} spot`);
      assert.equal(tile.spot, 'focus', 'the shared screen takes the large spot');
      const name = await b.evalAsync(`return document.querySelector('#call-grid .tile[data-identity="' + CSS.escape(args[0]) + '"] .tile-name')?.textContent ?? null;`, SCREEN_TILE);
      assert.equal(name, 'Alice Anders\'s screen');
      // Alice's camera is still shown, in the strip.
      assert.equal((await tileOf(b, 'alice'))?.spot, 'strip');
      await b.screenshot('share-b-sees-window');
      await a.screenshot('share-a-sharing');

      // A stops from the call screen: the tile goes from B, the indicator from A.
      await a.click('#stop-share');
      await waitFor('the shared screen\'s tile gone from B', async () => (await tileOf(b, SCREEN_TILE)) === null, { timeoutMs: 10000 });
      await waitFor('A\'s indicator gone', async () => (await a.attribute('#sharing-banner', 'hidden')) !== null, { timeoutMs: 5000 });

      // Shared again, then the window is closed: the share stops, A is told why, B's tile goes.
      await shareWindow(a, TITLE);
      await waitForFrames(b, SCREEN_TILE, { timeoutMs: 20000 });
      await window.stop();
      await waitFor('A to say the window closed', async () => (await a.text('#call-media-status').catch(() => '')).includes('The shared window was closed'), { timeoutMs: 10000 });
      await waitFor('the tile gone from B after the window closed', async () => (await tileOf(b, SCREEN_TILE)) === null, { timeoutMs: 10000 });
      assert.notEqual(await a.attribute('#sharing-banner', 'hidden'), null, 'A still says it is sharing');
      await a.screenshot('share-a-window-closed');
    }, 'share');
  } catch (err) {
    console.error(`----- the coordinator's stderr\n${redact(coordinator.stderr.join('\n'))}`);
    throw err;
  } finally {
    await window.stop();
    await coordinator.stop();
  }
}

if (inOwnNetwork()) {
  test('a shared window is seen large by the other app with its pattern; stopping or closing it removes the tile', { timeout: TEST_TIMEOUT_MS }, shareAWindow);
} else {
  test('screen sharing (in a network namespace of its own)', { timeout: TEST_TIMEOUT_MS + 60_000 }, async () => {
    const { code, signal, hint } = await runInOwnNetwork(thisFile, {
      nodeArgs: ['--test-reporter=spec'],
      timeoutMs: TEST_TIMEOUT_MS + 30_000,
    });
    assert.equal(code, 0, `the tests in the namespace failed (exit ${code ?? signal}): their output is above.${hint}`);
  });
}
