// Confab's own processes for the interop test: the coordinator with its embedded SFU, and the
// Rust call participant (confab-call-probe). Each is started on loopback and stopped with a
// bounded wait; their stderr is kept for the failure report.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { access, constants, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';

import { repoRoot } from './browser.mjs';

export const coordinatorBin =
  process.env.CONFAB_COORDINATOR ?? path.join(repoRoot, 'target', 'debug', 'confab-coordinator');
export const probeBin =
  process.env.CONFAB_CALL_PROBE ?? path.join(repoRoot, 'target', 'debug', 'confab-call-probe');

const BUILD_HINT = 'build them with `cargo build -p confab-coordinator -p confab-call-probe`';

/** Fails with a clear message when a binary the test needs is not built. */
export async function requireBinaries() {
  for (const bin of [coordinatorBin, probeBin]) {
    try {
      await access(bin, constants.X_OK);
    } catch {
      throw new Error(`${bin} is missing: ${BUILD_HINT}`);
    }
  }
}

/** The last `max` lines a stream wrote, for a failure report. */
function tail(stream, max = 200) {
  const lines = [];
  readline.createInterface({ input: stream }).on('line', (line) => {
    lines.push(line);
    if (lines.length > max) lines.shift();
  });
  return lines;
}

/** Stops `child`: `signal` first, SIGKILL after `graceMs`. Resolves once it has exited. */
async function stopChild(child, signal, graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** The SFU options `serve` must have (issue #14); an older binary fails with this message. */
const SFU_FLAGS = ['--sfu-bind', '--sfu-udp-port'];

export class Coordinator {
  /**
   * `confab-coordinator serve` on 127.0.0.1 with a free HTTP port, its SFU bound to 127.0.0.1
   * on a free UDP port, and the dev token endpoint.
   */
  static async start() {
    const { stdout: help } = await promisify(execFile)(coordinatorBin, ['serve', '--help']);
    const missing = SFU_FLAGS.filter((flag) => !help.includes(flag));
    if (missing.length > 0) {
      throw new Error(`${coordinatorBin} has no ${missing.join(' or ')} option: it predates the ` +
        `embedded SFU (issue #14), or is stale: ${BUILD_HINT}`);
    }
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'confab-interop-coordinator-'));
    const apiSecret = randomBytes(32).toString('hex');
    const args = [
      'serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir,
      '--api-key', `interop${randomBytes(6).toString('hex')}`, '--dev-token-endpoint',
      '--sfu-bind', '127.0.0.1', '--sfu-udp-port', '0',
    ];
    const child = spawn(coordinatorBin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      // The secret goes in the environment: arguments show in the process list.
      env: { ...process.env, CONFAB_API_SECRET: apiSecret },
    });
    const coordinator = new Coordinator(child, dataDir, tail(child.stderr));
    try {
      await coordinator.#readStatus();
    } catch (err) {
      await coordinator.stop();
      throw new Error(`${err.message}\n${coordinator.stderr.join('\n')}`);
    }
    return coordinator;
  }

  constructor(child, dataDir, stderr) {
    this.child = child;
    this.dataDir = dataDir;
    this.stderr = stderr;
    /** Every `key=value` status line `serve` printed (base_url, api_key, and any others). */
    this.status = {};
  }

  #readStatus() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the coordinator printed no base_url and api_key within 15 s')), 15000);
      this.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the coordinator exited (${code ?? signal}) before it printed its base URL`));
      });
      readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
        const eq = line.indexOf('=');
        if (eq > 0) this.status[line.slice(0, eq)] = line.slice(eq + 1);
        if (this.status.base_url && this.status.api_key) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  get baseURL() { return this.status.base_url; }
  get apiKey() { return this.status.api_key; }

  /** A user token from the dev endpoint, as an app's token provider would fetch it. */
  async devToken(user) {
    const origin = new URL(this.baseURL).origin;
    const res = await fetch(`${origin}/api/token?user_id=${encodeURIComponent(user)}`, { signal: AbortSignal.timeout(10000) });
    if (!res.ok) throw new Error(`GET /api/token for ${user}: ${res.status} ${await res.text()}`);
    return (await res.json()).token;
  }

  /**
   * Joins `user` to the call default:`callId` (creating it) through the REST API, and returns
   * the SFU credentials of the answer: `{url, token}`, a LiveKit server URL and access token.
   */
  async joinCall(user, callId) {
    const token = await this.devToken(user);
    const route = `/call/default/${encodeURIComponent(callId)}/join?api_key=${encodeURIComponent(this.apiKey)}`;
    const res = await fetch(`${this.baseURL}${route}`, {
      method: 'POST',
      headers: { authorization: token, 'stream-auth-type': 'jwt', 'content-type': 'application/json' },
      body: JSON.stringify({ create: true }),
      signal: AbortSignal.timeout(10000),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(`POST ${route} as ${user}: ${res.status} ${JSON.stringify(json)}`);
    const url = json.credentials?.server?.url;
    const sfuToken = json.credentials?.token;
    if (!url || !sfuToken) throw new Error(`the join answer for ${user} has no credentials.server.url or credentials.token: ${JSON.stringify(json.credentials)}`);
    return { url, token: sfuToken };
  }

  async stop() {
    await stopChild(this.child, 'SIGINT');
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * confab-call-probe: a Rust participant that joins with `url` and `token`, publishes a test
 * pattern (H.264) and a tone (Opus), and prints one JSON object per line, ending with a
 * `summary` of what it received.
 */
export class Probe {
  static start({ url, token, seconds }) {
    const args = ['--url', url, '--publish', '--seconds', String(seconds)];
    // The token goes in the environment (its --token): arguments show in the process list.
    const child = spawn(probeBin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CONFAB_PROBE_TOKEN: token },
    });
    return new Probe(child);
  }

  constructor(child) {
    this.child = child;
    this.stderr = tail(child.stderr);
    /** Every JSON line it printed, in order. */
    this.events = [];
    /** Lines that were not JSON (kept for the failure report). */
    this.other = [];
    this.waiters = new Set();
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited.then(() => this.#check());
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line));
      } catch {
        this.other.push(line);
      }
      this.#check();
    });
  }

  #check() {
    for (const w of this.waiters) w();
  }

  /** Resolves with the first event that matches `pred`; fails after `timeoutMs` or on exit. */
  waitFor(what, pred, timeoutMs) {
    return new Promise((resolve, reject) => {
      const done = (fn, value) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        fn(value);
      };
      const check = () => {
        const event = this.events.find(pred);
        if (event) done(resolve, event);
        else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          done(reject, new Error(`confab-call-probe exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}`));
        }
      };
      const timer = setTimeout(() => done(reject, new Error(`timed out after ${timeoutMs} ms waiting for confab-call-probe's ${what}`)), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Waits up to `timeoutMs` for the probe to exit by itself, then stops it. */
  async finish(timeoutMs) {
    let timer;
    const result = await Promise.race([
      this.exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); }),
    ]);
    clearTimeout(timer);
    if (result) return result;
    await this.stop();
    throw new Error(`confab-call-probe did not exit within ${timeoutMs} ms of its end: killed it`);
  }

  async stop() {
    await stopChild(this.child, 'SIGTERM', 3000);
  }

  /** Everything it said, for a failure report. */
  report() {
    return [
      ...this.events.map((e) => JSON.stringify(e)),
      ...this.other,
      ...this.stderr.map((l) => `stderr: ${l}`),
    ].join('\n');
  }
}
