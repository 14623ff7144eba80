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

// Signing in and the connection state in the status bar.
const STATE_TEXT = {
  idle: 'Not signed in',
  connecting: 'Connecting…',
  connected: 'Connected',
  disconnected: 'Disconnected',
};

function showConnection(status) {
  const pill = $('connection');
  pill.dataset.state = status.state;
  if (status.state === 'reconnecting' || status.state === 'offline') {
    const seconds = (status.next_retry_ms / 1000).toFixed(1);
    const what = status.state === 'offline' ? 'Offline' : 'Reconnecting';
    pill.textContent = `${what}: attempt ${status.attempt}, next in ${seconds} s`;
  } else {
    pill.textContent = STATE_TEXT[status.state] ?? status.state;
  }
  if (status.state === 'disconnected' && status.reason && status.reason !== 'Signed out.') {
    $('session-error').textContent = status.reason;
  }
}

function showSignedIn(me) {
  $('who').textContent = me.role === 'guest' ? `${me.name ?? me.user_id} (guest)` : (me.name ?? me.user_id);
  $('signed-in').hidden = false;
  $('signed-out').hidden = true;
  $('session-error').textContent = '';
}

async function signInWith(command, args) {
  $('session-error').textContent = '';
  try {
    showSignedIn(await invoke(command, args));
  } catch (err) {
    $('session-error').textContent = describeError(err);
  }
}

$('sign-in-form').addEventListener('submit', (e) => {
  e.preventDefault();
  signInWith('sign_in', { userId: $('sign-in-user').value, name: $('sign-in-name').value || null });
});
$('guest-form').addEventListener('submit', (e) => {
  e.preventDefault();
  signInWith('join_as_guest', { name: $('guest-name').value, image: null });
});
$('host-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('host-result');
  try {
    const live = await invoke('create_livestream', { callId: $('host-call').value });
    out.textContent = `${live.cid} is in backstage. Viewer token: ${live.viewer_token}`;
    out.dataset.token = live.viewer_token;
  } catch (err) {
    out.textContent = describeError(err);
  }
});
$('watch-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('watch-result');
  delete out.dataset.state;
  try {
    const live = await invoke('watch_livestream', {
      callId: $('watch-call').value,
      callToken: $('watch-token').value || null,
    });
    out.textContent = live.backstage
      ? `${live.cid}: backstage, the host has not gone live yet`
      : `${live.cid}: live`;
    out.dataset.state = 'ok';
  } catch (err) {
    out.textContent = describeError(err);
    out.dataset.state = 'error';
  }
});

$('sign-out').addEventListener('click', async () => {
  await invoke('sign_out');
  $('signed-in').hidden = true;
  $('signed-out').hidden = false;
  showConnection({ state: 'idle' });
});

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
        if (kind === 'camera') await startPreview();
        if (kind === 'microphone') await invoke('start_mic_meter');
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
  // A missing camera or microphone is reported, not fatal.
  await startPreview().catch((err) => { $('devices-status').textContent = describeError(err); });
  await invoke('start_mic_meter').catch((err) => { $('devices-status').textContent = describeError(err); });
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

Promise.all([
  showAppInfo(),
  invoke('log_levels').then(renderLevels),
  startDevices(),
  listen('confab:connection', (event) => showConnection(event.payload)),
])
  .catch((err) => {
    $('mode').textContent = 'Backend unavailable';
    $('mode').dataset.state = 'error';
    console.error(err);
  })
  .finally(() => {
    // Tests and the start-up benchmark wait for this.
    $('app').dataset.ready = 'true';
  });
