// Watching a livestream: anonymous, no socket, so the call is polled while on screen; the video
// plays the broadcast's HLS playlist with hls.js. The way in is the start screen's watch form.
import * as bridge from '../bridge.js';
import { describeError } from '../bridge.js';
import { $ } from '../dom.js';
import { navigate } from '../router.js';
import { state } from '../state.js';
import { clearError, showError } from '../status.js';
import { chosenBackend } from './start.js';

const POLL_MS = 2000;
// Sent with the playlist's address so the coordinator counts each window once.
const viewerId = crypto.randomUUID();

const watching = {
  poll: null, // the interval that asks for the call again
  player: null, // { hls, url, lastProgress } while a playlist plays
  stallTimer: null, // says "Reconnecting…" when the playlist stops growing
};

/** Binds the watch form (on the start screen) and the watch screen's controls. */
export function setup() {
  $('watch-form').addEventListener('submit', (e) => {
    e.preventDefault();
    watch(chosenBackend(), $('watch-call').value, $('watch-token').value || null);
  });
  // Back where the person came from: the lobby when signed in (a link can start watching there).
  $('stop-watching').addEventListener('click', () => navigate(state.backend ? 'lobby' : 'start'));
  $('player').addEventListener('playing', () => showPlayerState('', 'playing'));
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
  delete $('player').dataset.ended;
  await show(live, callId);
  await navigate('watch', { backend, callId, callToken });
}

/** Polls the livestream `callId` on `backend` while on screen. */
export function enter({ backend, callId, callToken }) {
  clearInterval(watching.poll);
  watching.poll = setInterval(() => watchOnce(backend, callId, callToken).catch((err) => {
    $('watch-result').textContent = describeError(err);
  }), POLL_MS);
}

/** Stops polling and playing. */
export function leave() {
  clearInterval(watching.poll);
  stopPlayer();
}

async function watchOnce(backend, callId, callToken) {
  await show(await bridge.watchLivestream(backend, callId, callToken), callId);
}

async function show(live, callId) {
  $('watch-screen-title').textContent = `Livestream ${callId}`;
  const badge = $('watch-live');
  const wasPlaying = Boolean(watching.player);
  badge.textContent = live.backstage ? 'Backstage' : 'Live';
  badge.dataset.state = live.backstage ? 'backstage' : 'live';
  const out = $('watch-result');
  out.textContent = live.backstage
    ? `${live.cid}: backstage, the host has not gone live yet`
    : `${live.cid}: live`;
  out.dataset.state = 'ok';
  $('watch-viewers').textContent = live.broadcasting ? `${live.viewers} watching` : '';
  const video = $('player');
  if (live.broadcasting && live.hls_playlist_url) {
    video.dataset.ended = 'false';
    if (!watching.player || watching.player.url !== live.hls_playlist_url) await startPlayer(live.hls_playlist_url);
  } else if (wasPlaying || video.dataset.ended === 'true') {
    stopPlayer();
    video.dataset.ended = 'true';
    showPlayerState('The stream has ended.', 'ended');
  } else {
    showPlayerState(live.backstage ? 'The host has not gone live yet.' : 'Waiting for the video…', 'waiting');
  }
}

function showPlayerState(text, state) {
  $('player-state').textContent = text;
  $('player-state').dataset.state = state;
}

function stopPlayer() {
  clearInterval(watching.stallTimer);
  if (watching.player) watching.player.hls.destroy();
  watching.player = null;
  const video = $('player');
  video.removeAttribute('src');
  video.load();
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
    maxLiveSyncPlaybackRate: 1.5,
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
  video.play().catch(() => {});
  // A playlist that stops growing while the broadcast still runs: say so.
  watching.stallTimer = setInterval(() => {
    if (watching.player && Date.now() - watching.player.lastProgress > 4000 && $('player').dataset.ended !== 'true') {
      showPlayerState('Reconnecting…', 'reconnecting');
    }
  }, 1000);
}
