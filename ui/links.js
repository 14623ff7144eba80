// Following confab:// links (EVENTS.link). The backend reads and checks each link; this
// decides what it does from where the window is. A link that cannot be followed shows its
// plain message in the error banner and changes nothing else.
import { navigate } from './router.js';
import * as lobby from './screens/lobby.js';
import * as start from './screens/start.js';
import * as watch from './screens/watch.js';
import { state } from './state.js';
import { clearError, showError } from './status.js';

/** An EVENTS.link payload: { link } or { error: { code, message } }. */
export async function follow(payload) {
  if (payload.error) {
    showError(payload.error.message);
    return;
  }
  const { link } = payload;
  const call = `${link.call_type ?? 'livestream'}:${link.call_id}`;
  if (state.screen === 'call') {
    showError(`Leave this call before opening the link to ${call}.`);
    return;
  }
  if (link.action === 'watch') {
    await watch.watchLink(link);
    return;
  }
  if (link.action !== 'join') return;
  if (state.screen === 'lobby') {
    if (link.backend) {
      showError(`Sign out first to join ${call} on another Confab (${hostOf(link.backend)}).`);
      return;
    }
    clearError();
    lobby.fillCall(link);
    return;
  }
  // Not signed in: the lobby gets the call after sign-in.
  clearError();
  state.pendingJoin = link;
  if (state.screen !== 'start') await navigate('start');
  start.showInvite(link);
}

/** `IP:PORT` of a link's backend, for plain words. */
export const hostOf = (backend) => new URL(backend.base_url).host;
