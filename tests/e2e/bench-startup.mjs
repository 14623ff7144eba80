// Start-up and memory benchmark for the app (#7). Prints figures; asserts nothing.
//
//   start to ready: from spawning the binary to the page's ready signal (`ui_ready`, printed
//     with CONFAB_REPORT_READY=1), with a fresh data folder each run (so the embedded
//     coordinator creates its database, as on a first launch). The first run is after dropping
//     the page cache when that is allowed (root), so it also reads the binary and WebKit from disk.
//   memory in the lobby: PSS of the app and every process under it (the WebKit web and network
//     processes), so pages they share count once, 5 s after a guest reaches the lobby with the
//     camera preview and meter running.
//
// Run inside the test session: bash scripts/bench.sh app

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

import { joinAsGuest } from './flows.mjs';
import { appProcesses, repoRoot, waitFor, withApp } from './webdriver.mjs';

const application = process.env.CONFAB_APP ?? path.join(repoRoot, 'target', 'release', 'confab');
const RUNS = Number(process.env.RUNS ?? 7);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function dropPageCache() {
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

async function startToReady(extraEnv = {}) {
  const home = await mkdtemp(path.join(os.tmpdir(), 'confab-bench-'));
  const env = {
    ...process.env,
    ...extraEnv,
    CONFAB_REPORT_READY: '1',
    XDG_DATA_HOME: path.join(home, 'data'),
    XDG_CONFIG_HOME: path.join(home, 'config'),
    XDG_CACHE_HOME: path.join(home, 'cache'),
  };
  const started = performance.now();
  const child = spawn(application, [], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  let ms = null;
  const lines = readline.createInterface({ input: child.stdout });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
  for await (const line of lines) {
    if (line === 'confab: ui ready') {
      ms = performance.now() - started;
      break;
    }
  }
  clearTimeout(timer);
  child.kill('SIGTERM');
  await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
  // WebKit's helpers may still be writing as they exit: retry the clean-up.
  await rm(home, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  if (ms === null) throw new Error('the app never reported ready');
  return ms;
}

async function childrenOf(pid) {
  const kids = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // The command name may hold spaces: the parent pid is the 2nd field after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) kids.push(Number(entry));
  }
  return kids;
}

async function treePss(root) {
  const rows = [];
  const visit = async (pid) => {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
    const kb = Number(rollup.match(/^Pss:\s+(\d+) kB/m)?.[1] ?? 0);
    const name = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
    rows.push({ pid, name, mb: kb / 1024 });
    for (const kid of await childrenOf(pid)) await visit(kid);
  };
  await visit(root);
  return rows;
}

async function lobbyMemory(label, env) {
  let rows;
  const before = await appProcesses(application);
  await withApp({ name: `bench-${label}` }, async (app) => {
    await joinAsGuest(app, 'Bench Guest');
    await waitFor('preview frames', async () => Number(await app.attribute('#preview', 'data-frames')) > 10);
    await sleep(5000);
    const [pid] = (await appProcesses(application)).filter((p) => !before.includes(p));
    rows = await treePss(pid);
  }, { env });
  const total = rows.reduce((sum, r) => sum + r.mb, 0);
  console.log(`memory in the lobby (${label}): ${total.toFixed(1)} MB PSS total`);
  for (const r of rows) console.log(`  ${r.name.padEnd(22)} ${r.mb.toFixed(1)} MB`);
  return total;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

process.env.CONFAB_APP = application;
console.log(`app: ${application.startsWith(repoRoot) ? path.relative(repoRoot, application) : application}`);
const dropped = await dropPageCache();
const first = await startToReady();
console.log(`start to ready, first run${dropped ? ' after dropping the page cache' : ' (page cache not dropped: not root)'}: ${first.toFixed(0)} ms`);
const warm = [];
for (let i = 0; i < RUNS; i++) warm.push(await startToReady());
console.log(`start to ready, warm: median ${median(warm).toFixed(0)} ms over ${RUNS} runs (min ${Math.min(...warm).toFixed(0)}, max ${Math.max(...warm).toFixed(0)}) [target: 1000 ms]`);
// As shipped the app turns WebKit's accelerated compositing off; side by side, with it on.
await lobbyMemory('as shipped: compositing off', {});
if (process.env.BENCH_COMPOSITING_ON !== '0') {
  await lobbyMemory('compositing on (CONFAB_WEBKIT_COMPOSITING=1)', { CONFAB_WEBKIT_COMPOSITING: '1' });
}
