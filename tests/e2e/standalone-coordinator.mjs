// The confab-coordinator binary as its own process, standing in for Stream's service in the
// app's "Stream" mode: it can be stopped and started again on the same port and data.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';

import { freePort, repoRoot } from './webdriver.mjs';

const bin = process.env.CONFAB_COORDINATOR ?? path.join(repoRoot, 'target', 'debug', 'confab-coordinator');

export class StandaloneCoordinator {
  static async start() {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'confab-e2e-coordinator-'));
    const coordinator = new StandaloneCoordinator(dataDir, await freePort());
    await coordinator.serve();
    return coordinator;
  }

  constructor(dataDir, port) {
    this.dataDir = dataDir;
    this.port = port;
    this.child = null;
    // Chosen here so the fault switch can be given the secret; the same key and secret on
    // every restart keep the data directory's app.
    this.apiKey = `e2e${randomBytes(6).toString('hex')}`;
    this.apiSecret = randomBytes(32).toString('hex');
  }

  /** Starts (or starts again) on the same port with the same data, so the same API key. */
  async serve() {
    const args = ['serve', '--addr', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--api-key', this.apiKey, '--dev-token-endpoint', '--fault-injection',
      // Media stays on loopback: the embedded SFU offers no other address.
      '--sfu-bind', '127.0.0.1'];
    this.child = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'ignore'],
      // The secret goes in the environment: arguments show in the process list.
      env: { ...process.env, CONFAB_API_SECRET: this.apiSecret },
    });
    const info = {};
    for await (const line of readline.createInterface({ input: this.child.stdout })) {
      const [key, value] = line.split('=');
      info[key] = value;
      if (info.base_url && info.api_key) break;
    }
    if (!info.base_url) throw new Error('the coordinator did not start');
    this.baseURL = info.base_url;
    this.apiKey = info.api_key;
  }

  /** Stops the process hard, as a crash or a pulled cable would look to the app. */
  async kill() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }

  async token(user, ttl = '1h') {
    const { stdout } = await promisify(execFile)(bin, ['token', '--user', user, '--ttl', ttl, '--data-dir', this.dataDir]);
    return stdout.trim();
  }

  /** A token for `user` limited to the calls `cids` (e.g. livestream:demo): a call token. */
  async callToken(user, cids) {
    const { stdout } = await promisify(execFile)(bin, ['token', '--user', user, '--ttl', '1h', '--call-cids', cids.join(','), '--data-dir', this.dataDir]);
    return stdout.trim();
  }

  /** REST as another user: how a second participant joins without a window of its own. */
  async rest(method, route, token, body) {
    const url = `${this.baseURL}${route}${route.includes('?') ? '&' : '?'}api_key=${this.apiKey}`;
    const res = await fetch(url, {
      method,
      headers: { authorization: token, 'stream-auth-type': 'jwt', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** Flips one of the coordinator's test-only fault switches (`POST /video/_faults`). */
  async fault(command) {
    const res = await fetch(`${this.baseURL}/_faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-confab-api-secret': this.apiSecret },
      body: JSON.stringify(command),
    });
    if (!res.ok) throw new Error(`fault ${JSON.stringify(command)}: ${res.status}`);
  }

  async stop() {
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
