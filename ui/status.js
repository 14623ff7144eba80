// The status bar (connection and mode pills) and the error banner under it.
import { addToTimeline } from './diagnostics.js';
import { $ } from './dom.js';

const STATE_TEXT = {
  idle: 'Not signed in',
  connecting: 'Connecting…',
  connected: 'Connected',
  refreshing: 'Token expired: refreshing…',
  disconnected: 'Disconnected',
};

// Redraws the connection pill's "next in N s" while a retry is pending.
let retryCountdown;

/** Shows a connection state (an EVENTS.connection payload) and records it in the timeline. */
export function showConnection(status) {
  const pill = $('connection');
  pill.dataset.state = status.state;
  clearInterval(retryCountdown);
  if (status.state === 'reconnecting' || status.state === 'offline') {
    const retryAt = Date.now() + (status.next_retry_ms ?? 0);
    const what = status.state === 'offline' ? 'Offline: coordinator unreachable, retrying' : 'Reconnecting';
    const render = () => {
      const seconds = Math.max(0, (retryAt - Date.now()) / 1000).toFixed(1);
      pill.textContent = `${what} (attempt ${status.attempt}, next in ${seconds} s)`;
    };
    render();
    retryCountdown = setInterval(render, 100);
  } else {
    pill.textContent = STATE_TEXT[status.state] ?? status.state;
  }
  if (status.state === 'connected') clearError();
  if (status.state === 'disconnected' && status.reason && status.reason !== 'Signed out.') {
    showError(status.reason);
  }
  addToTimeline(status);
}

/** The mode pill: local or Stream. `state` (ok, error) is left as it is when not given. */
export function showMode(text, state) {
  const mode = $('mode');
  mode.textContent = text;
  if (state) mode.dataset.state = state;
}

/** The banner for what went wrong with signing in, joining or watching. */
export function showError(text) {
  $('session-error').textContent = text;
}

export const clearError = () => showError('');
