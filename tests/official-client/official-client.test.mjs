// Stream's official @stream-io/video-client 1.60.0, unchanged, against confab-coordinator.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { after, before, test } from 'node:test';

import { Coordinator, StreamVideoClient, callWatcherBin, sleep, waitFor } from './coordinator.mjs';

// The official client leaves a rejection unhandled when the server refuses a connect for good
// (see the protocol reference). node:test would pin it on whichever test runs at that moment,
// so record such rejections instead; the last test checks that nothing else escaped.
const unhandled = [];

let coordinator;
const clients = [];
before(async () => {
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', (reason) => unhandled.push(reason));
  coordinator = await Coordinator.start();
});
after(async () => {
  // Disconnect everyone first, so no client keeps retrying telemetry against a stopped server.
  await Promise.allSettled(clients.map((c) => c.disconnectUser()));
  await coordinator?.stop();
});

/** Every client made here is tracked, so `after` can disconnect it. */
function track(video) {
  clients.push(video);
  return video;
}

function client(extraOptions) {
  return track(new StreamVideoClient({ apiKey: coordinator.apiKey, options: coordinator.clientOptions(extraOptions) }));
}

test('authenticated connect and disconnect', { timeout: 20000 }, async () => {
  const video = client();
  const token = await coordinator.token('alice', { ttl: '1h' });
  const ok = await video.connectUser({ id: 'alice', name: 'Alice', custom: { team: 'x' } }, token);
  assert.equal(ok.type, 'connection.ok');
  assert.ok(ok.connection_id);
  assert.equal(video.state.connectedUser.id, 'alice');
  assert.equal(video.state.connectedUser.name, 'Alice');
  assert.deepEqual(video.state.connectedUser.custom, { team: 'x' });
  await video.disconnectUser();
  assert.equal(video.state.connectedUser, undefined);
});

test('token provider', { timeout: 20000 }, async () => {
  const video = client();
  let calls = 0;
  const ok = await video.connectUser({ id: 'bob' }, async () => {
    calls += 1;
    return coordinator.devToken('bob');
  });
  assert.equal(ok.me.id, 'bob');
  assert.equal(calls, 1);
  await video.disconnectUser();
});

test('an expired token is refreshed through the provider on the socket', { timeout: 20000 }, async () => {
  const expired = await coordinator.token('carol', { ttl: '0s' });
  let calls = 0;
  const video = track(new StreamVideoClient({
    apiKey: coordinator.apiKey,
    user: { id: 'carol' },
    token: expired,
    tokenProvider: async () => {
      calls += 1;
      return coordinator.devToken('carol');
    },
    options: coordinator.clientOptions(),
  }));
  await waitFor('carol to connect', () => video.state.connectedUser?.id === 'carol');
  assert.equal(calls, 1, 'the static token first, then one provider call');

  // The coordinator expires every token carol has used: the socket is told with code 40,
  // and the client refreshes through the provider and reconnects.
  await coordinator.fault({ action: 'expire_tokens', user_id: 'carol' });
  await waitFor('a second provider call', () => calls === 2);
  const call = video.call('default', 'carol-room');
  await call.getOrCreate();
  assert.equal(call.cid, 'default:carol-room');
  await video.disconnectUser();
});

test('an expired token is refreshed through the provider on a REST call', { timeout: 20000 }, async () => {
  // Anonymous clients have no socket, so a code 40 can only come from REST.
  const host = client();
  await host.connectUser({ id: 'dave' }, await coordinator.token('dave'));
  await host.call('livestream', 'dave-show').getOrCreate();

  const expired = await coordinator.token('!anon', { ttl: '0s', callCids: ['livestream:dave-show'] });
  let calls = 0;
  const viewer = track(new StreamVideoClient({
    apiKey: coordinator.apiKey,
    user: { type: 'anonymous' },
    token: expired,
    tokenProvider: async () => {
      calls += 1;
      return coordinator.token('!anon', { ttl: '1h', callCids: ['livestream:dave-show'] });
    },
    options: coordinator.clientOptions(),
  }));
  const call = viewer.call('livestream', 'dave-show');
  await call.get();
  assert.equal(calls, 1);
  assert.equal(call.state.backstage, true);
  await host.disconnectUser();
});

test('guest users', { timeout: 20000 }, async () => {
  const video = track(new StreamVideoClient({
    apiKey: coordinator.apiKey,
    user: { id: 'jack-guest', type: 'guest', name: 'Jack' },
    options: coordinator.clientOptions(),
  }));
  await waitFor('the guest to connect', () => video.state.connectedUser);
  assert.equal(video.state.connectedUser.id, 'jack-guest');
  assert.equal(video.state.connectedUser.role, 'guest');
  assert.equal(video.state.connectedUser.name, 'Jack');
  await video.disconnectUser();
});

test('anonymous users, with no token and with a call token', { timeout: 20000 }, async () => {
  const host = client();
  await host.connectUser({ id: 'erin' }, await coordinator.token('erin'));
  await host.call('livestream', 'open-show').getOrCreate();
  await host.call('livestream', 'other-show').getOrCreate();

  const anon = track(new StreamVideoClient({
    apiKey: coordinator.apiKey,
    user: { type: 'anonymous' },
    options: coordinator.clientOptions(),
  }));
  const open = anon.call('livestream', 'open-show');
  await open.get();
  assert.deepEqual(open.state.ownCapabilities, ['read-call']);

  const scoped = track(new StreamVideoClient({
    apiKey: coordinator.apiKey,
    user: { type: 'anonymous' },
    token: await coordinator.token('!anon', { role: 'viewer', callCids: ['livestream:open-show'] }),
    options: coordinator.clientOptions(),
  }));
  await scoped.call('livestream', 'open-show').get();
  await assert.rejects(scoped.call('livestream', 'other-show').get(), (err) => {
    assert.equal(err.code, 17);
    assert.match(err.message, /livestream:other-show/);
    return true;
  });
  await host.disconnectUser();
});

test('retries end in onConnectUserError with every attempt', { timeout: 20000 }, async () => {
  await coordinator.fault({ action: 'refuse_connects', code: 43 });
  try {
    let reported;
    const video = client({
      maxConnectUserRetries: 3,
      onConnectUserError: (last, all) => {
        reported = { last, all };
      },
    });
    await assert.rejects(video.connectUser({ id: 'frank' }, await coordinator.token('frank')));
    assert.ok(reported, 'onConnectUserError was called');
    assert.equal(reported.all.length, 3);
    for (const err of reported.all) assert.match(err.message, /"code":43/);
    assert.equal(reported.last, reported.all[2]);
  } finally {
    await coordinator.fault({ action: 'reset' });
  }
});

test('the health check round trip', { timeout: 20000 }, async () => {
  const video = client();
  await video.connectUser({ id: 'grace' }, await coordinator.token('grace'));
  const received = new Promise((resolve) => {
    const off = video.on('health.check', (event) => {
      off();
      resolve(event);
    });
  });
  // The client pings 25 s after the last message; shorten that for the test.
  const connection = video.streamClient.wsConnection;
  connection.pingInterval = 100;
  connection.scheduleNextPing();
  const event = await received;
  assert.equal(event.connection_id, connection.connectionID);
  await video.disconnectUser();
});

test('call get-or-create, get and join', { timeout: 20000 }, async () => {
  const host = client();
  await host.connectUser({ id: 'heidi' }, await coordinator.token('heidi'));
  const call = host.call('default', 'standup');
  const created = await call.getOrCreate({ data: { members: [{ user_id: 'ivan' }], custom: { topic: 'daily' } } });
  assert.equal(created.created, true);
  assert.equal(call.state.custom.topic, 'daily');
  assert.deepEqual(call.state.members.map((m) => m.user_id), ['ivan']);

  const again = host.call('default', 'standup');
  await again.get();
  assert.equal(again.state.createdBy.id, 'heidi');

  // The coordinator half of join (the SFU half needs WebRTC, which local mode does not run).
  const joined = await call.doJoinRequest({ create: false });
  assert.equal(joined.call.cid, 'default:standup');
  assert.ok(joined.credentials.server.url);
  assert.ok(joined.credentials.token);

  // Another user watching the call sees heidi's join as an event.
  const ivan = client();
  await ivan.connectUser({ id: 'ivan' }, await coordinator.token('ivan'));
  const ivanCall = ivan.call('default', 'standup');
  await ivanCall.get();
  const seen = new Promise((resolve) => {
    const off = ivan.on('call.session_participant_joined', (e) => {
      off();
      resolve(e);
    });
  });
  await call.doJoinRequest({});
  const event = await seen;
  assert.equal(event.participant.user.id, 'heidi');
  await Promise.all([host.disconnectUser(), ivan.disconnectUser()]);
});

test('the official client and the Rust client see each other\'s call events', { timeout: 20000 }, async () => {
  const alice = client();
  await alice.connectUser({ id: 'alice-js' }, await coordinator.token('alice-js'));
  const call = alice.call('default', 'mixed');
  await call.getOrCreate();

  const rust = spawn(callWatcherBin, [
    '--base-url', coordinator.baseURL, '--api-key', coordinator.apiKey,
    '--user', 'bob-rust', '--token', await coordinator.token('bob-rust'), '--call', 'default:mixed',
  ], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  readline.createInterface({ input: rust.stdout }).on('line', (line) => lines.push(JSON.parse(line)));
  const seen = (pred) => waitFor('a line from the Rust client', () => lines.find(pred));
  try {
    await seen((l) => l.event === 'watching' && l.call_cid === 'default:mixed');

    // Rust joins: the official client hears it.
    const heard = new Promise((resolve) => {
      const off = alice.on('call.session_participant_joined', (e) => {
        if (e.participant.user.id === 'bob-rust') {
          off();
          resolve(e);
        }
      });
    });
    rust.stdin.write('join\n');
    assert.equal((await heard).call_cid, 'default:mixed');

    // The official client joins: the Rust client hears it.
    await call.doJoinRequest({});
    const line = await seen((l) => l.event === 'call.session_participant_joined' && l.user_id === 'alice-js');
    assert.equal(line.call_cid, 'default:mixed');
  } finally {
    rust.stdin.end();
    await new Promise((resolve) => rust.once('exit', resolve));
  }
});

test('no unhandled rejections escaped except the known permanent-refusal one', { timeout: 20000 }, async () => {
  await sleep(50);
  for (const reason of unhandled) {
    assert.match(String(reason?.message ?? reason), /WS failed|43|connect/i, String(reason));
  }
});
