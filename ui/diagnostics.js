// Diagnostics: a panel beside the screens with the token inspector (which counts down while the
// panel is open), the connection timeline, log levels per scope, and the export.
import * as bridge from './bridge.js';
import { describeError } from './bridge.js';
import { $ } from './dom.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
const TIMELINE_LENGTH = 50;

// Refreshes the token inspector every second while the panel is open.
let inspectorTimer;

/** Binds the panel's buttons. */
export function setup() {
  $('open-diagnostics').addEventListener('click', togglePanel);
  $('close-diagnostics').addEventListener('click', togglePanel);
  $('export-diagnostics').addEventListener('click', exportDiagnostics);
}

async function togglePanel() {
  const panel = $('diagnostics');
  panel.hidden = !panel.hidden;
  $('open-diagnostics').setAttribute('aria-expanded', String(!panel.hidden));
  clearInterval(inspectorTimer);
  if (panel.hidden) {
    $('open-diagnostics').focus();
  } else {
    await refreshInspector();
    inspectorTimer = setInterval(refreshInspector, 1000);
    $('diagnostics-title').tabIndex = -1;
    $('diagnostics-title').focus();
  }
}

function formatSeconds(s) {
  const sign = s < 0 ? '-' : '';
  s = Math.abs(Math.round(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${sign}${h ? `${h} h ` : ''}${h || m ? `${m} min ` : ''}${sec} s`;
}

// The token's claims and where it came from; never the token itself.
async function refreshInspector() {
  const info = await bridge.tokenInfo().catch(() => null);
  const dl = $('token-inspector');
  const rows = info
    ? [
      ['Status', 'In use'],
      ['User', info.user_id ?? '—'],
      ['Role', info.role ?? '—'],
      ['Source', info.source],
      ['Issued', info.issued_at ? new Date(info.issued_at * 1000).toLocaleString() : '—'],
      ['Expires', info.expires_at ? new Date(info.expires_at * 1000).toLocaleString() : 'never'],
      ['Expires in', info.expires_in_s == null ? 'never' : formatSeconds(info.expires_in_s)],
      ['Provider calls', String(info.provider_calls)],
    ]
    : [['Status', 'Not signed in']];
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dd.dataset.field = k.toLowerCase().replace(/ /g, '-');
    return [dt, dd];
  }));
  dl.dataset.signedIn = String(Boolean(info));
}

/** Adds a connection state (an EVENTS.connection payload) to the timeline, keeping the latest. */
export function addToTimeline(status) {
  const item = document.createElement('li');
  const time = new Date(status.at_unix_ms ?? Date.now()).toLocaleTimeString();
  const detail = status.attempt ? ` (attempt ${status.attempt})` : '';
  item.textContent = `${time} ${status.state}${detail}${status.reason ? `: ${status.reason}` : ''}`;
  item.dataset.state = status.state;
  $('timeline').append(item);
  while ($('timeline').children.length > TIMELINE_LENGTH) $('timeline').firstElementChild.remove();
}

/** Fills the log-level table from the backend (a start-up step). */
export async function showLogLevels() {
  renderLevels(await bridge.logLevels());
}

// One row per scope: a level picker; scopes other than `default` can follow `default`.
function renderLevels(levels) {
  const body = $('log-levels');
  body.replaceChildren();
  for (const { scope, level, own } of levels) {
    const row = document.createElement('tr');
    const name = document.createElement('th');
    name.scope = 'row';
    name.textContent = scope;
    const cell = document.createElement('td');
    const select = document.createElement('select');
    select.id = `level-${scope}`;
    select.setAttribute('aria-label', `Log level for ${scope}`);
    if (scope !== 'default') {
      select.add(new Option(`as default (${level})`, ''));
    }
    for (const l of LEVELS) select.add(new Option(l, l));
    select.value = scope === 'default' || own ? level : '';
    select.addEventListener('change', async () => {
      try {
        renderLevels(await bridge.setLogLevel(scope, select.value || null));
        $(`level-${scope}`).focus();
      } catch (err) {
        $('export-result').textContent = describeError(err);
      }
    });
    cell.append(select);
    row.append(name, cell);
    body.append(row);
  }
}

async function exportDiagnostics() {
  const result = $('export-result');
  try {
    const path = await bridge.exportDiagnostics();
    result.textContent = `Saved to ${path}`;
    result.dataset.state = 'ok';
    result.dataset.path = path;
  } catch (err) {
    result.textContent = `Export failed: ${describeError(err)}`;
    result.dataset.state = 'error';
  }
}
