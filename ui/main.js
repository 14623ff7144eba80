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

showAppInfo()
  .catch((err) => {
    $('mode').textContent = 'Backend unavailable';
    $('mode').dataset.state = 'error';
    console.error(err);
  })
  .finally(() => {
    // Tests and the start-up benchmark wait for this.
    $('app').dataset.ready = 'true';
  });
