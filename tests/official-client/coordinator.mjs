// Starts the confab-coordinator binary on a free loopback port for one test file, and gives
// tests what a customer's server would: tokens (through the CLI) and the fault switches.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
export const coordinatorBin =
  process.env.CONFAB_COORDINATOR ?? path.join(repoRoot, 'target', 'debug', 'confab-coordinator');

export const callWatcherBin =
  process.env.CONFAB_CALL_WATCHER ?? path.join(repoRoot, 'target', 'debug', 'examples', 'call_watcher');

const require = createRequire(import.meta.url);
export const { StreamVideoClient } = require('@stream-io/video-client');
export const WebSocket = require('ws');

export class Coordinator {
  static async start() {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'confab-coordinator-'));
    // The harness picks the app's key and secret, as a customer's server knows its own: the
    // fault switch needs the secret. It goes in the environment, never on the command line.
    const apiSecret = randomBytes(32).toString('hex');
    const child = spawn(
      coordinatorBin,
      ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir, '--api-key', `tests${randomBytes(6).toString('hex')}`, '--dev-token-endpoint', '--fault-injection'],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CONFAB_API_SECRET: apiSecret } },
    );
    const lines = readline.createInterface({ input: child.stdout });
    const info = {};
    for await (const line of lines) {
      const [key, value] = line.split('=');
      info[key] = value;
      if (info.base_url && info.api_key) break;
    }
    if (!info.base_url) throw new Error('the coordinator did not print its base URL');
    return new Coordinator(child, dataDir, info.base_url, info.api_key, apiSecret);
  }

  constructor(child, dataDir, baseURL, apiKey, apiSecret) {
    this.child = child;
    this.apiSecret = apiSecret;
    this.dataDir = dataDir;
    this.baseURL = baseURL;
    this.apiKey = apiKey;
  }

  /** Options for StreamVideoClient that point it here and keep it off the internet. */
  clientOptions(extra = {}) {
    return {
      baseURL: this.baseURL,
      WebSocketImpl: WebSocket,
      allowServerSideConnect: true,
      locationHintUrl: `${this.baseURL}/location_hint`,
      logLevel: 'error',
      ...extra,
    };
  }

  /** A signed token from the server-side generator (`confab-coordinator token`). */
  async token(user, { ttl, role, callCids } = {}) {
    const args = ['token', '--user', user, '--data-dir', this.dataDir];
    if (ttl !== undefined) args.push('--ttl', ttl);
    if (role) args.push('--role', role);
    if (callCids) args.push('--call-cids', callCids.join(','));
    const { stdout } = await promisify(execFile)(coordinatorBin, args);
    return stdout.trim();
  }

  /** A token from the dev endpoint, as a token provider would fetch it. */
  async devToken(user) {
    const origin = new URL(this.baseURL).origin;
    const res = await fetch(`${origin}/api/token?user_id=${encodeURIComponent(user)}`);
    return (await res.json()).token;
  }

  async fault(command) {
    const res = await fetch(`${this.baseURL}/_faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-confab-api-secret': this.apiSecret },
      body: JSON.stringify(command),
    });
    if (!res.ok) throw new Error(`fault ${JSON.stringify(command)} failed: ${res.status}`);
    return res.json();
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGINT');
      await exited;
    }
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor(what, probe, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}
