// What people do in the window, shared by the end-to-end tests and the benchmarks: wait for a
// screen or the connection, join as a guest, go live as a host, watch as an anonymous viewer,
// and read a frame back from the viewer's page.

import { waitFor } from './webdriver.mjs';

const screen = (app) => app.attribute('#app', 'data-screen');

/** Waits until `name` (start, lobby, call, watch) is the screen on show. */
export const onScreen = (app, name, { timeoutMs } = {}) =>
  waitFor(`the ${name} screen`, async () => (await screen(app)) === name, { timeoutMs });

/** Connected, and the sign-in's answer has reached the page (it has left the start screen). */
export const connected = (app, { timeoutMs } = {}) => waitFor('connected', async () =>
  (await app.attribute('#connection', 'data-state')) === 'connected' && (await screen(app)) !== 'start', { timeoutMs });

/** Joins as a guest from the start screen and waits for the lobby. */
export async function joinAsGuest(app, name) {
  await app.fill('#guest-name', name);
  await app.click('#guest-form button[type="submit"]');
  await onScreen(app, 'lobby');
}

/** In the viewer's page: the video drawn to a canvas, the bar colours and the time code. */
export const SAMPLE_FRAME = `
  const video = document.getElementById('player');
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return null;
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0, w, h);
  const px = (x, y) => Array.from(ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data).slice(0, 3);
  const bars = [0, 1, 2, 3, 4, 5, 6].map((i) => px((i + 0.5) * w / 7, h * 0.5));
  // The pattern's time code: 44 cells along the bottom, white = 1 (see confab-devices fake.rs).
  const strip = Math.max(4, Math.floor(h / 12));
  const top = h - strip + Math.floor(strip / 4), bottom = h - Math.floor(strip / 4);
  const y = Math.floor((top + bottom) / 2);
  let ms = 0;
  for (let bit = 0; bit < 44; bit++) {
    const x0 = Math.floor(bit * w / 44), x1 = Math.floor((bit + 1) * w / 44);
    const [r, g, b] = px(Math.floor((x0 + x1) / 2), y);
    ms = ms * 2 + ((r + g + b) / 3 > 128 ? 1 : 0);
  }
  return { bars, renderedAt: ms, now: Date.now(), currentTime: video.currentTime, width: w, height: h };`;

/**
 * Signs in as `host` (local mode), joins the livestream `callId` and goes live; resolves to
 * where viewers find it. `inLobby(host)` runs in the lobby first (to choose devices).
 */
export async function goLive(host, callId, { inLobby } = {}) {
  await host.fill('#sign-in-user', 'host');
  await host.fill('#sign-in-name', 'Hana Host');
  await host.click('#sign-in-form button[type="submit"]');
  await onScreen(host, 'lobby');
  if (inLobby) await inLobby(host);
  await host.click('#join-type option[value="livestream"]');
  await host.fill('#join-call', callId);
  await host.click('#join-form button[type="submit"]');
  await onScreen(host, 'call');
  await host.click('#go-live');
  await waitFor('broadcasting', async () => /^Broadcasting: /.test(await host.text('#broadcast-status')), { timeoutMs: 20000 });
  return { baseURL: await host.attribute('#backend', 'data-url'), apiKey: await host.attribute('#backend', 'data-api-key') };
}

export async function watchAnonymously(viewer, { baseURL, apiKey }, callId) {
  await viewer.click('#backend-stream');
  await viewer.fill('#stream-api-key', apiKey);
  await viewer.fill('#stream-base-url', baseURL);
  await viewer.fill('#watch-call', callId);
  await viewer.click('#watch-form button[type="submit"]');
  await onScreen(viewer, 'watch');
}

