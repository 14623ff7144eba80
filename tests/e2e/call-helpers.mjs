// What the call tests and the call benchmark share: a network of their own (loopback only), a
// coordinator whose SFU carries the media, signing an app in to it and joining a call, a
// PulseAudio null sink per app with a recorder and a tone meter, reading the test pattern
// back from a tile, a livekit-client participant in Chromium, and a process tree's CPU and
// memory.

import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import { inOwnNetwork as inNetwork, runInOwnNetwork as runInNetwork } from '../interop/netns.mjs';
import { connected, onScreen } from './flows.mjs';
import { appProcesses, repoRoot, waitFor, withApp } from './webdriver.mjs';

const run = promisify(execFile);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const application = () => process.env.CONFAB_APP ?? path.join(repoRoot, 'target', 'debug', 'confab');

// ---------------------------------------------------------------------------------------------
// A network of its own.

/** Set in the run inside the namespace (tests/interop/netns.mjs). */
export const NETNS_ENV = 'CONFAB_CALL_NETNS';
export const inOwnNetwork = () => inNetwork(NETNS_ENV);

/** Runs `file` again in a network of its own, as tests/interop does. */
export const runInOwnNetwork = (file, { nodeArgs = [], timeoutMs }) =>
  runInNetwork(file, { envName: NETNS_ENV, label: 'call', nodeArgs, timeoutMs });

// ---------------------------------------------------------------------------------------------
// The coordinator and signing in.

export { Coordinator, Probe, probeBin, coordinatorBin } from '../interop/confab.mjs';

/**
 * Signs `app` in to `coordinator` in Stream mode as `user` (with a token from the coordinator's
 * dev endpoint) and waits for the lobby, connected.
 */
export async function signInStream(app, coordinator, user, name) {
  await app.click('#backend-stream');
  await app.fill('#stream-api-key', coordinator.apiKey);
  await app.fill('#stream-base-url', coordinator.baseURL);
  await app.fill('#sign-in-user', user);
  await app.fill('#sign-in-name', name);
  await app.fill('#sign-in-token', await coordinator.devToken(user));
  await app.click('#sign-in-form button[type="submit"]');
  await onScreen(app, 'lobby');
  await connected(app);
}

/**
 * Leaves default:`callId` as `user` through the coordinator's REST API: what a participant who
 * joined with Coordinator.joinCall (and not through an app) does to be gone from the call.
 */
export async function leaveCallRest(coordinator, user, callId) {
  const token = await coordinator.devToken(user);
  const route = `/call/default/${encodeURIComponent(callId)}/leave?api_key=${encodeURIComponent(coordinator.apiKey)}`;
  const res = await fetch(`${coordinator.baseURL}${route}`, {
    method: 'POST',
    headers: { authorization: token, 'stream-auth-type': 'jwt', 'content-type': 'application/json' },
    body: '{}',
    signal: AbortSignal.timeout(10000),
  });
  if (!res.ok) throw new Error(`POST ${route} as ${user}: ${res.status} ${await res.text()}`);
}

/**
 * Picks, in the lobby, the option of `select` (an id) whose value is `value` or whose label
 * contains `label`, as a person would (a click on it); resolves to its value, or fails.
 */
export async function pick(app, select, { value, label }) {
  const option = await waitFor(`an option ${value ?? label} in #${select}`, () => app.evalAsync(`
    const [id, value, label] = args;
    const options = Array.from(document.getElementById(id).options);
    const i = options.findIndex((o) => (value && o.value === value) || (label && o.textContent.includes(label)));
    return i >= 0 ? { index: i + 1, value: options[i].value } : null;`, select, value ?? null, label ?? null), { timeoutMs: 10000 });
  await app.click(`#${select} option:nth-child(${option.index})`);
  // The backend takes the choice (the pickers are filled again from its selection) or the
  // lobby says why not, in #devices-status.
  await sleep(300);
  const now = await app.evalAsync(`return [document.getElementById(args[0]).value, document.getElementById('devices-status').textContent];`, select);
  if (now[0] !== option.value) throw new Error(`#${select} did not keep ${option.value}: it shows ${now[0]}; the lobby says "${now[1]}"`);
  return option.value;
}

/** The fake camera and tone microphone, and the speaker whose label has `speakerLabel`. */
export async function chooseDevices(app, speakerLabel) {
  await pick(app, 'pick-camera', { value: 'fake:camera:test-pattern' });
  await pick(app, 'pick-microphone', { value: 'fake:microphone:tone' });
  return pick(app, 'pick-speaker', { label: speakerLabel });
}

/**
 * Clicks Join for `callId` and waits for the call screen; resolves to the page's wall clock
 * at the submit (for time-to-first-frame figures).
 */
export async function joinCall(app, callId) {
  await app.fill('#join-call', callId);
  await app.evalAsync(`
    window.__callJoinClickedAt = null;
    document.getElementById('join-form').addEventListener('submit', () => { window.__callJoinClickedAt = Date.now(); }, { once: true, capture: true });
    return true;`);
  await app.click('#join-form button[type="submit"]');
  await onScreen(app, 'call');
  return app.evalAsync('return window.__callJoinClickedAt;');
}

// ---------------------------------------------------------------------------------------------
// The call screen.

/** The tiles as the page's test hook reports them, with each tile's mic and initials state. */
export const tiles = (app) => app.evalAsync(`
  const hook = window.__confabCall;
  if (!hook) return null;
  return hook.tiles().map((t) => {
    const el = document.querySelector('#call-grid .tile[data-identity="' + CSS.escape(t.identity) + '"]');
    const initials = el?.querySelector('.tile-initials');
    return {
      ...t,
      micMuted: el?.querySelector('.tile-mic')?.dataset.muted ?? null,
      cameraOff: el?.querySelector('.tile-camera')?.dataset.off ?? null,
      initialsShown: Boolean(initials && initials.offsetWidth > 0 && getComputedStyle(initials).visibility !== 'hidden' && getComputedStyle(initials).display !== 'none'),
      speaking: el?.dataset.speaking ?? null,
      quality: el?.dataset.quality ?? null,
    };
  });`);

/** The tile of `identity`, or null. */
export async function tileOf(app, identity) {
  return (await tiles(app))?.find((t) => t.identity === identity) ?? null;
}

/**
 * Waits until `app` draws frames in the tile of `identity`; resolves to the tile. On a timeout
 * the error says what the page had: the tile, the frames it received and decoded, and the
 * media view's entry for `identity`.
 */
export async function waitForFrames(app, identity, { frames = 5, timeoutMs = 20000 } = {}) {
  try {
    return await waitFor(`${identity}'s video drawn (${frames} frames)`, async () => {
      const t = await tileOf(app, identity);
      return t && t.framesDrawn >= frames ? t : null;
    }, { timeoutMs, intervalMs: 200 });
  } catch (err) {
    const state = await app.evalAsync(`
      const hook = window.__confabCall;
      const view = hook.view();
      return {
        tile: hook.tiles().find((t) => t.identity === args[0]) ?? null,
        received: hook.framesReceived(args[0]),
        decoded: hook.decoded(args[0]),
        placeholder: document.querySelector('#call-grid .tile[data-identity="' + CSS.escape(args[0]) + '"] .tile-placeholder')?.textContent ?? null,
        media: view?.media ?? null,
        message: view?.message ?? null,
        participant: view?.participants?.find((p) => p.identity === args[0]) ?? null,
        status: document.getElementById('call-media-status').textContent,
      };`, identity).catch((e) => `(could not read the page: ${e.message})`);
    throw new Error(`${err.message}; the page had ${JSON.stringify(state)}`);
  }
}

/** The bars of the fake camera's pattern, left to right (confab-devices fake.rs BARS). */
export const BARS = [[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16], [235, 16, 235], [235, 16, 16], [16, 16, 235]];

/** Whether `rgb` is bar `i`'s colour, within `tolerance` per channel (video coding shifts it). */
export const isBar = (rgb, i, tolerance = 48) => rgb.every((c, k) => Math.abs(c - BARS[i][k]) <= tolerance);

/**
 * In the page (args: the identity): the picture in that tile's canvas as the fake camera drew
 * it. The tile draws each frame whole and letterboxed (black bars only where the picture does
 * not reach), so the picture is the box of not-black pixels through the canvas's middle. From
 * it: the 7 bar colours, the 44-cell time code along the bottom (white = 1, milliseconds since
 * the epoch when the camera rendered the frame; see fake.rs timestamp_code_rows), the page's
 * clock now, and when the tile last drew.
 */
export const SAMPLE_TILE = `
  const identity = args[0];
  // The call screen's grid, or the watch screen's stage (one tile: the host's).
  const grid = args[1] ?? '#call-grid';
  const hook = grid === '#watch-stage' ? window.__confabWatch : window.__confabCall;
  const tile = document.querySelector(grid + ' .tile[data-identity="' + CSS.escape(identity) + '"]');
  const canvas = tile?.querySelector('canvas.tile-video');
  if (!canvas || canvas.width < 44 || canvas.height < 24) return null;
  const W = canvas.width, H = canvas.height;
  const now = Date.now();
  const drawnAt = hook?.lastDrawnAt(identity) ?? null;
  const framesDrawn = hook?.framesDrawn(identity) ?? 0;
  const data = canvas.getContext('2d').getImageData(0, 0, W, H).data;
  const at = (x, y) => { const i = (Math.floor(y) * W + Math.floor(x)) * 4; return [data[i], data[i + 1], data[i + 2]]; };
  const lit = (x, y) => { const [r, g, b] = at(x, y); return r + g + b > 45; };
  let left = 0, right = W - 1, top = 0, bottom = H - 1;
  while (left < W && !lit(left, H / 2)) left++;
  while (right > left && !lit(right, H / 2)) right--;
  const cx = (left + right) / 2;
  while (top < H && !lit(cx, top)) top++;
  while (bottom > top && !lit(cx, bottom)) bottom--;
  const w = right - left + 1, h = bottom - top + 1;
  if (w < 44 || h < 24) return { blank: true, width: W, height: H, now, drawnAt, framesDrawn };
  const bars = [0, 1, 2, 3, 4, 5, 6].map((i) => at(left + (i + 0.5) * w / 7, top + h * 0.5));
  const strip = h / 12;
  const y = top + h - strip / 2;
  let code = 0;
  for (let bit = 0; bit < 44; bit++) {
    const [r, g, b] = at(left + (bit + 0.5) * w / 44, y);
    code = code * 2 + ((r + g + b) / 3 > 128 ? 1 : 0);
  }
  return { blank: false, bars, code, now, drawnAt, framesDrawn, picture: { left, top, width: w, height: h }, width: W, height: H };`;

/** Samples `identity`'s tile in `app`'s `grid` (see SAMPLE_TILE). */
export const sampleTile = (app, identity, grid = '#call-grid') => app.evalAsync(SAMPLE_TILE, identity, grid);

/**
 * Whether a sample shows the fake camera's pattern: all 7 bars in their colours and a time
 * code within `maxAgeMs` of the page's clock. Returns null when it does, else the reason.
 */
export function patternProblem(sample, maxAgeMs) {
  if (!sample) return 'no canvas';
  if (sample.blank) return `a blank canvas (${sample.width}x${sample.height}, ${sample.framesDrawn} frames drawn)`;
  const wrong = sample.bars.map((rgb, i) => (isBar(rgb, i) ? null : `bar ${i} is ${rgb} not ${BARS[i]}`)).filter(Boolean);
  if (wrong.length > 0) return wrong.join('; ');
  const age = sample.now - sample.code;
  if (!(age >= -50 && age <= maxAgeMs)) return `the time code says ${sample.code}, ${age} ms from now (${sample.now})`;
  return null;
}

/**
 * Whether `selector`'s element lies inside the window's viewport: { inside, rect, viewport }.
 */
export const inViewport = (app, selector) => app.evalAsync(`
  const el = document.querySelector(args[0]);
  if (!el) return { inside: false, rect: null };
  const r = el.getBoundingClientRect();
  const viewport = { width: document.documentElement.clientWidth, height: document.documentElement.clientHeight };
  const inside = r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= viewport.width && r.bottom <= viewport.height;
  return { inside, rect: { left: r.left, top: r.top, right: r.right, bottom: r.bottom }, viewport };`, selector);

// ---------------------------------------------------------------------------------------------
// Sound: a null sink per app, its monitor recorded, and how much of a pitch it holds.

/** Loads a PulseAudio null sink `name` described as `description`; `unload()` removes it. */
export async function nullSink(name, description) {
  const { stdout } = await run('pactl', ['load-module', 'module-null-sink', `sink_name=${name}`, `sink_properties=device.description=${description}`]);
  const module = stdout.trim();
  return {
    name,
    description,
    module,
    unload: () => run('pactl', ['unload-module', module]).catch(() => {}),
  };
}

export const RATE = 48000;

/**
 * Records `ms` of the sink's monitor (48 kHz mono s16le) after skipping `skipMs` (parec's start
 * and whatever it had buffered). Resolves to an Int16Array.
 */
export async function recordSink(sink, ms, { skipMs = 200 } = {}) {
  const child = spawn('parec', [`--device=${sink}.monitor`, '--raw', '--format=s16le', `--rate=${RATE}`, '--channels=1', '--latency-msec=20'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks = [];
  let bytes = 0;
  const want = Math.round(((skipMs + ms) / 1000) * RATE) * 2;
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = once(child, 'exit');
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`parec gave ${bytes} of ${want} bytes from ${sink}.monitor in ${ms + skipMs + 5000} ms: ${stderr}`)), ms + skipMs + 5000);
    child.stdout.on('data', (d) => {
      chunks.push(d);
      bytes += d.length;
      if (bytes >= want) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (bytes < want) reject(new Error(`parec exited (${code}) after ${bytes} of ${want} bytes: ${stderr}`));
    });
  }).finally(() => child.kill('SIGTERM'));
  await exited;
  const all = Buffer.concat(chunks);
  const skip = Math.round((skipMs / 1000) * RATE) * 2;
  const body = all.subarray(skip, want);
  return new Int16Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
}

/**
 * How much of `samples` is at each pitch in `freqs`: Goertzel over 100 ms Hann-windowed blocks
 * (so a pitch a little off still counts), averaged. For each pitch: `share`, its power as a
 * share of all the power (1 for a pure tone), and `dbfs`, its level (0 dBFS: a full-scale
 * sine). Also the whole recording's `rmsDbfs`.
 */
export function pitches(samples, freqs, rate = RATE) {
  const block = Math.round(rate / 10);
  const window = Float64Array.from({ length: block }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / (block - 1)));
  const windowSum = window.reduce((a, b) => a + b, 0);
  const totals = Object.fromEntries(freqs.map((f) => [f, 0]));
  let energy = 0;
  let blocks = 0;
  for (let start = 0; start + block <= samples.length; start += block) {
    blocks += 1;
    for (let n = 0; n < block; n++) energy += (samples[start + n] / 32768) ** 2;
    for (const f of freqs) {
      const coeff = 2 * Math.cos((2 * Math.PI * f) / rate);
      let s1 = 0;
      let s2 = 0;
      for (let n = 0; n < block; n++) {
        const s = (samples[start + n] / 32768) * window[n] + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
      }
      // |X(f)|^2; a sine of amplitude A gives (A * windowSum / 2)^2, and its power is A^2 / 2.
      totals[f] += s1 * s1 + s2 * s2 - coeff * s1 * s2;
    }
  }
  const count = blocks * block;
  const power = count ? energy / count : 0;
  const out = { rmsDbfs: dbfs(power), power, silentShare: silentShare(samples, rate) };
  for (const f of freqs) {
    const tonePower = blocks ? (2 * (totals[f] / blocks)) / (windowSum * windowSum) : 0;
    out[f] = { share: power > 0 ? tonePower / power : 0, dbfs: dbfs(tonePower), power: tonePower };
  }
  return out;
}

/**
 * The share of 10 ms blocks that are digital silence (every sample 0): a playout that ran dry
 * (PulseAudio's null sink passes exact zeros through; a tone or noise never has 480 of them).
 */
export function silentShare(samples, rate = RATE) {
  const block = rate / 100;
  let blocks = 0;
  let silent = 0;
  for (let start = 0; start + block <= samples.length; start += block) {
    blocks += 1;
    let zero = true;
    for (let n = start; n < start + block && zero; n++) zero = samples[n] === 0;
    if (zero) silent += 1;
  }
  return blocks ? silent / blocks : 0;
}

// Power relative to a full-scale sine's (0.5).
const dbfs = (power) => (power > 0 ? 10 * Math.log10(power / 0.5) : -Infinity);

/** Records `sink` for `ms` and measures `freqs` in it (see pitches). */
export async function listen(sink, freqs, ms = 2000) {
  return pitches(await recordSink(sink, ms), freqs);
}

/** A short description of a measurement, for messages. */
export function describeSound(m, freqs) {
  return `${m.rmsDbfs.toFixed(1)} dBFS in all, ${(m.silentShare * 100).toFixed(0)} % of 10 ms blocks silent; ${freqs.map((f) => `${f} Hz ${m[f].dbfs.toFixed(1)} dBFS (${(m[f].share * 100).toFixed(1)} %)`).join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// A participant in Chromium: livekit-client (tests/interop's page) with Chromium's fake camera.

export { ChromeDriver, browserLog, inPage, redact, servePage } from '../interop/browser.mjs';

/** The routes of tests/interop's page: livekit-client's UMD build and the page's API. */
export function interopPageRoutes() {
  const dir = path.join(repoRoot, 'tests', 'interop');
  return {
    '/': path.join(dir, 'page', 'index.html'),
    '/interop.js': path.join(dir, 'page', 'interop.js'),
    '/livekit-client.umd.js': path.join(dir, 'node_modules', 'livekit-client', 'dist', 'livekit-client.umd.js'),
  };
}


// ---------------------------------------------------------------------------------------------
// Processes: a tree's CPU time and memory.

/** Every process's parent, from /proc. */
async function parents() {
  const out = new Map();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null);
    if (!stat) continue;
    // The command name is in parentheses and may hold spaces: fields follow its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(entry), Number(fields[1]));
  }
  return out;
}

/** `pid` and all its descendants. */
export async function processTree(pid) {
  const parentOf = await parents();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat; 0 if it is gone. */
async function cpuSeconds(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (!stat) return 0;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), 12 and 13 here; in clock ticks.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

const CLOCK_TICKS = Number((await run('getconf', ['CLK_TCK']).catch(() => ({ stdout: '100' }))).stdout.trim()) || 100;

/**
 * The CPU that the trees of `pids` use over `ms`, in percent of one core, per tree: `total`,
 * and `parts` by process name (the app, WebKitWebProcess, ...). Each process's time at the end
 * minus at the start (a process that comes or goes in between counts for what it used while
 * seen).
 */
export async function cpuPercent(pids, ms) {
  const trees = await Promise.all(pids.map((pid) => processTree(pid)));
  const names = await Promise.all(trees.map((tree) => Promise.all(tree.map((p) => readFile(`/proc/${p}/comm`, 'utf8').then((n) => n.trim(), () => '?')))));
  const start = await Promise.all(trees.map((tree) => Promise.all(tree.map(cpuSeconds))));
  const t0 = process.hrtime.bigint();
  await sleep(ms);
  const end = await Promise.all(trees.map((tree) => Promise.all(tree.map(cpuSeconds))));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return trees.map((tree, i) => {
    const parts = {};
    let total = 0;
    tree.forEach((_, k) => {
      if (end[i][k] <= 0) return;
      const pct = (100 * (end[i][k] - start[i][k])) / seconds;
      total += pct;
      parts[names[i][k]] = (parts[names[i][k]] ?? 0) + pct;
    });
    return { total, parts };
  });
}

/** A cpuPercent entry as text: "66 % (confab 40, WebKitWebProces 25, ...)". */
export const describeCpu = ({ total, parts }) =>
  `${total.toFixed(0)} % (${Object.entries(parts).filter(([, v]) => v >= 0.5).sort((x, y) => y[1] - x[1]).map(([n, v]) => `${n} ${v.toFixed(0)}`).join(', ')})`;

/** The proportional set size of `pid`'s tree in MB, and each process's: from smaps_rollup. */
export async function pssMegabytes(pid) {
  const parts = [];
  for (const p of await processTree(pid)) {
    const rollup = await readFile(`/proc/${p}/smaps_rollup`, 'utf8').catch(() => '');
    const kb = Number(rollup.match(/^Pss:\s+(\d+) kB/m)?.[1] ?? 0);
    const name = (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '?')).trim();
    if (kb > 0) parts.push({ pid: p, name, mb: kb / 1024 });
  }
  return { total: parts.reduce((a, p) => a + p.mb, 0), parts };
}

/** The app's processes now (pids), to tell a newly launched one from them (newAppPid). */
export const appPids = () => appProcesses(application());

/** The one app process started since `before` (a list of pids): the one a session just launched. */
export async function newAppPid(before) {
  return waitFor('the app\'s process', async () => {
    const now = (await appProcesses(application())).filter((p) => !before.includes(p));
    return now.length === 1 ? now[0] : null;
  }, { timeoutMs: 10000 });
}

export { sleep };

/** Signs `app` in as `user` with the fake camera and the tone microphone picked. */
export async function signInForVideo(app, coordinator, user, name) {
  await signInStream(app, coordinator, user, name);
  await pick(app, 'pick-camera', { value: 'fake:camera:test-pattern' });
  await pick(app, 'pick-microphone', { value: 'fake:microphone:tone' });
}

/**
 * Alice (app A) and Bob (app B) in call `callId`, each drawing the other's camera; then
 * `body(a, b)`. Each window's last screen goes to target/e2e/`shot`-{a,b}-end.png.
 */
export async function aliceAndBob(t, coordinator, callId, body, shot) {
  await withApp(t, async (a) => {
    await signInForVideo(a, coordinator, 'alice', 'Alice Anders');
    await joinCall(a, callId);
    await withApp(t, async (b) => {
      await signInForVideo(b, coordinator, 'bob', 'Bob Berg');
      await joinCall(b, callId);
      await waitForFrames(a, 'bob');
      await waitForFrames(b, 'alice');
      await body(a, b);
    }, { shot: `${shot}-b-end` });
  }, { shot: `${shot}-a-end` });
}

// ---------------------------------------------------------------------------------------------
// Screen sharing.

/**
 * Starts confab-pattern-window (the test pattern, drawn at 30 fps; CONFAB_PATTERN_WINDOW names
 * another build of it) titled `title`; resolves to { id (the X window), stop() }.
 */
export async function patternWindow(title, { size = '1280x720', seconds = 200 } = {}) {
  const binary = process.env.CONFAB_PATTERN_WINDOW ?? path.join(repoRoot, 'target', 'debug', 'confab-pattern-window');
  const child = spawn(binary, ['--title', title, '--size', size, '--seconds', String(seconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const [line] = await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => { throw new Error(`confab-pattern-window exited (${code}) before showing its window`); }),
  ]);
  const id = line.trim().replace(/^window /, '');
  return {
    id,
    async stop() {
      // Gone already (killed here before, or exited): nothing to wait for.
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/**
 * Opens the share picker in `app` and waits for the entry of the window titled `title` with its
 * picture: { id, kinds and titles (of every entry), firstBar, lastBar (its picture's colours) },
 * until `shows(entry)` (the pictures are refreshed each second).
 */
export async function pickerEntry(app, title, shows = () => true) {
  await app.click('#toggle-share');
  await waitFor('the share picker to open', () => app.evalAsync(`return document.getElementById('share-picker').open;`), { timeoutMs: 5000 });
  let seen = null;
  return waitFor(`"${title}" in the picker with its picture`, async () => {
    seen = await app.evalAsync(`
    const button = Array.from(document.querySelectorAll('#share-sources .share-source')).find((b) => b.dataset.title === args[0]);
    if (!button || button.dataset.thumbnail !== 'true') return null;
    const canvas = button.querySelector('canvas');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    // The pattern's first bar (white) a little in from the left, half way down the picture.
    const at = (x, y) => { const i = (Math.floor(y) * canvas.width + Math.floor(x)) * 4; return [data[i], data[i + 1], data[i + 2]]; };
    return {
      id: button.dataset.sourceId,
      kinds: Array.from(document.querySelectorAll('#share-sources .share-source')).map((b) => b.dataset.kind),
      titles: Array.from(document.querySelectorAll('#share-sources .share-source')).map((b) => b.dataset.title),
      firstBar: at(canvas.width * 0.05, canvas.height * 0.5),
      lastBar: at(canvas.width * 0.95, canvas.height * 0.5),
    };`, title);
    return seen && shows(seen) ? seen : null;
  }, { timeoutMs: 10000, intervalMs: 250 }).catch((err) => {
    throw new Error(`${err.message}; the last picture seen: ${JSON.stringify(seen)}`);
  });
}

/** Shares the window titled `title` from `app`'s picker; resolves once `app` says it shares. */
export async function shareWindow(app, title) {
  const entry = await pickerEntry(app, title);
  await app.click(`#share-sources .share-source[data-source-id="${entry.id}"]`);
  await waitFor('the sharing indicator', async () => (await app.attribute('#sharing-banner', 'hidden')) === null, { timeoutMs: 10000 });
  return entry;
}
