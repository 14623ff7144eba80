// A network of its own for a test file: it runs itself again inside new network and PID
// namespaces that have only a loopback interface. Everything the browser tests start uses
// 127.0.0.1 anyway; the namespace makes "nothing leaves the machine" a fact (Chromium's ICE
// gathers candidates on every interface it sees). The X server, D-Bus and PulseAudio are
// reached through sockets in the file system, which the namespace keeps. The PID namespace
// means every process the run started dies with it.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Whether this process is the run inside the namespace that `envName` marks. */
export const inOwnNetwork = (envName) => process.env[envName] === '1';

/**
 * Runs `file` again (with `node`, plus `nodeArgs`) inside the namespaces, with `envName=1` so it
 * knows, and a TMPDIR of its own removed afterwards. Killed after `timeoutMs`. Resolves to
 * `{ code, signal, hint }` once it has exited; `hint` says why when the namespace could not be
 * made.
 */
export async function runInOwnNetwork(file, { envName, label, nodeArgs = [], timeoutMs }) {
  const tmp = await mkdtemp(path.join(os.tmpdir(), `confab-${label}-`));
  const userns = process.getuid() === 0 ? [] : ['--user', '--map-root-user'];
  const args = [
    ...userns, '--net', '--pid', '--fork', '--kill-child', '--mount-proc', '--',
    'sh', '-c', 'ip link set lo up && exec "$@"', `${label}-netns`,
    process.execPath, ...nodeArgs, file,
  ];
  // Without NODE_TEST_CONTEXT (set by `node --test`) the inner run reports on its own, in plain
  // text, which is passed on here.
  const env = { ...process.env, [envName]: '1', TMPDIR: tmp };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn('unshare', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stdout.on('data', (d) => process.stdout.write(d));
  child.stderr.on('data', (d) => {
    stderr += d;
    process.stderr.write(d);
  });
  const exited = once(child, 'exit');
  // unshare ignores SIGTERM while it waits for its child, so it gets SIGKILL, and --kill-child
  // then kills the namespace's first process, which takes every other one in it along.
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await exited.finally(() => clearTimeout(timer));
  await rm(tmp, { recursive: true, force: true });
  // unshare's and ip's own errors start with their names.
  const hint = /^(unshare|ip|RTNETLINK)\b/m.test(stderr)
    ? ' The namespace could not be made: `unshare` needs root or unprivileged user namespaces, and `ip` (iproute2).'
    : '';
  return { code, signal, hint };
}
