// Choosing what to share: a dialog listing the screen and each window (share_sources), each
// with a small picture refreshed every second while the dialog is open (share_thumbnail).
// Picking one starts sharing (start_share); the call screen shows the indicator and Stop. On
// Wayland the list is one entry, the desktop's portal, whose own dialog does the choosing.
import * as bridge from '../bridge.js';
import { describeError } from '../bridge.js';
import { $ } from '../dom.js';

const THUMB_WIDTH = 320;
const THUMB_HEIGHT = 180;
const REFRESH_MS = 1000;

let refreshTimer = null;
// Which opening the thumbnails belong to: an older one's answers are dropped.
let opening = 0;
let onPicked = null;

/** Binds the dialog (once). `picked(source)` is called with the chosen { id, title }. */
export function setup(picked) {
  onPicked = picked;
  const dialog = $('share-picker');
  $('share-cancel').addEventListener('click', () => close());
  dialog.addEventListener('close', stopRefreshing);
  dialog.addEventListener('cancel', () => stopRefreshing());
  $('share-sources').addEventListener('click', (e) => {
    const button = e.target.closest('.share-source');
    if (!button) return;
    const source = { id: button.dataset.sourceId, title: button.dataset.title };
    close();
    onPicked?.(source);
  });
}

/** Opens the picker and lists what can be shared. */
export async function open() {
  const dialog = $('share-picker');
  const mine = ++opening;
  $('share-sources').replaceChildren();
  $('share-picker-status').textContent = 'Looking for screens and windows…';
  if (!dialog.open) dialog.showModal();
  let listing;
  try {
    listing = await bridge.shareSources();
  } catch (err) {
    if (mine === opening) $('share-picker-status').textContent = describeError(err);
    return;
  }
  if (mine !== opening || !dialog.open) return;
  const sources = listing.sources ?? [];
  // Wayland: the desktop's own dialog lists what can be shared; hand over to it.
  if (sources.length === 1 && sources[0].kind === 'portal') {
    close();
    onPicked?.(sources[0]);
    return;
  }
  $('share-picker-status').textContent = sources.length
    ? 'Pick a screen or a window. Everyone in the call will see it.'
    : 'There is nothing to share.';
  $('share-sources').replaceChildren(...sources.map(sourceButton));
  refresh(mine);
  stopRefreshing();
  refreshTimer = setInterval(() => refresh(mine), REFRESH_MS);
  $('share-sources').querySelector('.share-source')?.focus();
}

export function close() {
  stopRefreshing();
  opening += 1;
  const dialog = $('share-picker');
  if (dialog.open) dialog.close();
}

function stopRefreshing() {
  clearInterval(refreshTimer);
  refreshTimer = null;
}

function sourceButton(source) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'share-source';
  button.dataset.sourceId = source.id;
  button.dataset.kind = source.kind;
  button.dataset.title = source.title;
  const canvas = document.createElement('canvas');
  canvas.width = THUMB_WIDTH;
  canvas.height = THUMB_HEIGHT;
  canvas.setAttribute('aria-hidden', 'true');
  const caption = document.createElement('span');
  caption.textContent = source.kind === 'screen' ? `${source.title} (${source.width}x${source.height})` : source.title;
  button.title = caption.textContent;
  button.setAttribute('aria-label', `Share ${source.kind === 'screen' ? 'the entire screen' : `the window ${source.title}`}`);
  button.append(canvas, caption);
  return button;
}

// Draws each source's picture now; a window that closed meanwhile leaves the list.
async function refresh(mine) {
  for (const button of [...$('share-sources').querySelectorAll('.share-source')]) {
    if (mine !== opening) return;
    try {
      const bytes = new Uint8Array(await bridge.shareThumbnail(button.dataset.sourceId, THUMB_WIDTH, THUMB_HEIGHT));
      if (mine !== opening) return;
      // Marked once the picture is on the canvas (it is drawn from a bitmap made off-thread).
      if (await drawThumbnail(button.querySelector('canvas'), bytes)) button.dataset.thumbnail = 'true';
    } catch (err) {
      if (err?.code === 'source_gone') button.remove();
      else if (err?.code !== 'source_hidden') console.warn('share thumbnail', err);
    }
  }
}

/** Draws a thumbnail; resolves true once it is on the canvas. */
async function drawThumbnail(canvas, bytes) {
  if (bytes.length < 8) return false;
  const header = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const width = header.getUint32(0, true);
  const height = header.getUint32(4, true);
  if (width === 0 || height === 0 || bytes.length !== 8 + width * height * 4) return false;
  const image = new ImageData(new Uint8ClampedArray(bytes.buffer, bytes.byteOffset + 8, width * height * 4), width, height);
  let bitmap;
  try {
    bitmap = await createImageBitmap(image);
  } catch {
    return false;
  }
  // Centred, letterboxed; cleared and drawn in one go, so the picture never shows black between.
  const context = canvas.getContext('2d');
  context.fillStyle = '#000';
  context.fillRect(0, 0, canvas.width, canvas.height);
  const scale = Math.min(canvas.width / width, canvas.height / height);
  const w = width * scale;
  const h = height * scale;
  context.drawImage(bitmap, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  bitmap.close();
  return true;
}
