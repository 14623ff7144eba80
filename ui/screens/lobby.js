// The lobby: who is signed in, the camera and sound (see devices.js), and joining a call.
import * as bridge from '../bridge.js';
import { describeError } from '../bridge.js';
import { holdCapture, releaseCapture } from '../devices.js';
import { $ } from '../dom.js';
import { navigate } from '../router.js';
import { state } from '../state.js';
import { clearError, showConnection, showError, showMode } from '../status.js';

/** Binds the lobby's controls. */
export function setup() {
  $('sign-out').addEventListener('click', async () => {
    const signedOut = await bridge.signOut().catch((err) => ({ message: describeError(err) }));
    showConnection({ state: 'idle' });
    state.backend = null;
    await navigate('start', { signedOut });
  });
  $('join-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError();
    try {
      const view = await bridge.joinCall($('join-type').value, $('join-call').value);
      await navigate('call', { view });
    } catch (err) {
      showError(describeError(err));
    }
  });
}

/**
 * Starts the camera preview and the mic meter. `signedIn` (the answer of sign_in,
 * join_as_guest or restore_sign_in) is given when arriving from the start screen.
 */
export async function enter({ signedIn } = {}) {
  if (signedIn) showSignedIn(signedIn);
  if (state.pendingJoin) {
    fillCall(state.pendingJoin);
    state.pendingJoin = null;
  }
  await holdCapture('lobby');
}

/** A confab://join link's call, filled into the join form (joining stays the person's click). */
export function fillCall({ call_type: callType, call_id: callId }) {
  $('join-type').value = callType;
  $('join-call').value = callId;
  $('join-form').dataset.fromLink = `${callType}:${callId}`;
}

/** Stops the preview and the meter, unless the next screen (the call) shows them too. */
export async function leave() {
  await releaseCapture('lobby');
}

function showSignedIn(me) {
  state.backend = me.backend;
  $('who').textContent = me.role === 'guest' ? `${me.name ?? me.user_id} (guest)` : (me.name ?? me.user_id);
  $('who').dataset.userId = me.user_id;
  $('remember-result').textContent = me.remembered?.message ?? '';
  $('remember-result').dataset.stored = String(Boolean(me.remembered?.stored));
  clearError();
  showMode(me.backend === 'stream' ? 'Stream' : 'Local mode');
}
