// Screens that fit: at the default window size (1100x720) and at the minimum (720x520), each
// screen's main action is inside the viewport without scrolling, and diagnostics opens as a
// panel beside the screen (over it when the window is narrow) that can be closed.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { onScreen } from './flows.mjs';
import { waitFor, withApp } from './webdriver.mjs';

const SIZES = [
  [1100, 720],
  [720, 520],
];

/** Where `css` is, with the screen scrolled to its top, against the page's viewport. */
const PLACE = `
  const [css] = args;
  document.querySelector('main').scrollTop = 0;
  const el = document.querySelector(css);
  const r = el.getBoundingClientRect();
  return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height,
           vw: window.innerWidth, vh: window.innerHeight };`;

async function assertVisible(app, css, what) {
  const p = await app.evalAsync(PLACE, css);
  assert.ok(p.width > 0 && p.height > 0, `${what} is shown (${JSON.stringify(p)})`);
  assert.ok(
    p.top >= 0 && p.left >= 0 && p.bottom <= p.vh && p.right <= p.vw,
    `${what} is inside the ${p.vw}x${p.vh} viewport without scrolling: ${JSON.stringify(p)}`,
  );
  return p;
}

for (const [width, height] of SIZES) {
  test(`at ${width}x${height} the start screen, the lobby and the call show their main action, and diagnostics opens beside them`, async (t) => {
    await withApp(t, async (app) => {
      await app.setWindowSize(width, height);
      // The page sees the new size once the window manager has applied it.
      await waitFor('the window to take its size', async () => {
        const vw = await app.evalAsync('return window.innerWidth;');
        return Math.abs(vw - width) < 40;
      });
      await onScreen(app, 'start');
      await assertVisible(app, '#sign-in-form button[type="submit"]', 'Sign in');
      await app.screenshot(`layout-${width}x${height}-start`);

      await app.fill('#sign-in-user', 'fitter');
      await app.click('#sign-in-form button[type="submit"]');
      await onScreen(app, 'lobby');
      await assertVisible(app, '#join-form button[type="submit"]', 'Join');
      await assertVisible(app, '#preview', 'the camera preview');
      await app.screenshot(`layout-${width}x${height}-lobby`);

      // Diagnostics: beside the lobby (or over it when narrow), and closable.
      await app.click('#open-diagnostics');
      const panel = await assertVisible(app, '#close-diagnostics', 'the diagnostics close button');
      const main = await app.evalAsync(`const r = document.querySelector('main').getBoundingClientRect(); return { right: r.right };`);
      const aside = await app.evalAsync(`const r = document.getElementById('diagnostics').getBoundingClientRect(); return { left: r.left, top: r.top, bottom: r.bottom };`);
      if (width >= 1000) {
        assert.ok(main.right <= aside.left + 1, `the panel sits beside the screen: ${JSON.stringify({ main, aside })}`);
      }
      assert.ok(aside.bottom <= panel.vh + 1, 'the panel fits the window\'s height');
      await app.screenshot(`layout-${width}x${height}-diagnostics`);
      await app.click('#close-diagnostics');
      assert.equal(await app.attribute('#open-diagnostics', 'aria-expanded'), 'false');
      assert.equal(await app.evalAsync(`return document.getElementById('diagnostics').hidden;`), true);

      await app.fill('#join-call', `fit-${width}`);
      await app.click('#join-form button[type="submit"]');
      await onScreen(app, 'call');
      await assertVisible(app, '#leave-call', 'Leave');
      await app.screenshot(`layout-${width}x${height}-call`);
      await app.click('#leave-call');
      await onScreen(app, 'lobby');
    });
  });
}
