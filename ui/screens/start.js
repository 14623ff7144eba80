// The start screen: where to connect (this computer or Stream), the three ways in (sign in,
// join as a guest, watch a livestream: see watch.js for the last), the app's version and
// backend, and the self-check.
import * as bridge from '../bridge.js';
import { EVENTS, describeError, listen } from '../bridge.js';
import { $ } from '../dom.js';
import { hostOf } from '../links.js';
import { navigate } from '../router.js';
import { state } from '../state.js';
import { clearError, showError, showMode } from '../status.js';

/** Binds the start screen's controls. */
export function setup() {
  $('self-check').addEventListener('click', selfCheck);
  for (const id of ['backend-local', 'backend-stream']) $(id).addEventListener('change', showBackendFields);
  $('sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signInWith(bridge.signIn, {
      backend: chosenBackend(),
      userId: $('sign-in-user').value,
      name: $('sign-in-name').value || null,
      token: $('sign-in-token').value || null,
      tokenUrl: $('sign-in-token-url').value || null,
      remember: $('remember-me').checked,
    });
  });
  $('guest-form').addEventListener('submit', (e) => {
    e.preventDefault();
    // An invite names the other Confab's coordinator; otherwise, where the form says.
    signInWith(bridge.joinAsGuest, {
      backend: state.pendingJoin?.backend ?? chosenBackend(),
      name: $('guest-name').value,
      image: $('guest-image').value || null,
      trustLocalNetwork: Boolean(state.pendingJoin?.backend) && $('invite-trust-host').checked,
    });
  });
}

/**
 * Nothing runs on the start screen. `signedOut` (sign_out's answer) says what happened to the
 * remembered sign-in; the token fields are emptied so the next person does not reuse them.
 */
export function enter({ signedOut } = {}) {
  if (!signedOut) return;
  $('keychain-note').textContent = signedOut.message ?? '';
  $('sign-in-token').value = '';
  $('sign-in-token-url').value = '';
}

export function leave() {}

/** The version and backend, from app_info (a start-up step). */
export async function showAppInfo() {
  const info = await bridge.appInfo();
  $('version').textContent = info.version;
  $('backend').textContent = info.mode === 'local'
    ? `This computer (local coordinator at ${new URL(info.coordinator_url).host})`
    : 'Stream';
  $('backend').dataset.url = info.coordinator_url;
  $('backend').dataset.apiKey = info.api_key;
  showMode(info.mode === 'local' ? 'Local mode' : 'Stream', 'ok');
}

/** At start: signs in with what the keychain remembers, if anything (a start-up step). */
export async function restoreSignIn() {
  const restored = await bridge.restoreSignIn();
  fillBackend(restored.backend);
  if (!restored.keychain_available) $('remember-me').disabled = true;
  $('keychain-note').textContent = restored.message ?? '';
  $('keychain-note').dataset.keychain = restored.keychain_available ? 'available' : 'unavailable';
  if (restored.signed_in) await navigate('lobby', { signedIn: restored.signed_in });
}

async function signInWith(command, args) {
  clearError();
  try {
    await navigate('lobby', { signedIn: await command(args) });
  } catch (err) {
    showError(describeError(err));
    // An invite that could not be followed (an unreachable host) is dropped.
    if (state.pendingJoin?.backend) showInvite(null);
  }
}

/**
 * Says which call a confab://join link asked for (`link`, or null to forget it). An invite
 * (a link with a backend) is joined as a guest on that host; a plain link after any sign-in.
 */
export function showInvite(link) {
  const note = $('invite-note');
  $('invite-trust-host').checked = false;
  if (!link) {
    state.pendingJoin = null;
    note.textContent = '';
    $('invite').hidden = true;
    return;
  }
  // Another computer on the network (not this one): joining needs the person's explicit trust.
  const host = link.backend ? new URL(link.backend.base_url).hostname : '';
  $('invite-trust').hidden = !host || /^(127\.|localhost$|\[::1\]$)/.test(host);
  const call = `${link.call_type}:${link.call_id}`;
  note.textContent = link.backend
    ? `You are invited to ${call} on the Confab at ${hostOf(link.backend)}. Type your name and join as a guest.`
    : `Sign in or join as a guest to join ${call}.`;
  note.dataset.call = call;
  $('invite').hidden = false;
  (link.backend ? $('guest-name') : $('sign-in-user')).focus();
}

/** Where to connect, as the sign-in and watch commands take it: the embedded coordinator or Stream. */
export function chosenBackend() {
  if (!$('backend-stream').checked) return { kind: 'local' };
  return {
    kind: 'stream',
    api_key: $('stream-api-key').value,
    base_url: $('stream-base-url').value || null,
  };
}

function showBackendFields() {
  const stream = $('backend-stream').checked;
  $('stream-fields').hidden = !stream;
  $('token-label').textContent = stream ? 'Token' : 'Token (optional here)';
  // Stream needs a token or a token URL; on this computer Confab makes tokens itself.
  $('token-details').open = stream;
}

function fillBackend(backend) {
  if (!backend) return;
  $('backend-stream').checked = backend.kind === 'stream';
  $('backend-local').checked = backend.kind !== 'stream';
  if (backend.kind === 'stream') {
    $('stream-api-key').value = backend.api_key;
    $('stream-base-url').value = backend.base_url ?? '';
  }
  showBackendFields();
}

// The self-check sends a nonce; the backend answers with an EVENTS.pong carrying it.
async function selfCheck() {
  const result = $('self-check-result');
  const nonce = crypto.randomUUID();
  const sentAt = performance.now();
  result.textContent = 'Checking…';
  delete result.dataset.state;

  let answer;
  const answered = new Promise((resolve, reject) => {
    answer = resolve;
    setTimeout(() => reject(new Error('no answer within 5 seconds')), 5000);
  });
  // Listen before sending, so the answer cannot arrive first.
  const unlisten = await listen(EVENTS.pong, (pong) => {
    if (pong.nonce === nonce) answer(pong);
  });
  try {
    await bridge.ping(nonce);
    await answered;
    const ms = Math.max(1, Math.round(performance.now() - sentAt));
    result.textContent = `Backend answered in ${ms} ms`;
    result.dataset.state = 'ok';
  } catch (err) {
    result.textContent = `Backend check failed: ${describeError(err)}`;
    result.dataset.state = 'error';
  } finally {
    unlisten();
  }
}
