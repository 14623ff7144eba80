// A smoke test of the installed (unpacked) package's binary, run by scripts/check-package.sh
// with CONFAB_APP pointing at it: the window opens, a local sign-in connects.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connected } from './flows.mjs';
import { withApp } from './webdriver.mjs';

test('the installed binary opens its window, signs in locally and connects', async (t) => {
  assert.ok(process.env.CONFAB_APP && !process.env.CONFAB_APP.includes('/target/debug/'), 'CONFAB_APP names the installed binary');
  await withApp(t, async (app) => {
    assert.match(await app.text('#version'), /^\d+\.\d+\.\d+$/);
    await app.fill('#sign-in-user', 'smoke');
    await app.click('#sign-in-form button[type="submit"]');
    await connected(app);
  }, { shot: 'installed-smoke' });
});
