// Headless Debian Chromium driven by chromedriver over plain WebDriver (the Session client of
// tests/e2e/webdriver.mjs), and a static server on 127.0.0.1 for the test page and the
// livekit-client UMD build. Nothing here reaches beyond loopback.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Session, freePort, waitFor } from '../e2e/webdriver.mjs';

export { Session, freePort, waitFor };

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

export const chromiumBin = process.env.CONFAB_CHROMIUM ?? '/usr/bin/chromium';
export const chromedriverBin = process.env.CONFAB_CHROMEDRIVER ?? '/usr/bin/chromedriver';

/**
 * The flags WebRTC needs in a headless browser with no camera, microphone or display, each
 * found necessary by leaving it out (Chromium 156, in a loopback-only network namespace):
 * - --headless=new: there is no display (without it Chromium exits at once);
 * - --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start;
 * - --use-fake-device-for-media-stream: getUserMedia gets Chromium's generated camera (a
 *   moving test pattern, 1280x720 at 20 fps with livekit-client's default constraints) and
 *   microphone (a beep), instead of NotFoundError;
 * - --use-fake-ui-for-media-stream: the permission prompt is answered "allow" (instead of
 *   NotAllowedError). With that permission a page also gets plain IP host candidates, not
 *   mDNS `.local` names, from its first offer on;
 * - --allow-loopback-in-peer-connection: without it ICE gathers no candidate at all on a
 *   machine whose only interface is loopback, and never connects.
 * The rest keep it quiet and predictable: no GPU (there is none), no background traffic,
 * remote audio may play with no click.
 */
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-gpu',
  '--autoplay-policy=no-user-gesture-required',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--window-size=1280,800',
];

/** chromedriver on a free loopback port; `stop` ends it (and the browsers it started). */
export class ChromeDriver {
  static async start() {
    const port = await freePort();
    const child = spawn(chromedriverBin, [`--port=${port}`, '--allowed-ips=127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = [];
    child.stdout.on('data', (d) => log.push(d.toString()));
    child.stderr.on('data', (d) => log.push(d.toString()));
    const driver = new ChromeDriver(child, `http://127.0.0.1:${port}`, log);
    try {
      await waitFor('chromedriver to listen', async () => {
        if (child.exitCode !== null) throw new Error(`chromedriver exited: ${log.join('')}`);
        const res = await fetch(`${driver.url}/status`);
        return res.ok && (await res.json()).value?.ready;
      });
    } catch (err) {
      await driver.stop();
      throw err;
    }
    return driver;
  }

  constructor(child, url, log) {
    this.child = child;
    this.url = url;
    this.log = log;
  }

  /** A new headless Chromium. `extraArgs` are added to CHROMIUM_ARGS. */
  async launch(extraArgs = []) {
    const res = await fetch(`${this.url}/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        capabilities: {
          alwaysMatch: {
            browserName: 'chrome',
            'goog:chromeOptions': { binary: chromiumBin, args: [...CHROMIUM_ARGS, ...extraArgs] },
            'goog:loggingPrefs': { browser: 'ALL' },
          },
        },
      }),
      signal: AbortSignal.timeout(60000),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(`chromedriver could not start Chromium: ${res.status} ${JSON.stringify(json.value)}`);
    return new Session(this, json.value.sessionId);
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

/**
 * `text` with access tokens replaced by `<token>` and livekit-client's join request (a long
 * base64 blob) by its length: Chromium's console repeats the WebSocket URL with both in full.
 */
export function redact(text) {
  return text
    .replace(/(access_token=)[\w.%-]+/g, '$1<token>')
    .replace(/\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/g, '<token>')
    .replace(/(join_request=)([\w%-]+)/g, (_, key, value) => `${key}<${value.length} chars>`);
}

/** The browser's console since the last call (chromedriver's `goog:loggingPrefs` log). */
export async function browserLog(session) {
  try {
    const entries = await session.cmd('POST', '/se/log', { type: 'browser' });
    return entries.map((e) => redact(`${e.level} ${e.message}`));
  } catch {
    return [];
  }
}

/** Saves a PNG of the page to target/interop/<name>.png and returns its path. */
export async function screenshot(session, name) {
  const dir = path.join(repoRoot, 'target', 'interop');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await writeFile(file, Buffer.from(await session.cmd('GET', '/screenshot'), 'base64'));
  return file;
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8' };

/**
 * Serves `routes` (URL path -> file) on 127.0.0.1 at a free port. Only those files: nothing
 * else of the repository is reachable.
 */
export async function servePage(routes) {
  const server = http.createServer(async (req, res) => {
    const route = new URL(req.url, 'http://x').pathname;
    if (route === '/favicon.ico') {
      res.writeHead(204).end(); // asked for by every page; not worth a 404 in the log
      return;
    }
    const file = routes[route];
    if (!file || req.method !== 'GET') {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * Runs `window.interop[name](...args)` in the page (page/interop.js) and returns what it
 * resolves to, failing after `timeoutMs` or with the page's error. Started, then polled: one
 * WebDriver script may run for 30 s at most, and livekit-client's connect alone may take 35 s
 * to give up.
 */
export async function inPage(session, name, args, timeoutMs) {
  await session.evalAsync('window.interop.start(...args)', name, args);
  const task = await waitFor(`the page's ${name}()`, async () => {
    const t = await session.evalAsync('return window.interop.result(...args)', name);
    return t?.state !== 'pending' && t;
  }, { timeoutMs, intervalMs: 250 });
  if (task.state === 'failed') throw new Error(`${name}() failed in the page: ${task.error}`);
  return task.value;
}
