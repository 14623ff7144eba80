// The call's statistics: a side panel (like diagnostics) with a row per track, sent and
// received, refreshed every second from call_media_stats while it is open.
import * as bridge from './bridge.js';
import { describeError } from './bridge.js';
import { $ } from './dom.js';

const REFRESH_MS = 1000;

let timer;
// Who an identity is, for the participant column (the call screen knows the names).
let nameOf = (identity) => identity;

/** Binds the panel's buttons; `names(identity)` gives a participant's name. */
export function setup(names) {
  nameOf = names;
  $('open-stats').addEventListener('click', () => (isOpen() ? close() : open()));
  $('close-stats').addEventListener('click', close);
}

const isOpen = () => !$('stats-panel').hidden;

/** Opens the panel and refreshes it every second. */
export async function open() {
  $('stats-panel').hidden = false;
  $('open-stats').setAttribute('aria-expanded', 'true');
  $('open-stats').setAttribute('aria-pressed', 'true');
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
  $('stats-title').tabIndex = -1;
  $('stats-title').focus();
  await refresh();
}

/** Closes the panel and stops refreshing (also when the call screen is left). */
export function close() {
  const wasOpen = isOpen();
  clearInterval(timer);
  timer = undefined;
  $('stats-panel').hidden = true;
  $('open-stats').setAttribute('aria-expanded', 'false');
  $('open-stats').setAttribute('aria-pressed', 'false');
  if (wasOpen && !$('screen-call').hidden) $('open-stats').focus();
}

async function refresh() {
  let rows;
  try {
    rows = await bridge.callMediaStats();
    $('stats-note').textContent = `Updated ${new Date().toLocaleTimeString()}, every second.`;
    delete $('stats-note').dataset.state;
  } catch (err) {
    rows = [];
    $('stats-note').textContent = `No statistics: ${describeError(err)}`;
    $('stats-note').dataset.state = 'error';
  }
  if (!isOpen()) return;
  const body = $('stats-body');
  if (!Array.isArray(rows) || rows.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = 9;
    td.className = 'muted';
    td.textContent = 'No audio or video is being sent or received.';
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  // Sent first, then by participant, then audio before video.
  rows = [...rows].sort((a, b) => (a.direction === b.direction ? 0 : a.direction === 'out' ? -1 : 1)
    || String(a.identity).localeCompare(String(b.identity))
    || String(a.kind).localeCompare(String(b.kind))
    || String(a.rid ?? '').localeCompare(String(b.rid ?? '')));
  body.replaceChildren(...rows.map(row));
}

const dash = '—';
const number = (value, digits = 0) => (value == null || !Number.isFinite(Number(value)) ? dash : Number(value).toFixed(digits));

function row(stat) {
  const tr = document.createElement('tr');
  tr.dataset.trackSid = stat.track_sid;
  tr.dataset.direction = stat.direction;
  tr.dataset.kind = stat.kind;
  if (stat.rid) tr.dataset.rid = stat.rid;
  const codec = String(stat.codec ?? '').replace(/^(audio|video)\//, '') || dash;
  const cells = {
    direction: stat.direction === 'out' ? '↑ out' : '↓ in',
    participant: stat.direction === 'out' ? 'You' : nameOf(stat.identity),
    kind: stat.kind,
    codec: stat.rid ? `${codec} (${stat.rid})` : codec,
    resolution: stat.width && stat.height ? `${stat.width}×${stat.height}` : dash,
    fps: number(stat.fps),
    bitrate: number((stat.bitrate_bps ?? 0) / 1000),
    // `loss` is the fraction (0 to 1) of packets lost.
    loss: stat.loss == null ? dash : number(stat.loss * 100, 1),
    rtt: number(stat.rtt_ms),
  };
  for (const [field, text] of Object.entries(cells)) {
    const td = document.createElement(field === 'direction' ? 'th' : 'td');
    if (field === 'direction') td.scope = 'row';
    td.dataset.field = field;
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}
