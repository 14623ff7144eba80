// The one place that talks to the Rust backend: a function per Tauri command, the event names,
// and a listener helper. No other module calls invoke or spells an event name, so this file
// is the page's whole contract with src-tauri/. Each command is invoked with its name written
// out in single quotes, so grepping this file for invoke calls lists every command the page uses.
const { invoke, Channel } = window.__TAURI__.core;
const tauriEvent = window.__TAURI__.event;

/** Events the backend emits to the page. */
export const EVENTS = Object.freeze({
  connection: 'confab:connection',
  call: 'confab:call',
  broadcast: 'confab:broadcast',
  device: 'confab:device',
  micLevel: 'confab:mic-level',
  pong: 'confab:pong',
  /** A confab:// link to follow ({link}) or why it cannot be ({error: {code, message}}). */
  link: 'confab:link',
});

/** Calls `onPayload` with each `event`'s payload; resolves to a function that stops listening. */
export const listen = (event, onPayload) => tauriEvent.listen(event, (e) => onPayload(e.payload));

/** Errors from commands arrive as {code, message}; anything else is shown as text. */
export function describeError(err) {
  if (err && typeof err === 'object' && 'message' in err) return err.message;
  return String(err);
}

// Start-up and the self-check (answered with an EVENTS.pong carrying the nonce).
export const appInfo = () => invoke('app_info');
export const ping = (nonce) => invoke('ping', { nonce });
/** The page's ready signal, with how long each start-up step took (for the log). */
export const uiReady = (phases) => invoke('ui_ready', { phases });

// Diagnostics.
export const logLevels = () => invoke('log_levels');
/** `level` null makes `scope` follow `default` again; resolves to all scopes' levels. */
export const setLogLevel = (scope, level) => invoke('set_log_level', { scope, level });
export const exportDiagnostics = () => invoke('export_diagnostics');
export const tokenInfo = () => invoke('token_info');

// Devices.
export const listDevices = () => invoke('list_devices');
export const selectDevice = (kind, key) => invoke('select_device', { kind, key });
/**
 * Starts (or restarts) the camera preview. Frames come over a channel, not events: each is a
 * 16-byte header (width, height, little-endian u32s) then RGBA pixels, passed to `onFrame`.
 */
export function startPreview(onFrame, { width, height, fps }) {
  const frames = new Channel();
  frames.onmessage = onFrame;
  return invoke('start_preview', { frames, width, height, fps });
}
/** Tells the backend a frame is on screen, so it sends the next. */
export const previewShown = () => invoke('preview_shown');
export const stopPreview = () => invoke('stop_preview');
export const startMicMeter = () => invoke('start_mic_meter');
export const stopMicMeter = () => invoke('stop_mic_meter');
export const playTestTone = () => invoke('play_test_tone');

// Signing in and out.
/** `args`: { backend, userId, name, token, tokenUrl, remember }. */
export const signIn = (args) => invoke('sign_in', args);
export const restoreSignIn = () => invoke('restore_sign_in');
/** `args`: { backend, name, image, trustLocalNetwork }. */
export const joinAsGuest = (args) => invoke('join_as_guest', args);
export const signOut = () => invoke('sign_out');

// Calls and livestreams.
export const joinCall = (callType, callId) => invoke('join_call', { callType, callId });
export const leaveCall = () => invoke('leave_call');
/** Resolves to whether the call is now live. */
export const setLive = (live) => invoke('set_live', { live });
export const viewerToken = () => invoke('viewer_token');
export const watchLivestream = (backend, callId, callToken) =>
  invoke('watch_livestream', { backend, callId, callToken });

// Hosting for your network: resolves to { address, invite_link, qr_code }.
export const startHosting = (callType, callId) => invoke('start_hosting', { callType, callId });
export const stopHosting = () => invoke('stop_hosting');
