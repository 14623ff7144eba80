// Watching a livestream: anonymous, so the call's state is polled while on screen. The picture
// and sound come over WebRTC when the viewer has a call token and the livestream has a seat
// (the backend joins subscribe-only and plays the sound; this page decodes the host's video, as
// the call screen does), else from the HLS playlist with hls.js. The way in is the start
// screen's watch form, or a confab://watch link.
import * as bridge from '../bridge.js';
import { describeError } from '../bridge.js';
import { $ } from '../dom.js';
import { navigate } from '../router.js';
import { state } from '../state.js';
import { clearError, showError } from '../status.js';
import { needsDecodeInRust } from '../video-decoder.js';
import { TileStage, screenModel, screenTileKey } from '../video-tiles.js';
import { chosenBackend } from './start.js';

const POLL_MS = 2000;
// Sent with the playlist's address so the coordinator counts each window once.
const viewerId = crypto.randomUUID();

const watching = {
  poll: null, // the interval that asks for the call again
  player: null, // { hls, url, lastProgress } while a playlist plays
  stallTimer: null, // says "Reconnecting…" when the playlist stops growing
  target: null, // { backend, callId, callToken } on screen
  generation: 0, // a new watch, or leaving, makes answers to the one before stale
  delivery: null, // null (not asked yet), 'starting', 'webrtc' or 'hls'
  reason: null, // why HLS, when it is
  media: null, // the last media view while watching over WebRTC
  live: null, // the last polled state
  wasLive: false, // it was live while on screen: backstage now means it ended
  hostSeen: false, // the host's video has been drawn (later absence means reconnecting)
};
// The host's tile (WebRTC), and which attach channel messages belong to.
let stage;
let attachment = 0;

/** Binds the watch form (on the start screen) and the watch screen's controls. */
export function setup() {
  $('watch-form').addEventListener('submit', (e) => {
    e.preventDefault();
    watch(chosenBackend(), $('watch-call').value, $('watch-token').value || null);
  });
  // Back where the person came from: the lobby when signed in (a link can start watching there).
  $('stop-watching').addEventListener('click', () => navigate(state.backend ? 'lobby' : 'start'));
  $('player').addEventListener('playing', () => showPlayerState('', 'playing'));
  stage = new TileStage($('watch-stage'), {
    setVideoView: bridge.setVideoView,
    requestKeyframe: bridge.requestKeyframe,
    onPin: () => {},
  });
  // For the end-to-end tests and benchmarks: how it plays, and what the host's tile drew.
  window.__confabWatch = {
    delivery: () => watching.delivery,
    view: () => watching.media,
    host: () => hostIdentity(),
    framesDrawn: (identity = hostIdentity()) => stage.tile(identity)?.framesDrawn ?? 0,
    lastDrawnAt: (identity = hostIdentity()) => stage.tile(identity)?.lastDrawnAt ?? null,
  };
}

/** A confab://watch link: its host's coordinator, or this computer's. */
export const watchLink = (link) => watch(link.backend ?? { kind: 'local' }, link.call_id, link.call_token ?? null);

/**
 * Watches `callId` on `backend`. The first answer comes before anything changes, so a refusal
 * (a token for another call, an unreachable host) leaves the screen, and any playback, as it was.
 */
async function watch(backend, callId, callToken) {
  clearError();
  let live;
  try {
    live = await bridge.watchLivestream(backend, callId, callToken);
  } catch (err) {
    showError(describeError(err));
    return;
  }
  const out = $('watch-result');
  delete out.dataset.state;
  out.textContent = '';
  stopPlayer();
  await stopWebrtc();
  delete $('player').dataset.ended;
  watching.target = { backend, callId, callToken };
  watching.generation += 1;
  watching.delivery = null;
  watching.reason = null;
  watching.wasLive = false;
  watching.hostSeen = false;
  showDelivery();
  await show(live, callId);
  await navigate('watch', { backend, callId, callToken });
}

/** Polls the livestream `callId` on `backend` while on screen. */
export function enter({ backend, callId, callToken }) {
  clearInterval(watching.poll);
  watching.target = { backend, callId, callToken };
  watching.poll = setInterval(() => watchOnce(backend, callId, callToken).catch((err) => {
    $('watch-result').textContent = describeError(err);
  }), POLL_MS);
}

/** Stops polling and playing. */
export function leave() {
  clearInterval(watching.poll);
  stopPlayer();
  stopWebrtc().catch(() => {});
  watching.delivery = null;
  watching.target = null;
  watching.generation += 1;
}

async function watchOnce(backend, callId, callToken) {
  await show(await bridge.watchLivestream(backend, callId, callToken), callId);
}

async function show(live, callId) {
  watching.live = live;
  $('watch-screen-title').textContent = `Livestream ${callId}`;
  const badge = $('watch-live');
  badge.textContent = live.backstage ? 'Backstage' : 'Live';
  badge.dataset.state = live.backstage ? 'backstage' : 'live';
  const out = $('watch-result');
  out.textContent = live.backstage
    ? `${live.cid}: backstage, the host has not gone live yet`
    : `${live.cid}: live`;
  out.dataset.state = 'ok';
  const video = $('player');
  const ended = video.dataset.ended === 'true';
  $('watch-viewers').textContent = !live.backstage && !ended ? `${live.viewers} watching` : '';
  // Back to backstage after being live: the stream has ended, whichever way it played.
  if (!live.backstage && !ended) watching.wasLive = true;
  if (ended || (live.backstage && watching.wasLive)) return endStream();
  if (!live.backstage && watching.delivery === null) startDelivery();
  if (watching.delivery === 'webrtc') return renderWebrtc();
  if (watching.delivery !== 'hls') {
    showPlayerState(live.backstage ? 'The host has not gone live yet.' : 'Waiting for the video…', 'waiting');
    return;
  }
  const wasPlaying = Boolean(watching.player);
  if (live.broadcasting && live.hls_playlist_url) {
    video.dataset.ended = 'false';
    if (!watching.player || watching.player.url !== live.hls_playlist_url) await startPlayer(live.hls_playlist_url);
  } else if (wasPlaying) {
    endStream();
  } else {
    showPlayerState(live.backstage ? 'The host has not gone live yet.' : 'Waiting for the video…', 'waiting');
  }
}

function endStream() {
  stopPlayer();
  stopWebrtc().catch(() => {});
  $('player').dataset.ended = 'true';
  $('watch-viewers').textContent = '';
  showPlayerState('The stream has ended.', 'ended');
}

/** Asks the backend how to watch (once per livestream on screen) and starts that way. */
async function startDelivery() {
  const target = watching.target;
  const generation = watching.generation;
  if (!target) return;
  watching.delivery = 'starting';
  let answer;
  try {
    answer = await bridge.startWatching(target.backend, target.callId, target.callToken);
  } catch (err) {
    answer = { delivery: 'hls', reason: `WebRTC could not start (${describeError(err)}): playing over HLS.` };
  }
  if (watching.generation !== generation) {
    // Left the screen meanwhile: the backend must not keep playing.
    if (answer.delivery === 'webrtc' && !watching.target) bridge.stopWatching().catch(() => {});
    return;
  }
  watching.delivery = answer.delivery;
  watching.reason = answer.reason ?? null;
  showDelivery();
  if (answer.delivery === 'webrtc') await attachWebrtc();
  if (watching.live) await show(watching.live, target.callId);
}

function showDelivery() {
  const out = $('watch-delivery');
  const webrtc = watching.delivery === 'webrtc';
  $('player').hidden = webrtc;
  $('watch-stage').hidden = !webrtc;
  if (watching.delivery === 'webrtc' || watching.delivery === 'hls') {
    out.dataset.delivery = watching.delivery;
    out.textContent = webrtc ? 'Watching live over WebRTC' : `Watching over HLS${watching.reason ? `: ${watching.reason}` : ''}`;
  } else {
    delete out.dataset.delivery;
    out.textContent = '';
  }
}

/** Attaches the call media channel: the host's video to the tile; its sound plays in the backend. */
async function attachWebrtc() {
  const mine = ++attachment;
  stage.decodeInRust = await needsDecodeInRust();
  if (mine !== attachment) return;
  try {
    const view = await bridge.attachCallMedia((message) => {
      if (mine !== attachment) return;
      if (message instanceof Uint8Array) {
        stage.frame(message);
      } else if (message.type === 'view') {
        watching.media = message;
        renderWebrtc();
      }
    });
    if (mine !== attachment) return;
    if (stage.decodeInRust) await bridge.decodeVideoInRust(true);
    watching.media ??= view;
    renderWebrtc();
  } catch (err) {
    if (mine !== attachment) return;
    // No media after all: the playlist is the way.
    watching.delivery = 'hls';
    watching.reason = `WebRTC could not start (${describeError(err)}): playing over HLS.`;
    showDelivery();
  }
}

async function stopWebrtc() {
  attachment += 1;
  watching.media = null;
  stage?.clear();
  if (watching.delivery === 'webrtc') await bridge.stopWatching();
}

/** The publisher whose video is shown: the first participant with a video track. */
function hostIdentity() {
  return watching.media?.participants?.find((p) => p.video)?.identity ?? null;
}

function renderWebrtc() {
  if (watching.delivery !== 'webrtc' || $('player').dataset.ended === 'true') return;
  const host = watching.media?.participants?.find((p) => p.video);
  const name = host ? host.name || host.identity : '';
  const models = host ? [{
    identity: host.identity,
    self: false,
    name,
    speaking: Boolean(host.speaking),
    quality: host.quality ?? null,
    micMuted: !host.audio || host.audio.muted,
    cameraOff: host.video.muted,
    video: host.video,
  }] : [];
  // A screen the host shares is the large picture, the host's camera beside it.
  if (host?.screen) models.push(screenModel(host, name));
  const focus = host?.screen ? screenTileKey(host.identity) : host?.identity ?? null;
  stage.update(models, { focus, pinned: null, layout: 'speaker' });
  if (host && (stage.tile(host.identity)?.framesDrawn ?? 0) > 0) watching.hostSeen = true;
  const reconnecting = watching.media?.media === 'reconnecting' || (!host && watching.hostSeen);
  if (reconnecting) showPlayerState('Reconnecting…', 'reconnecting');
  else if (!host) showPlayerState('Waiting for the host’s video…', 'waiting');
  else showPlayerState('', 'playing');
}

function showPlayerState(text, state) {
  $('player-state').textContent = text;
  $('player-state').dataset.state = state;
}

function stopPlayer() {
  clearInterval(watching.stallTimer);
  const player = watching.player;
  watching.player = null;
  const video = $('player');
  if (!player) {
    video.removeAttribute('src');
    video.load();
    return;
  }
  // Paused first, torn down a moment later: WebKitGTK's GStreamer player can deadlock its
  // page (seen once in a CI run) when a playing pipeline loses its source while its video sink
  // waits for the page to draw a frame.
  video.pause();
  setTimeout(() => {
    player.hls.destroy();
    // Unless another stream started meanwhile.
    if (!watching.player) {
      video.removeAttribute('src');
      video.load();
    }
  }, 200);
}

// hls.js (from npm by scripts/setup.sh) loads on the first livestream watched, not at start:
// most windows never play one, and it costs start-up time and memory. It is a classic script
// that sets window.Hls, so it is added as a <script>, not imported.
let hlsLoading;
function loadHls() {
  hlsLoading ??= new Promise((resolve) => {
    const script = document.createElement('script');
    script.src = 'vendor/hls.light.min.js';
    script.onload = () => resolve(true);
    script.onerror = () => resolve(false); // a checkout that skipped setup
    document.head.append(script);
  });
  return hlsLoading;
}

async function startPlayer(url) {
  await loadHls();
  if (!window.Hls || !window.Hls.isSupported()) {
    showPlayerState('This window cannot play livestreams (hls.js is missing: run scripts/setup.sh).', 'error');
    return;
  }
  stopPlayer();
  const hls = new window.Hls({
    enableWorker: false, // the CSP allows no blob: workers
    liveSyncDuration: 1.5,
    liveMaxLatencyDuration: 5,
    // Catching up by playing faster garbles the sound in this webview: seek instead.
    maxLiveSyncPlaybackRate: 1,
    manifestLoadingMaxRetry: 6,
    levelLoadingMaxRetry: 6,
    fragLoadingMaxRetry: 6,
  });
  const player = { hls, url, lastProgress: Date.now() };
  watching.player = player;
  const video = $('player');
  const sep = url.includes('?') ? '&' : '?';
  hls.loadSource(`${url}${sep}viewer=${viewerId}`);
  hls.attachMedia(video);
  showPlayerState('Loading…', 'loading');
  hls.on(window.Hls.Events.FRAG_BUFFERED, () => { watching.player && (watching.player.lastProgress = Date.now()); });
  hls.on(window.Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    showPlayerState('Reconnecting…', 'reconnecting');
    // Network trouble: keep trying; anything else: start over.
    if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => watching.player?.hls.startLoad(), 1000);
    else setTimeout(() => watching.player && startPlayer(watching.player.url).catch(() => {}), 1000);
  });
  // With sound when the webview allows it; muted (the picture still plays) when it does not.
  video.muted = false;
  video.play().catch(() => {
    video.muted = true;
    video.play().catch(() => {});
  });
  // A playlist that stops growing while the broadcast still runs: say so.
  watching.stallTimer = setInterval(() => {
    if (watching.player && Date.now() - watching.player.lastProgress > 4000 && $('player').dataset.ended !== 'true') {
      showPlayerState('Reconnecting…', 'reconnecting');
    }
  }, 1000);
}
