// The page talks to the Rust backend only through Tauri commands and events.
const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const $ = (id) => document.getElementById(id);

// Errors from commands arrive as {code, message}; anything else is shown as text.
function describeError(err) {
  if (err && typeof err === 'object' && 'message' in err) return err.message;
  return String(err);
}

async function showAppInfo() {
  const info = await invoke('app_info');
  $('version').textContent = info.version;
  $('backend').textContent = info.mode === 'local'
    ? `This computer (local coordinator at ${new URL(info.coordinator_url).host})`
    : 'Stream';
  $('backend').dataset.url = info.coordinator_url;
  $('backend').dataset.apiKey = info.api_key;
  const mode = $('mode');
  mode.textContent = info.mode === 'local' ? 'Local mode' : 'Stream';
  mode.dataset.state = 'ok';
}

// The self-check sends a nonce; the backend answers with a `confab:pong` event carrying it.
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
  const unlisten = await listen('confab:pong', (event) => {
    if (event.payload.nonce === nonce) answer(event.payload);
  });
  try {
    await invoke('ping', { nonce });
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

$('self-check').addEventListener('click', selfCheck);

// Where to connect: "This computer" (the embedded coordinator) or Stream.
function chosenBackend() {
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
}
for (const id of ['backend-local', 'backend-stream']) $(id).addEventListener('change', showBackendFields);

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

// Screens: start, lobby, call, watch. The camera and meter run only in the lobby and the call.
const SCREENS = ['start', 'lobby', 'call', 'watch'];
let previewRunning = false;

async function showScreen(name) {
  for (const s of SCREENS) $(`screen-${s}`).hidden = s !== name;
  $('app').dataset.screen = name;
  const wantsDevices = name === 'lobby' || name === 'call';
  $(name === 'call' ? 'preview-call' : 'preview-home').append($('preview'));
  if (wantsDevices && !previewRunning) {
    previewRunning = true;
    await startPreview().catch((err) => { $('devices-status').textContent = describeError(err); });
    await invoke('start_mic_meter').catch((err) => { $('devices-status').textContent = describeError(err); });
  } else if (!wantsDevices && previewRunning) {
    previewRunning = false;
    await invoke('stop_preview').catch(() => {});
    await invoke('stop_mic_meter').catch(() => {});
  }
  const heading = $(`screen-${name}`).querySelector('h1');
  heading.tabIndex = -1;
  heading.focus();
}

// The connection state in the status bar, with a live countdown to the next retry.
const STATE_TEXT = {
  idle: 'Not signed in',
  connecting: 'Connecting…',
  connected: 'Connected',
  refreshing: 'Token expired: refreshing…',
  disconnected: 'Disconnected',
};
let countdown;

function showConnection(status) {
  const pill = $('connection');
  pill.dataset.state = status.state;
  clearInterval(countdown);
  if (status.state === 'reconnecting' || status.state === 'offline') {
    const retryAt = Date.now() + (status.next_retry_ms ?? 0);
    const what = status.state === 'offline' ? 'Offline: coordinator unreachable, retrying' : 'Reconnecting';
    const render = () => {
      const seconds = Math.max(0, (retryAt - Date.now()) / 1000).toFixed(1);
      pill.textContent = `${what} (attempt ${status.attempt}, next in ${seconds} s)`;
    };
    render();
    countdown = setInterval(render, 100);
  } else {
    pill.textContent = STATE_TEXT[status.state] ?? status.state;
  }
  if (status.state === 'connected') $('session-error').textContent = '';
  if (status.state === 'disconnected' && status.reason && status.reason !== 'Signed out.') {
    $('session-error').textContent = status.reason;
  }
  addToTimeline(status);
}

function addToTimeline(status) {
  const item = document.createElement('li');
  const time = new Date(status.at_unix_ms ?? Date.now()).toLocaleTimeString();
  const detail = status.attempt ? ` (attempt ${status.attempt})` : '';
  item.textContent = `${time} ${status.state}${detail}${status.reason ? `: ${status.reason}` : ''}`;
  item.dataset.state = status.state;
  $('timeline').append(item);
  while ($('timeline').children.length > 50) $('timeline').firstElementChild.remove();
}

function showSignedIn(me) {
  $('who').textContent = me.role === 'guest' ? `${me.name ?? me.user_id} (guest)` : (me.name ?? me.user_id);
  $('who').dataset.userId = me.user_id;
  $('remember-result').textContent = me.remembered?.message ?? '';
  $('remember-result').dataset.stored = String(Boolean(me.remembered?.stored));
  $('session-error').textContent = '';
  $('mode').textContent = me.backend === 'stream' ? 'Stream' : 'Local mode';
  return showScreen('lobby');
}

async function signInWith(command, args) {
  $('session-error').textContent = '';
  try {
    await showSignedIn(await invoke(command, args));
  } catch (err) {
    $('session-error').textContent = describeError(err);
  }
}

$('sign-in-form').addEventListener('submit', (e) => {
  e.preventDefault();
  signInWith('sign_in', {
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
  signInWith('join_as_guest', {
    backend: chosenBackend(),
    name: $('guest-name').value,
    image: $('guest-image').value || null,
  });
});

$('sign-out').addEventListener('click', async () => {
  const out = await invoke('sign_out').catch((err) => ({ message: describeError(err) }));
  $('keychain-note').textContent = out.message ?? '';
  $('sign-in-token').value = '';
  $('sign-in-token-url').value = '';
  showConnection({ state: 'idle' });
  await showScreen('start');
});

// The call screen: participants from the coordinator's events; going live for hosts.
let currentCall = null;

function renderCall(view) {
  currentCall = view;
  $('call-title').textContent = view.call_type === 'livestream' ? `Livestream ${view.cid.split(':')[1]}` : `Call ${view.cid.split(':')[1]}`;
  $('call-title').dataset.cid = view.cid;
  const badge = $('call-live');
  if (view.call_type === 'livestream') {
    badge.textContent = view.backstage ? 'Backstage' : 'Live';
    badge.dataset.state = view.backstage ? 'backstage' : 'live';
  } else {
    badge.textContent = '';
    delete badge.dataset.state;
  }
  $('participant-count').textContent = String(view.participants.length);
  $('participants').replaceChildren(...view.participants.map((p) => {
    const li = document.createElement('li');
    li.textContent = p.name ?? p.user_id;
    if (p.user_id === $('who').dataset.userId) li.textContent += ' (you)';
    li.dataset.userId = p.user_id;
    return li;
  }));
  $('host-controls').hidden = !(view.can_go_live && view.call_type === 'livestream');
  $('go-live').hidden = !view.backstage;
  $('stop-live').hidden = view.backstage;
}

$('join-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('session-error').textContent = '';
  try {
    const view = await invoke('join_call', { callType: $('join-type').value, callId: $('join-call').value });
    $('host-result').textContent = '';
    $('broadcast-status').textContent = '';
    renderCall(view);
    await showScreen('call');
  } catch (err) {
    $('session-error').textContent = describeError(err);
  }
});

$('leave-call').addEventListener('click', async () => {
  await invoke('leave_call').catch(() => {});
  currentCall = null;
  await showScreen('lobby');
});

async function setLive(live) {
  try {
    const isLive = await invoke('set_live', { live });
    renderCall({ ...currentCall, backstage: !isLive });
    $('host-result').textContent = isLive ? 'You are live.' : 'Back in backstage: viewers see that the stream has not started.';
  } catch (err) {
    $('host-result').textContent = describeError(err);
  }
}
$('go-live').addEventListener('click', () => setLive(true));
$('stop-live').addEventListener('click', () => setLive(false));
$('share-viewer-token').addEventListener('click', async () => {
  const out = $('host-result');
  try {
    const token = await invoke('viewer_token');
    out.textContent = token
      ? `Viewers of ${currentCall.cid} can use this token: ${token}`
      : 'Viewer tokens come from your own server when you use Stream.';
    if (token) out.dataset.token = token;
  } catch (err) {
    out.textContent = describeError(err);
  }
});

// Watching a livestream: anonymous, no socket, so the call is polled while on screen; the
// video plays the broadcast's HLS playlist with hls.js.
let watchPoll;
let player = null; // { hls, url, lastProgress }
let stallTimer;
const viewerId = crypto.randomUUID();

function showPlayerState(text, state) {
  $('player-state').textContent = text;
  $('player-state').dataset.state = state;
}

function stopPlayer() {
  clearInterval(stallTimer);
  if (player) player.hls.destroy();
  player = null;
  const video = $('player');
  video.removeAttribute('src');
  video.load();
}

// hls.js (from npm by scripts/setup.sh) loads on the first livestream watched, not at start:
// most windows never play one, and it costs start-up time and memory.
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
  player = { hls, url, lastProgress: Date.now() };
  const video = $('player');
  const sep = url.includes('?') ? '&' : '?';
  hls.loadSource(`${url}${sep}viewer=${viewerId}`);
  hls.attachMedia(video);
  showPlayerState('Loading…', 'loading');
  hls.on(window.Hls.Events.FRAG_BUFFERED, () => { player && (player.lastProgress = Date.now()); });
  hls.on(window.Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    showPlayerState('Reconnecting…', 'reconnecting');
    // Network trouble: keep trying; anything else: start over.
    if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => player?.hls.startLoad(), 1000);
    else setTimeout(() => player && startPlayer(player.url).catch(() => {}), 1000);
  });
  video.play().catch(() => {});
  // A playlist that stops growing while the broadcast still runs: say so.
  stallTimer = setInterval(() => {
    if (player && Date.now() - player.lastProgress > 4000 && $('player').dataset.ended !== 'true') {
      showPlayerState('Reconnecting…', 'reconnecting');
    }
  }, 1000);
}

async function watchOnce(callId, callToken) {
  const live = await invoke('watch_livestream', { backend: chosenBackend(), callId, callToken });
  $('watch-screen-title').textContent = `Livestream ${callId}`;
  const badge = $('watch-live');
  const wasPlaying = Boolean(player);
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
    if (!player || player.url !== live.hls_playlist_url) await startPlayer(live.hls_playlist_url);
  } else if (wasPlaying || video.dataset.ended === 'true') {
    stopPlayer();
    video.dataset.ended = 'true';
    showPlayerState('The stream has ended.', 'ended');
  } else {
    showPlayerState(live.backstage ? 'The host has not gone live yet.' : 'Waiting for the video…', 'waiting');
  }
}

$('watch-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const callId = $('watch-call').value;
  const callToken = $('watch-token').value || null;
  const out = $('watch-result');
  delete out.dataset.state;
  out.textContent = '';
  $('session-error').textContent = '';
  stopPlayer();
  delete $('player').dataset.ended;
  try {
    await watchOnce(callId, callToken);
    await showScreen('watch');
    clearInterval(watchPoll);
    watchPoll = setInterval(() => watchOnce(callId, callToken).catch((err) => {
      out.textContent = describeError(err);
    }), 2000);
  } catch (err) {
    $('session-error').textContent = describeError(err);
  }
});
$('stop-watching').addEventListener('click', async () => {
  clearInterval(watchPoll);
  stopPlayer();
  await showScreen('start');
});

$('player').addEventListener('playing', () => showPlayerState('', 'playing'));

// The host's broadcast, as the backend reports it.
function showBroadcast(status) {
  const out = $('broadcast-status');
  out.dataset.state = status.state;
  out.textContent = {
    starting: 'Starting the broadcast…',
    live: `Broadcasting: ${status.segments} segment${status.segments === 1 ? '' : 's'} sent`,
    retrying: `Upload failed (attempt ${status.attempt}): ${status.error}. Retrying…`,
    stopped: 'The broadcast has ended.',
    failed: `The broadcast stopped: ${status.error}`,
  }[status.state] ?? status.state;
}

// Diagnostics: a panel beside the screens; the token inspector counts down while it is open.
let inspectorTimer;

function formatSeconds(s) {
  const sign = s < 0 ? '-' : '';
  s = Math.abs(Math.round(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${sign}${h ? `${h} h ` : ''}${h || m ? `${m} min ` : ''}${sec} s`;
}

async function refreshInspector() {
  const info = await invoke('token_info').catch(() => null);
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

$('open-diagnostics').addEventListener('click', async () => {
  const panel = $('diagnostics');
  panel.hidden = !panel.hidden;
  $('open-diagnostics').setAttribute('aria-expanded', String(!panel.hidden));
  clearInterval(inspectorTimer);
  if (!panel.hidden) {
    await refreshInspector();
    inspectorTimer = setInterval(refreshInspector, 1000);
    $('diagnostics-title').tabIndex = -1;
    $('diagnostics-title').focus();
  }
});

// At start: sign in with what the keychain remembers, if anything.
async function restoreSignIn() {
  const restored = await invoke('restore_sign_in');
  fillBackend(restored.backend);
  if (!restored.keychain_available) $('remember-me').disabled = true;
  $('keychain-note').textContent = restored.message ?? '';
  $('keychain-note').dataset.keychain = restored.keychain_available ? 'available' : 'unavailable';
  if (restored.signed_in) await showSignedIn(restored.signed_in);
}

// Devices: pickers, the camera preview (raw frames over a channel) and the microphone meter.
const { Channel } = window.__TAURI__.core;

async function refreshDevices() {
  const { devices, selection } = await invoke('list_devices');
  for (const kind of ['camera', 'microphone', 'speaker']) {
    const select = $(`pick-${kind}`);
    select.replaceChildren(...devices
      .filter((d) => d.kind === kind)
      .map((d) => new Option(d.label, d.key)));
    select.value = selection.selected[kind] ?? 'default';
  }
}

function startPreview() {
  const canvas = $('preview');
  const ctx = canvas.getContext('2d');
  const frames = new Channel();
  frames.onmessage = (message) => {
    const buffer = message instanceof ArrayBuffer ? message : new Uint8Array(message).buffer;
    const header = new DataView(buffer, 0, 16);
    const width = header.getUint32(0, true);
    const height = header.getUint32(4, true);
    const pixels = new Uint8ClampedArray(buffer, 16, width * height * 4);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    ctx.putImageData(new ImageData(pixels, width, height), 0, 0);
    canvas.dataset.frames = String(Number(canvas.dataset.frames ?? 0) + 1);
    // Ask for the next frame only once this one is on screen.
    invoke('preview_shown').catch(() => {});
  };
  return invoke('start_preview', { frames, width: 320, height: 180, fps: 30 });
}

async function startDevices() {
  await refreshDevices();
  for (const kind of ['camera', 'microphone', 'speaker']) {
    $(`pick-${kind}`).addEventListener('change', async (e) => {
      try {
        await invoke('select_device', { kind, key: e.target.value });
        if (kind === 'camera' && previewRunning) await startPreview();
        if (kind === 'microphone' && previewRunning) await invoke('start_mic_meter');
        $('devices-status').textContent = '';
      } catch (err) {
        $('devices-status').textContent = describeError(err);
      }
    });
  }
  await listen('confab:mic-level', (event) => {
    $('mic-level').value = Math.max(-60, event.payload.rms_dbfs);
  });
  await listen('confab:device', () => refreshDevices());
  $('test-tone').addEventListener('click', async () => {
    try {
      await invoke('play_test_tone');
      $('devices-status').textContent = 'Played a test sound';
    } catch (err) {
      $('devices-status').textContent = `No sound: ${describeError(err)}`;
    }
  });
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

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
        renderLevels(await invoke('set_log_level', { scope, level: select.value || null }));
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

$('export-diagnostics').addEventListener('click', async () => {
  const result = $('export-result');
  try {
    const path = await invoke('export_diagnostics');
    result.textContent = `Saved to ${path}`;
    result.dataset.state = 'ok';
    result.dataset.path = path;
  } catch (err) {
    result.textContent = `Export failed: ${describeError(err)}`;
    result.dataset.state = 'error';
  }
});

// How long each start-up step took (page clock), sent with the ready signal for the log.
const phases = {};
const timed = (name, promise) => promise.finally(() => { phases[name] = Math.round(performance.now()); });

Promise.all([
  timed('app_info', showAppInfo()),
  timed('log_levels', invoke('log_levels').then(renderLevels)),
  timed('devices', startDevices()),
  listen('confab:connection', (event) => showConnection(event.payload)),
  listen('confab:broadcast', (event) => showBroadcast(event.payload)),
  listen('confab:call', (event) => {
    if (currentCall && event.payload.cid === currentCall.cid) renderCall(event.payload);
  }),
])
  .then(() => timed('restore_sign_in', restoreSignIn()))
  .catch((err) => {
    $('mode').textContent = 'Backend unavailable';
    $('mode').dataset.state = 'error';
    console.error(err);
  })
  .finally(() => {
    // Tests and the start-up benchmark wait for this.
    $('app').dataset.ready = 'true';
    invoke('ui_ready', { phases }).catch(() => {});
  });
