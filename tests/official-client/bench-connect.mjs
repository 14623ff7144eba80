// connectUser latency of Stream's official client against a coordinator: prints
// {"p50": ms, "p95": ms} for N connects, each with a new client (as an app start would).
//   CONFAB_BENCH_SECRET=... node bench-connect.mjs BASE_URL API_KEY N

import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const { StreamVideoClient } = require('@stream-io/video-client');
const WebSocket = require('ws');

const [baseURL, apiKey, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 300);
const secret = process.env.CONFAB_BENCH_SECRET;
process.on('unhandledRejection', () => {});

const b64url = (data) => Buffer.from(data).toString('base64url');
function sign(userId) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ user_id: userId }));
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

const options = {
  baseURL,
  WebSocketImpl: WebSocket,
  allowServerSideConnect: true,
  locationHintUrl: `${baseURL}/location_hint`,
  logLevel: 'error',
};

async function once(userId) {
  const client = new StreamVideoClient({ apiKey, options });
  const token = sign(userId);
  const started = performance.now();
  await client.connectUser({ id: userId }, token);
  const took = performance.now() - started;
  await client.disconnectUser();
  return took;
}

for (let i = 0; i < 20; i += 1) await once(`js-warm-${i}`);
const samples = [];
for (let i = 0; i < rounds; i += 1) samples.push(await once(`js-${i}`));
samples.sort((a, b) => a - b);
const at = (p) => samples[Math.round((samples.length - 1) * p)];
console.log(JSON.stringify({ p50: at(0.5), p95: at(0.95) }));
process.exit(0);
