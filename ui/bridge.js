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
/** The window's title as the desktop shows it (task bar, share pickers). */
export const setWindowTitle = (title) => invoke('set_window_title', { title });

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
/** Plays a live livestream over WebRTC when it can: `{delivery: 'webrtc'|'hls', reason}`. */
export const startWatching = (backend, callId, callToken) =>
  invoke('start_watching', { backend, callId, callToken });
export const stopWatching = () => invoke('stop_watching');

// Hosting for your network: resolves to { address, invite_link, qr_code }.
export const startHosting = (callType, callId) => invoke('start_hosting', { callType, callId });
export const stopHosting = () => invoke('stop_hosting');

// Call media (docs/call-media.md): audio and video run in the backend; the page shows them.
/**
 * Hands the backend a channel for the joined call's media and resolves to the media view as it
 * is now. `onMessage` gets each message after: a view (an object with type 'view') or one
 * encoded video frame (a Uint8Array).
 */
export function attachCallMedia(onMessage) {
  const channel = new Channel();
  channel.onmessage = (message) => {
    const normalised = channelMessage(message);
    if (normalised) onMessage(normalised);
  };
  return invoke('call_media_attach', { channel });
}
export const setMicrophoneMuted = (muted) => invoke('set_microphone_muted', { muted });
export const setCameraEnabled = (enabled) => invoke('set_camera_enabled', { enabled });
/** A remote video's decoder waits for a keyframe: ask its publisher for one. */
export const requestKeyframe = (trackSid) => invoke('request_keyframe', { trackSid });
/** The size (device pixels) a remote video is shown at; 0x0 when it is not visible. */
export const setVideoView = (trackSid, width, height) =>
  invoke('set_video_view', { trackSid, width, height });
/** `kind`: camera, microphone or speaker. The choice is remembered, as the lobby's is. */
export const switchCallDevice = (kind, key) => invoke('switch_call_device', { kind, key });
export const callMediaStats = () => invoke('call_media_stats');
/** For a webview without WebCodecs: the backend decodes H.264 and sends pictures instead. */
export const decodeVideoInRust = (enabled) => invoke('decode_video_in_rust', { enabled });
/** Echo cancellation, noise suppression and gain control, for this call and the next. */
export const setAudioProcessing = (enabled) => invoke('set_audio_processing', { enabled });
// Screen sharing: what can be shared, a picture of one (8 bytes of size, then RGBA), start, stop.
export const shareSources = () => invoke('share_sources');
export const shareThumbnail = (sourceId, width, height) => invoke('share_thumbnail', { sourceId, width, height });
export const startShare = (sourceId, title) => invoke('start_share', { sourceId, title });
export const stopShare = () => invoke('stop_share');

// Raw channel bodies come as an ArrayBuffer in Tauri 2, but older releases and other paths have
// given typed arrays or plain arrays of numbers; JSON bodies come parsed (or, defensively, as text).
function channelMessage(message) {
  if (message instanceof ArrayBuffer) return new Uint8Array(message);
  if (ArrayBuffer.isView(message)) return new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
  if (Array.isArray(message)) return Uint8Array.from(message);
  if (typeof message === 'string') {
    try {
      return JSON.parse(message);
    } catch {
      return null;
    }
  }
  return message && typeof message === 'object' ? message : null;
}
