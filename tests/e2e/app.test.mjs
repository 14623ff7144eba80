import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import { connected, joinAsGuest, onScreen } from './flows.mjs';
import { repoRoot, screenshotDir, waitFor, withApp } from './webdriver.mjs';

async function packageVersion() {
  const manifest = await readFile(path.join(repoRoot, 'Cargo.toml'), 'utf8');
  return manifest.match(/\[workspace\.package\][^[]*?version\s*=\s*"([^"]+)"/)[1];
}

test('the window opens and shows the backend it runs on', async (t) => {
  await withApp(t, async (app) => {
    assert.equal(await app.text('#welcome-title'), 'Video calls that feel at home on your desktop');
    // Filled in from the `app_info` command: proof that the page reached Rust.
    assert.equal(await app.text('#version'), await packageVersion());
    assert.equal(await app.text('#mode'), 'Local mode');
    assert.match(await app.text('#backend'), /local coordinator at 127\.0\.0\.1:\d+/);

    // The embedded coordinator answers on that address with Stream-shaped errors.
    const url = await app.attribute('#backend', 'data-url');
    const res = await fetch(`${url}/edges?api_key=not-this-app`);
    assert.equal(res.status, 401);
    const body = await res.json();
    assert.equal(body.code, 2);
    assert.equal(body.StatusCode, 401);
  });
  const shot = await stat(path.join(screenshotDir, 'the-window-opens-and-shows-the-backend-it-runs-on.png'));
  assert.ok(shot.size > 1000, 'a real screenshot was saved');
});

test('a command round-trips to Rust and its event reaches the page', async (t) => {
  await withApp(t, async (app) => {
    await app.click('#self-check');
    const state = await waitFor('the self-check to finish', () =>
      app.attribute('#self-check-result', 'data-state'));
    assert.equal(state, 'ok', await app.text('#self-check-result'));
    assert.match(await app.text('#self-check-result'), /^Backend answered in \d+ ms$/);

    // The same path driven from a script: the event must carry the nonce we sent.
    const payload = await app.evalAsync(`
      const { invoke } = window.__TAURI__.core;
      const { listen } = window.__TAURI__.event;
      let answer;
      const answered = new Promise((resolve) => { answer = resolve; });
      const unlisten = await listen('confab:pong', (e) => answer(e.payload));
      await invoke('ping', { nonce: 'e2e-nonce-42' });
      const payload = await answered;
      unlisten();
      return payload;`);
    assert.equal(payload.nonce, 'e2e-nonce-42');
    assert.ok(Math.abs(payload.handled_at_ms - Date.now()) < 60000);
  });
});

test('errors reach the page as {code, message} and ungranted commands are refused', async (t) => {
  await withApp(t, async (app) => {
    const bad = await app.evalAsync(`
      try { await window.__TAURI__.core.invoke('ping', { nonce: '  ' }); return null; }
      catch (err) { return err; }`);
    assert.deepEqual(Object.keys(bad).sort(), ['code', 'message']);
    assert.equal(bad.code, 'invalid_input');
    assert.match(bad.message, /nonce/);

    // The main window's capability lists only the app's own commands and event listening:
    // a core command it was not granted must be refused by the access-control list.
    const refused = await app.evalAsync(`
      try { await window.__TAURI__.core.invoke('plugin:app|version'); return 'allowed'; }
      catch (err) { return String(err); }`);
    assert.notEqual(refused, 'allowed');
    assert.match(refused, /not allowed/i);
  });
});

test('the diagnostics panel changes a scope\'s level and exports diagnostics without secrets', async (t) => {
  await withApp(t, async (app) => {
    await app.click('#open-diagnostics');
    assert.equal(await app.attribute('#open-diagnostics', 'aria-expanded'), 'true');
    assert.equal(await app.attribute('#level-default', 'value'), 'warn');
    assert.equal(await app.attribute('#level-connection', 'value'), '');

    // Default to info, so the panel's own changes are logged; then "debug" for connection.
    await app.click('#level-default option[value="info"]');
    await waitFor('default to apply', async () => (await app.attribute('#level-default', 'value')) === 'info');
    await app.click('#level-connection option[value="debug"]');
    await waitFor('the level to apply', async () =>
      (await app.attribute('#level-connection', 'value')) === 'debug');
    const levels = await app.evalAsync(`return await window.__TAURI__.core.invoke('log_levels');`);
    assert.deepEqual(levels.find((l) => l.scope === 'connection'), { scope: 'connection', level: 'debug', own: true });

    // Back to following default.
    await app.click('#level-connection option[value=""]');
    await waitFor('the reset to apply', async () => {
      const now = await app.evalAsync(`return await window.__TAURI__.core.invoke('log_levels');`);
      return now.find((l) => l.scope === 'connection').own === false;
    });

    // A bad scope is refused with {code, message}.
    const bad = await app.evalAsync(`
      try { await window.__TAURI__.core.invoke('set_log_level', { scope: 'nope', level: 'debug' }); return null; }
      catch (err) { return err; }`);
    assert.equal(bad.code, 'invalid_input');
    assert.match(bad.message, /no log scope "nope"/);

    await app.click('#export-diagnostics');
    const file = await waitFor('the export', () => app.attribute('#export-result', 'data-path'));
    const exported = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(exported.app, 'Confab');
    assert.equal(exported.version, await packageVersion());
    assert.ok(exported.recent_logs.some((l) => l.includes('log level changed')), 'recent logs are included');
    assert.ok(exported.log_levels.length >= 5);
    const text = JSON.stringify(exported);
    assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/, 'no token in the export');
  });
});

test('the fake camera previews in the lobby, the meter moves, and choices are listed', async (t) => {
  await withApp(t, async (app) => {
    // No camera runs on the start screen.
    assert.equal(await app.attribute('#preview', 'data-frames'), null);
    await joinAsGuest(app, 'Pat Preview');
    await waitFor('preview frames', async () => Number(await app.attribute('#preview', 'data-frames')) > 10);
    // The canvas shows the test pattern's bars: read pixels back from the page.
    const pixels = await app.evalAsync(`
      const c = document.getElementById('preview');
      const ctx = c.getContext('2d');
      const y = Math.floor(c.height * 0.5);
      return [0, 1, 2, 3, 4, 5, 6].map((i) => Array.from(ctx.getImageData(Math.floor((i + 0.5) * c.width / 7), y, 1, 1).data));`);
    const bars = [[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16], [235, 16, 235], [235, 16, 16], [16, 16, 235]];
    pixels.forEach((px, i) => assert.deepEqual(px.slice(0, 3), bars[i], `bar ${i}`));

    const cameras = await app.evalAsync(`return Array.from(document.querySelectorAll('#pick-camera option')).map((o) => o.value);`);
    assert.ok(cameras.includes('fake:camera:test-pattern'), String(cameras));

    // Pick the tone microphone: its level (about -15 dBFS) reaches the meter.
    await app.click('#pick-microphone option[value="fake:microphone:tone"]');
    await waitFor('the meter to show the tone', async () => {
      const v = Number(await app.attribute('#mic-level', 'value'));
      return v > -20 && v < -10;
    });

    // The test sound plays on PulseAudio's null sink.
    await app.click('#test-tone');
    await waitFor('the test sound', async () => (await app.text('#devices-status')) === 'Played a test sound');
    await app.screenshot('screen-lobby');
  });
});

test('a device choice survives a restart', async (t) => {
  const speakerKey = async (app) => app.evalAsync(`
    const o = Array.from(document.querySelectorAll('#pick-speaker option')).find((o) => o.textContent === 'Confab-Test-Speaker');
    return o ? o.value : null;`);
  let speaker;
  await withApp(t, async (app) => {
    await joinAsGuest(app, 'Dee Vices');
    const selected = async (kind) => (await app.evalAsync(`return await window.__TAURI__.core.invoke('list_devices');`)).selection.selected[kind];
    await app.click('#pick-microphone option[value="fake:microphone:tone"]');
    await waitFor('the microphone choice', async () => (await selected('microphone')) === 'fake:microphone:tone');
    speaker = await waitFor('the PulseAudio null sink in the list', () => speakerKey(app));
    await app.click(`#pick-speaker option[value="${speaker}"]`);
    await waitFor('the speaker choice', async () => (await selected('speaker')) === speaker);
  });
  await withApp(t, async (app) => {
    await joinAsGuest(app, 'Dee Vices');
    assert.equal(await app.attribute('#pick-microphone', 'value'), 'fake:microphone:tone');
    assert.equal(await app.attribute('#pick-speaker', 'value'), speaker);
    // Back to the defaults, so later tests start from them.
    const selected = async (kind) => (await app.evalAsync(`return await window.__TAURI__.core.invoke('list_devices');`)).selection.selected[kind] ?? 'default';
    await app.click('#pick-microphone option[value="default"]');
    await waitFor('the default microphone', async () => (await selected('microphone')) === 'default');
    await app.click('#pick-speaker option[value="default"]');
    await waitFor('the default speaker', async () => (await selected('speaker')) === 'default');
  }, { shot: 'a-device-choice-survives-a-restart-2' });
});

test('local sign-in reaches connected, the token inspector shows the minted token, and a guest joins with the typed name', async (t) => {
  await withApp(t, async (app) => {
    assert.equal(await app.text('#connection'), 'Not signed in');
    await app.screenshot('screen-start');
    await app.fill('#sign-in-user', 'alice');
    await app.fill('#sign-in-name', 'Alice Liddell');
    await app.click('#sign-in-form button[type="submit"]');
    await connected(app);
    assert.equal(await app.text('#connection'), 'Connected');
    assert.equal(await app.attribute('#app', 'data-screen'), 'lobby');
    assert.equal(await app.text('#who'), 'Alice Liddell');

    // The token inspector: claims and a countdown, never the token.
    await app.click('#open-diagnostics');
    await waitFor('the inspector', async () => (await app.attribute('#token-inspector', 'data-signed-in')) === 'true');
    assert.equal(await app.text('#token-inspector dd[data-field="user"]'), 'alice');
    assert.equal(await app.text('#token-inspector dd[data-field="source"]'), 'minted by this computer');
    const first = await app.text('#token-inspector dd[data-field="expires-in"]');
    assert.match(first, /^(59 min|1 h 0 min) \d+ s$/);
    await waitFor('the countdown to move', async () => (await app.text('#token-inspector dd[data-field="expires-in"]')) !== first, { timeoutMs: 5000 });
    assert.doesNotMatch(await app.text('#diagnostics'), /eyJ/);
    const timeline = await app.evalAsync(`return Array.from(document.querySelectorAll('#timeline li')).map((li) => li.dataset.state);`);
    assert.deepEqual(timeline, ['connecting', 'connected']);
    await app.screenshot('screen-diagnostics');
    await app.click('#open-diagnostics');

    await app.click('#sign-out');
    await waitFor('signed out', async () => (await app.text('#connection')) === 'Not signed in');
    assert.equal(await app.attribute('#app', 'data-screen'), 'start');

    // A bad user id is explained, not sent.
    await app.fill('#sign-in-user', 'not valid!');
    await app.click('#sign-in-form button[type="submit"]');
    await waitFor('the error', async () => /A user id is/.test(await app.text('#session-error')));

    await joinAsGuest(app, 'Gus Guest');
    await connected(app);
    assert.equal(await app.text('#who'), 'Gus Guest (guest)');

    // The connection timeline is in the diagnostics export.
    await app.click('#open-diagnostics');
    await app.click('#export-diagnostics');
    const file = await waitFor('the export', () => app.attribute('#export-result', 'data-path'));
    const exported = JSON.parse(await readFile(file, 'utf8'));
    const states = exported.connection_timeline.map((e) => e.state);
    assert.ok(states.includes('connecting') && states.includes('connected'), String(states));
    assert.ok(exported.devices.some((d) => d.key === 'fake:camera:test-pattern'));
  });
});

test('a host goes live from backstage; anonymous viewers watch with no token and with a call token; a token for another call is refused', async (t) => {
  await withApp(t, async (app) => {
    await app.fill('#sign-in-user', 'host');
    await app.fill('#sign-in-name', 'Hana Host');
    await app.click('#sign-in-form button[type="submit"]');
    await connected(app);

    // Host two livestreams; keep the viewer token of the second.
    const tokens = {};
    for (const id of ['show', 'other']) {
      await app.click('#join-type option[value="livestream"]');
      await app.fill('#join-call', id);
      await app.click('#join-form button[type="submit"]');
      await waitFor(`livestream ${id}`, async () => (await app.attribute('#call-title', 'data-cid')) === `livestream:${id}`);
      assert.equal(await app.text('#call-live'), 'Backstage');
      assert.equal(await app.text('#participants li'), 'Hana Host (you)');
      await app.click('#share-viewer-token');
      tokens[id] = await waitFor('the viewer token', () => app.attribute('#host-result', 'data-token'));
      if (id === 'show') {
        await app.screenshot('screen-call-backstage');
        await app.click('#go-live');
        await waitFor('live', async () => (await app.text('#call-live')) === 'Live');
        assert.equal(await app.attribute('#stop-live', 'hidden'), null);
        await app.screenshot('screen-call-live');
      }
      await app.click('#leave-call');
      await onScreen(app, 'lobby');
      await app.evalAsync(`document.getElementById('host-result').removeAttribute('data-token'); return true;`);
    }
    await app.click('#sign-out');
    await onScreen(app, 'start');

    const watch = async (id, token) => {
      await app.fill('#watch-call', id);
      await app.fill('#watch-token', token ?? '');
      await app.evalAsync(`document.getElementById('session-error').textContent = ''; document.getElementById('watch-result').textContent = ''; return true;`);
      await app.click('#watch-form button[type="submit"]');
      const answer = await waitFor('an answer', async () => (await app.text('#watch-result')) || (await app.text('#session-error')));
      if ((await app.attribute('#app', 'data-screen')) === 'watch') {
        await app.click('#stop-watching');
        await onScreen(app, 'start');
      }
      return answer;
    };
    assert.equal(await watch('show'), 'livestream:show: live');
    assert.equal(await watch('other', tokens.other), 'livestream:other: backstage, the host has not gone live yet');
    assert.match(await watch('show', tokens.other), /does not let you watch livestream:show: it is for another call/);
    assert.match(await watch('nothing-here'), /There is no livestream livestream:nothing-here/);

    // The watch screen itself, for the README.
    await app.fill('#watch-call', 'show');
    await app.fill('#watch-token', '');
    await app.click('#watch-form button[type="submit"]');
    await onScreen(app, 'watch');
    assert.equal(await app.text('#watch-live'), 'Live');
    await app.screenshot('screen-watch');
  });
});
