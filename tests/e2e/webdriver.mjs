// A small W3C WebDriver client over fetch, and a harness that runs Confab under tauri-driver.
// No npm dependencies: the protocol is a handful of JSON requests.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const screenshotDir = path.join(repoRoot, 'target', 'e2e');

const ELEMENT_KEY = 'element-6066-11e4-a52e-4f735466cecf';

// A spot in the page's corner whose colour changes between two fully transparent ones: enough
// for WebKit to paint a frame, with no pixel changed (see Session.screenshot).
const REPAINT_SPOT = `
  let spot = document.getElementById('e2e-repaint-spot');
  if (!spot) {
    spot = document.createElement('div');
    spot.id = 'e2e-repaint-spot';
    spot.style.cssText = 'position: fixed; left: 0; top: 0; width: 4px; height: 4px; pointer-events: none';
    document.documentElement.append(spot);
  }
  spot.style.backgroundColor = spot.style.backgroundColor === 'rgba(255, 0, 0, 0)' ? 'rgba(0, 0, 255, 0)' : 'rgba(255, 0, 0, 0)';`;
const REMOVE_SPOT = `document.getElementById('e2e-repaint-spot')?.remove();`;

export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a truthy value, for at most `timeoutMs`. */
export async function waitFor(what, probe, { timeoutMs = 15000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
}

/** tauri-driver on free ports, stopped with SIGTERM so it also stops WebKitWebDriver. */
export class TauriDriver {
  /** `env` is added to the driver's environment, which the app it starts inherits. */
  static async start(env = {}) {
    const port = await freePort();
    // The first port is free again once freePort returns, so the second can be the same one:
    // tauri-driver then forwarded every request to itself and the test hung.
    let nativePort;
    do nativePort = await freePort(); while (nativePort === port);
    const child = spawn('tauri-driver', ['--port', String(port), '--native-port', String(nativePort)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const log = [];
    child.stdout.on('data', (d) => log.push(d.toString()));
    child.stderr.on('data', (d) => log.push(d.toString()));
    const driver = new TauriDriver(child, `http://127.0.0.1:${port}`, log);
    await waitFor('tauri-driver to listen', async () => {
      if (child.exitCode !== null) throw new Error(`tauri-driver exited: ${log.join('')}`);
      const res = await fetch(`${driver.url}/status`);
      return res.ok;
    });
    return driver;
  }

  constructor(child, url, log) {
    this.child = child;
    this.url = url;
    this.log = log;
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export class WebDriverError extends Error {
  constructor(status, value) {
    super(`WebDriver ${status}: ${value?.error ?? ''} ${value?.message ?? JSON.stringify(value)}`);
    this.value = value;
  }
}

export class Session {
  /** Starts the app binary in a new session. */
  static async launch(driver, application, { args = [] } = {}) {
    const options = { application, args };
    const body = {
      capabilities: { alwaysMatch: { browserName: 'wry', 'tauri:options': options } },
    };
    const value = await request(driver.url, 'POST', '/session', body);
    return new Session(driver, value.sessionId);
  }

  constructor(driver, id) {
    this.driver = driver;
    this.base = `/session/${id}`;
  }

  cmd(method, route, body) {
    return request(this.driver.url, method, `${this.base}${route}`, body);
  }

  async find(css) {
    const value = await this.cmd('POST', '/element', { using: 'css selector', value: css });
    return value[ELEMENT_KEY];
  }

  async text(css) {
    return this.cmd('GET', `/element/${await this.find(css)}/text`);
  }

  async attribute(css, name) {
    return this.cmd('GET', `/element/${await this.find(css)}/attribute/${name}`);
  }

  async click(css) {
    await this.cmd('POST', `/element/${await this.find(css)}/click`, {});
  }

  async type(css, text) {
    await this.cmd('POST', `/element/${await this.find(css)}/value`, { text });
  }

  /** Replaces an input's value, as a person selecting all and typing would. */
  async fill(css, text) {
    const id = await this.find(css);
    await this.cmd('POST', `/element/${id}/clear`, {});
    if (text) await this.cmd('POST', `/element/${id}/value`, { text });
  }

  /** Resizes the window (its outer size, as WebDriver's window rect is). */
  async setWindowSize(width, height) {
    await this.cmd('POST', '/window/rect', { width, height });
  }

  /** Runs `body` as an async function in the page and returns what it resolves to. */
  async evalAsync(body, ...args) {
    const script = `const done = arguments[arguments.length - 1];
      (async (...args) => { ${body} })(...Array.from(arguments).slice(0, -1))
        .then((value) => done({ ok: true, value }), (error) => done({ ok: false, error }));`;
    const out = await this.cmd('POST', '/execute/async', { script, args });
    if (!out.ok) {
      const err = new Error(`page script failed: ${JSON.stringify(out.error)}`);
      err.pageError = out.error;
      throw err;
    }
    return out.value;
  }

  /**
   * Saves a PNG of the window to target/e2e/<name>.png and returns its path.
   *
   * With accelerated compositing off (the app's default on Linux) WebKitGTK answers a
   * screenshot once a frame has been painted after the request, and on a still page that frame
   * sometimes never comes: the request hung. So while it is pending, the page repaints a spot
   * every 200 ms, with no visible change (see REPAINT_SPOT).
   */
  async screenshot(name) {
    let repaints = null;
    const timer = setInterval(() => {
      repaints = (repaints ?? Promise.resolve())
        .then(() => this.cmd('POST', '/execute/sync', { script: REPAINT_SPOT, args: [] }))
        .catch(() => {});
    }, 200);
    let base64;
    try {
      base64 = await this.cmd('GET', '/screenshot');
    } finally {
      clearInterval(timer);
      if (repaints) {
        await repaints;
        await this.cmd('POST', '/execute/sync', { script: REMOVE_SPOT, args: [] }).catch(() => {});
      }
    }
    await mkdir(screenshotDir, { recursive: true });
    const file = path.join(screenshotDir, `${name.replace(/[^a-z0-9-_]+/gi, '-')}.png`);
    await writeFile(file, Buffer.from(base64, 'base64'));
    return file;
  }

  async quit() {
    await this.cmd('DELETE', '');
  }
}

async function request(base, method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30000),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new WebDriverError(res.status, json.value);
  return json.value;
}

/** Pids of running processes whose program is `application`. */
export async function appProcesses(application) {
  const pids = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0')[0] === application) pids.push(Number(entry));
  }
  return pids;
}

/** How long an app may take to exit once its session has ended (it takes well under 1 s). */
const EXIT_GRACE_MS = 5000;

/**
 * The app must exit by itself when its session ends: ending the session closes the page, and
 * the app closes its window and exits with it. Waits EXIT_GRACE_MS for the instances started
 * since `before` to go, kills any still running (so nothing lingers and holds the runner's
 * pipes open, which once hung a whole run) and returns their pids.
 */
async function killLeftovers(application, before) {
  const deadline = Date.now() + EXIT_GRACE_MS;
  let left = [];
  while (Date.now() < deadline) {
    left = (await appProcesses(application)).filter((pid) => !before.includes(pid));
    if (left.length === 0) return [];
    await sleep(100);
  }
  for (const pid of left) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  return left;
}

// Each app a test starts is its own instance (CONFAB_INSTANCE), so two windows in one test
// do not hand over to each other as a second launch would; a test can choose the name.
let instances = 0;

/**
 * Runs `body(session)` against a fresh app instance, saves a screenshot named after the test
 * whether it passed or not, and always stops the app and the driver. An app that outlives its
 * session fails the test (it is killed first).
 */
export async function withApp(t, body, { env, args, shot } = {}) {
  const application = process.env.CONFAB_APP ?? path.join(repoRoot, 'target', 'debug', 'confab');
  const before = await appProcesses(application);
  const driver = await TauriDriver.start({ CONFAB_INSTANCE: `e2e${process.pid}n${++instances}`, ...env });
  let session;
  let bodyFailed = true;
  try {
    session = await Session.launch(driver, application, { args });
    await waitFor('the UI to be ready', () =>
      session.attribute('#app', 'data-ready').then((v) => v === 'true'));
    await body(session);
    bodyFailed = false;
  } finally {
    if (session) {
      await session.screenshot(shot ?? t.name).catch((err) => console.error('screenshot failed:', err));
      await session.quit().catch(() => {});
    }
    await driver.stop();
    const left = await killLeftovers(application, before);
    if (left.length > 0) {
      const message = `${t.name}: the app (pids ${left.join(', ')}) was still running ` +
        `${EXIT_GRACE_MS / 1000} s after its session ended; killed it`;
      // A test that already failed keeps its own error; this one is printed beside it.
      if (bodyFailed) console.error(message);
      else throw new Error(message);
    }
  }
}
