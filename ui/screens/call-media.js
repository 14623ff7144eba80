// The call's audio and video on the call screen. Media runs in the backend (docs/call-media.md):
// this module attaches a channel, shows the media view it sends (the tiles, the controls' state,
// the media status and the speaking-while-muted banner), feeds its video frames to the tiles,
// and sends the person's choices back: mute, camera, devices, which videos to send and how big.
import * as bridge from '../bridge.js';
import { describeError } from '../bridge.js';
import * as stats from '../call-stats.js';
import { refreshPickers, restartPreview } from '../devices.js';
import { $ } from '../dom.js';
import { setIcon } from '../icons.js';
import { state } from '../state.js';
import { needsDecodeInRust } from '../video-decoder.js';
import { TileStage, screenModel } from '../video-tiles.js';
import * as sharePicker from './share.js';

const UNSUPPORTED = "Media on Stream's service isn't supported yet: you're in the call without audio or video.";
const CAMERA_STOPPED = 'Your camera stopped: camera off for everyone';
// Media states in which the microphone and camera buttons have nothing to act on.
const NO_CONTROLS = new Set(['unsupported', 'ended']);

let stage;
/** The last media view; null until the backend's first one. */
let media = null;
/** The coordinator's participants (join_call's view and its events): [{ user_id, name }]. */
let people = [];
let layout = 'grid';
/** The identity pinned to the large spot (this window only), or null. */
let pinned = null;
// The last remote dominant speaker: the speaker layout keeps them large while you talk.
let lastSpeaker = null;
// Which attach channel messages belong to: messages of an older one are ignored.
let attachment = 0;
let attached = false;
// Between start and stop: the call screen shows this call.
let running = false;
// Set by the test hook decodeInRustNextCall: behave as a webview without WebCodecs.
let forceDecodeInRust = false;
// A command's failure, shown in the media status until the next command works.
let commandError = null;
// A share source was picked whose desktop dialog (Wayland's portal) has not answered yet.
let shareWaiting = false;
// Why the channel could not be attached (no media in this call): the media state is then failed.
let attachFailure = null;
// The reconnect countdown: { attempt, at } and its timer.
let retry = null;
let retryTimer;

/** Binds the controls, the shortcuts and the stats panel (once, at start-up). */
export function setup() {
  stage = new TileStage($('call-grid'), {
    setVideoView: bridge.setVideoView,
    requestKeyframe: bridge.requestKeyframe,
    onPin: togglePin,
  });
  setIcon($('call-devices-button'), 'devices');
  setIcon($('layout-toggle'), 'speaker');
  setIcon($('open-stats'), 'stats');
  setIcon($('toggle-people'), 'people');
  $('toggle-mic').addEventListener('click', toggleMic);
  $('toggle-camera').addEventListener('click', toggleCamera);
  setIcon($('toggle-share'), 'share');
  $('toggle-share').addEventListener('click', toggleShare);
  $('stop-share').addEventListener('click', () => command(() => bridge.stopShare()));
  sharePicker.setup(async (source) => {
    // The desktop's dialog (Wayland) answers when the user does: say where to look meanwhile.
    shareWaiting = source.kind === 'portal';
    render();
    try {
      await command(() => bridge.startShare(source.id, source.title));
    } finally {
      shareWaiting = false;
      render();
    }
  });
  $('layout-toggle').addEventListener('click', () => {
    layout = layout === 'grid' ? 'speaker' : 'grid';
    render();
  });
  $('toggle-people').addEventListener('click', () => {
    const side = $('call-side');
    side.hidden = !side.hidden;
    $('toggle-people').setAttribute('aria-expanded', String(!side.hidden));
    $('toggle-people').setAttribute('aria-pressed', String(!side.hidden));
  });
  setupDevicesMenu();
  stats.setup(nameOf);
  document.addEventListener('keydown', onShortcut);
  // For the end-to-end tests and benchmarks: what the tiles drew, and when (wall clock).
  window.__confabCall = {
    framesDrawn: (identity) => stage.tile(identity)?.framesDrawn ?? 0,
    lastDrawnAt: (identity) => stage.tile(identity)?.lastDrawnAt ?? null,
    framesReceived: (identity) => stage.tile(identity)?.framesReceived ?? 0,
    decoded: (identity) => stage.tile(identity)?.decoder?.decoded ?? 0,
    videoViews: () => stage.videoViews(),
    // Makes the next call use the backend's decoder, as a webview without WebCodecs would.
    decodeInRustNextCall: () => { forceDecodeInRust = true; },
    view: () => media,
    tiles: () => stage.tiles().map((t) => ({
      identity: t.identity,
      self: t.self,
      trackSid: t.trackSid,
      video: t.el.dataset.video,
      spot: t.el.dataset.spot,
      visible: t.visible,
      framesDrawn: t.framesDrawn,
      lastDrawnAt: t.lastDrawnAt,
    })),
  };
}

/** Shows the call's tiles (`participants`: the coordinator's) and attaches the media channel. */
export function start(participants) {
  stop();
  people = participants ?? [];
  $('call-side').hidden = false;
  $('toggle-people').setAttribute('aria-expanded', 'true');
  $('toggle-people').setAttribute('aria-pressed', 'true');
  running = true;
  render();
  attach();
}

/** Stops the decoders and clears the tiles (the call screen is left). */
export function stop() {
  attachment += 1;
  running = false;
  attached = false;
  media = null;
  pinned = null;
  lastSpeaker = null;
  commandError = null;
  attachFailure = null;
  retry = null;
  clearInterval(retryTimer);
  // Your tile holds the lobby's preview canvas: it goes home before the tile does.
  if ($('call-grid').contains($('preview'))) $('preview-home').append($('preview'));
  stage.clear();
  sharePicker.close();
  closeDevicesMenu();
  stats.close();
}

/** The coordinator's participants changed (an event or join_call's answer). */
export function setPeople(participants) {
  people = participants ?? [];
  if (running) render();
}

async function attach() {
  const mine = attachment;
  let heard = false;
  // A webview that cannot decode H.264 gets pictures decoded by the backend instead; decided
  // before any tile starts a decoder of its own.
  const decodeInRust = forceDecodeInRust || await needsDecodeInRust();
  if (mine !== attachment) return;
  stage.decodeInRust = decodeInRust;
  try {
    const view = await bridge.attachCallMedia((message) => {
      if (mine !== attachment) return;
      if (message instanceof Uint8Array) {
        stage.frame(message);
      } else if (message.type === 'view') {
        heard = true;
        show(message);
      }
    });
    if (mine !== attachment) return;
    attached = true;
    if (decodeInRust) await bridge.decodeVideoInRust(true);
    // The channel may already have brought a newer view than this answer.
    if (!heard) show(view);
    else render();
  } catch (err) {
    if (mine !== attachment) return;
    attachFailure = `Audio and video aren't available in this call: ${describeError(err)}`;
    render();
  }
}

/** A media view from the backend (the channel or a command's answer). */
function show(view) {
  if (!view || typeof view !== 'object' || !('media' in view)) return;
  media = view;
  render();
}

const selfIdentity = () => media?.local?.identity || $('who').dataset.userId || 'you';

/** A participant's name from the media view or the coordinator's, else their identity. */
function nameOf(identity) {
  // The media view knows you by your user id; the coordinator's roster has your name.
  if (identity === media?.local?.identity) {
    return people.find((p) => p.user_id === identity)?.name || media.local.name || identity;
  }
  return media?.participants?.find((p) => p.identity === identity)?.name
    || people.find((p) => p.user_id === identity)?.name
    || identity;
}

// The tiles: you, the media view's participants, then people the coordinator lists who have no
// media yet (still joining, or on a service whose media Confab cannot join).
function tileModels() {
  const me = selfIdentity();
  const local = media?.local;
  const cameraOn = local ? local.camera_enabled && !local.camera_error : !NO_CONTROLS.has(media?.media);
  const models = [{
    identity: me,
    self: true,
    name: nameOf(me),
    speaking: Boolean(local?.speaking && !local.microphone_muted),
    quality: local?.quality ?? null,
    micMuted: local ? local.microphone_muted : true,
    cameraOff: !cameraOn,
    video: null,
  }];
  const seen = new Set([me]);
  for (const p of media?.participants ?? []) {
    if (seen.has(p.identity)) continue;
    seen.add(p.identity);
    models.push({
      identity: p.identity,
      self: false,
      name: p.name || nameOf(p.identity),
      speaking: Boolean(p.speaking),
      quality: p.quality ?? null,
      micMuted: !p.audio || p.audio.muted,
      cameraOff: !p.video || p.video.muted,
      video: p.video ?? null,
    });
  }
  // Each shared screen gets a tile of its own, after its sharer's.
  for (const p of media?.participants ?? []) {
    if (p.screen) models.push(screenModel(p, p.name || nameOf(p.identity)));
  }
  for (const p of people) {
    if (seen.has(p.user_id)) continue;
    seen.add(p.user_id);
    models.push({
      identity: p.user_id,
      self: false,
      name: p.name ?? p.user_id,
      speaking: false,
      quality: null,
      micMuted: true,
      cameraOff: true,
      video: null,
    });
  }
  return models;
}

// The large spot: the pinned tile; a shared screen (the newest); in the speaker layout,
// whoever speaks (other than you; the last one stays while you talk), else the first other
// person, else you.
function focusOf(models) {
  const present = (identity) => identity && models.some((m) => m.identity === identity);
  if (present(pinned)) return pinned;
  const screens = models.filter((m) => m.kind === 'screen');
  if (screens.length) return screens.at(-1).identity;
  if (layout !== 'speaker') return null;
  const dominant = media?.dominant_speaker;
  if (present(dominant) && dominant !== selfIdentity()) lastSpeaker = dominant;
  if (present(lastSpeaker)) return lastSpeaker;
  return (models.find((m) => !m.self) ?? models[0])?.identity ?? null;
}

function render() {
  const models = tileModels();
  stage.update(models, { focus: focusOf(models), pinned, layout });
  renderControls();
  renderStatus();
  $('speaking-while-muted').hidden = !(media?.local?.speaking_while_muted && media.local.microphone_muted);
}

function renderControls() {
  const local = media?.local;
  const usable = Boolean(local) && attached && !NO_CONTROLS.has(media.media);
  const muted = local ? local.microphone_muted : false;
  const cameraOn = local ? local.camera_enabled : true;
  const mic = $('toggle-mic');
  mic.disabled = !usable;
  mic.setAttribute('aria-pressed', String(muted));
  mic.setAttribute('aria-label', muted ? 'Unmute' : 'Mute');
  mic.title = `${muted ? 'Unmute' : 'Mute'} (Ctrl+D)`;
  setIcon(mic, muted ? 'mic-off' : 'mic');
  const camera = $('toggle-camera');
  camera.disabled = !usable;
  camera.setAttribute('aria-pressed', String(!cameraOn));
  camera.setAttribute('aria-label', cameraOn ? 'Turn camera off' : 'Turn camera on');
  camera.title = `${cameraOn ? 'Turn camera off' : 'Turn camera on'} (Ctrl+E)`;
  setIcon(camera, cameraOn ? 'camera' : 'camera-off');
  $('call-devices-button').disabled = !usable;
  // Sharing: for those whose capabilities in this call allow it.
  const share = $('toggle-share');
  const sharing = local?.sharing ?? null;
  share.hidden = !state.call?.can_share_screen;
  share.disabled = !usable || media?.media !== 'connected';
  share.setAttribute('aria-pressed', String(Boolean(sharing)));
  share.setAttribute('aria-label', sharing ? 'Stop sharing your screen' : 'Share your screen');
  share.title = `${sharing ? 'Stop sharing' : 'Share your screen'} (Ctrl+Shift+E)`;
  setIcon(share, sharing ? 'share-stop' : 'share');
  $('sharing-banner').hidden = !sharing;
  $('sharing-text').textContent = sharing ? `You are sharing “${sharing}”` : '';
  if (!usable) closeDevicesMenu();
  const toggle = $('layout-toggle');
  toggle.setAttribute('aria-pressed', String(layout === 'speaker'));
  setIcon(toggle, layout === 'speaker' ? 'grid' : 'speaker');
  toggle.title = layout === 'speaker' ? 'Back to the grid' : 'Speaker view: whoever speaks, large';
}

// One line per thing to say: the media state (nothing when connected), then faults.
function renderStatus() {
  const out = $('call-media-status');
  const lines = [];
  const mediaState = media?.media ?? (attachFailure ? 'failed' : attached ? 'connected' : 'connecting');
  let message = media?.message ?? null;
  clearInterval(retryTimer);
  if (mediaState !== 'reconnecting') retry = null;
  switch (mediaState) {
    case 'connecting':
      if (!commandError) lines.push('Connecting media…');
      break;
    case 'reconnecting': {
      if (!retry || retry.attempt !== media.attempt) {
        retry = { attempt: media.attempt, at: media.retry_in_ms ? Date.now() + media.retry_in_ms : null };
      }
      lines.push(reconnectingText());
      retryTimer = setInterval(() => {
        out.firstChild.textContent = reconnectingText();
      }, 250);
      break;
    }
    case 'unsupported':
      lines.push(UNSUPPORTED);
      message = null;
      break;
    case 'failed':
      lines.push(message ?? attachFailure ?? 'Audio and video stopped.');
      message = null;
      break;
    case 'ended':
      lines.push(message ?? 'Audio and video have ended.');
      message = null;
      break;
    default:
      break;
  }
  const local = media?.local;
  if (message) lines.push(message);
  if (local?.camera_error) {
    lines.push(local.camera_error.startsWith('Your camera') ? local.camera_error : `${CAMERA_STOPPED} (${local.camera_error})`);
  }
  if (local?.microphone_error && local.microphone_error !== message) lines.push(local.microphone_error);
  if (local?.share_error) lines.push(local.share_error);
  if (shareWaiting) lines.push('Choose what to share in your desktop’s dialog.');
  if (commandError) lines.push(commandError);
  out.replaceChildren(...lines.map((line) => {
    const span = document.createElement('span');
    span.textContent = line;
    return span;
  }));
  out.hidden = lines.length === 0;
  out.dataset.state = mediaState;
  out.dataset.fault = String(Boolean(message || local?.camera_error || local?.microphone_error || local?.share_error || commandError
    || mediaState === 'failed'));
  out.title = mediaState === 'unsupported' && media?.message ? media.message : '';
}

function reconnectingText() {
  const attempt = retry?.attempt ? ` (attempt ${retry.attempt})` : '';
  if (!retry?.at) return `Reconnecting…${attempt}`;
  const seconds = Math.ceil((retry.at - Date.now()) / 1000);
  return seconds > 0 ? `Reconnecting… retrying in ${seconds} s${attempt}` : `Reconnecting… retrying now${attempt}`;
}

// Runs a command whose answer is the new view; its failure shows in the media status.
async function command(run) {
  try {
    const view = await run();
    commandError = null;
    if (view && typeof view === 'object' && 'media' in view) media = view;
    render();
  } catch (err) {
    commandError = describeError(err);
    render();
  }
}

function toggleMic() {
  if ($('toggle-mic').disabled || !media?.local) return;
  return command(() => bridge.setMicrophoneMuted(!media.local.microphone_muted));
}

function toggleCamera() {
  if ($('toggle-camera').disabled || !media?.local) return;
  return command(() => bridge.setCameraEnabled(!media.local.camera_enabled));
}

function toggleShare() {
  const share = $('toggle-share');
  if (share.disabled || share.hidden) return;
  if (media?.local?.sharing) return command(() => bridge.stopShare());
  return sharePicker.open();
}

function togglePin(identity) {
  pinned = pinned === identity ? null : identity;
  render();
}

// Ctrl+D and Ctrl+E, as in Meet, and Ctrl+Shift+E to share; not while typing (a field keeps
// its own shortcuts).
function onShortcut(e) {
  if (state.screen !== 'call' || e.altKey || !(e.ctrlKey || e.metaKey)) return;
  const key = e.key.toLowerCase();
  if (e.shiftKey) {
    if (key !== 'e' || e.repeat) return;
    e.preventDefault();
    toggleShare();
    return;
  }
  if (key !== 'd' && key !== 'e') return;
  if (e.target instanceof Element && e.target.closest('input, textarea, select, [contenteditable]:not([contenteditable="false"])')) return;
  e.preventDefault();
  if (e.repeat) return;
  if (key === 'd') toggleMic();
  else toggleCamera();
}

// The devices menu: the lobby's pickers again, switching the call's devices on the spot.
function setupDevicesMenu() {
  $('call-devices-button').addEventListener('click', () => {
    if ($('call-devices').hidden) openDevicesMenu();
    else closeDevicesMenu(true);
  });
  $('call-devices').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeDevicesMenu(true);
  });
  document.addEventListener('pointerdown', (e) => {
    if (!$('call-devices').hidden && !e.target.closest?.('.call-devices-anchor')) closeDevicesMenu();
  });
  $('call-audio-processing').addEventListener('change', async (e) => {
    const status = $('call-devices-status');
    try {
      await bridge.setAudioProcessing(e.target.checked);
      status.textContent = '';
    } catch (err) {
      e.target.checked = !e.target.checked;
      status.textContent = describeError(err);
    }
  });
  for (const kind of ['camera', 'microphone', 'speaker']) {
    $(`call-${kind}`).addEventListener('change', async (e) => {
      const status = $('call-devices-status');
      status.textContent = 'Switching…';
      try {
        await bridge.switchCallDevice(kind, e.target.value);
        status.textContent = '';
        // The backend remembers the choice, as the lobby's: both pickers show it, and your
        // tile's preview follows the camera.
        if (kind === 'camera') await restartPreview();
      } catch (err) {
        status.textContent = describeError(err);
      }
      await refreshPickers().catch(() => {});
    });
  }
}

async function openDevicesMenu() {
  $('call-devices').hidden = false;
  $('call-devices-button').setAttribute('aria-expanded', 'true');
  $('call-devices-status').textContent = '';
  await refreshPickers().catch((err) => { $('call-devices-status').textContent = describeError(err); });
  $('call-camera').focus();
}

function closeDevicesMenu(returnFocus = false) {
  if ($('call-devices').hidden) return;
  $('call-devices').hidden = true;
  $('call-devices-button').setAttribute('aria-expanded', 'false');
  if (returnFocus) $('call-devices-button').focus();
}
