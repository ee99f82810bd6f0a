// Docker engines for the tests: the machine's engine (started by `make setup`) and a
// second one on the same machine standing in for another box (HOST.md "Several boxes
// on one machine"): its own data root, exec root, socket and containerd.
//
// The second engine runs in its own network namespace. Started in the machine's, a
// dockerd with --bridge=none DELETES the host's docker0 interface at startup
// (moby removeDefaultBridgeInterface), which breaks the bridge network of the main
// engine: verified here, it made every bridged container of the main engine fail with
// "could not find bridge docker0".
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import pino from 'pino';
import { connectDocker } from '../../src/worker/docker-endpoint.js';
import { waitFor } from '../helpers/wait.js';

export const BASE_IMAGE = 'workrs/busybox:1';

/** runc finds criu through PATH, and the working CRIU wrapper lives in /usr/local/sbin. */
const DAEMON_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Engine {
  name: string;
  docker: Docker;
  socket: string;
  /** Stops the engine if this helper started it; otherwise does nothing. */
  stop(): Promise<void>;
}

const execFileP = promisify(execFile);

export const testLogger = pino({ level: process.env.WORKRS_TEST_LOG ?? 'silent' });

/** Fails (never skips) when the engine does not answer or cannot checkpoint. */
async function requireExperimental(docker: Docker, name: string): Promise<void> {
  let version: Docker.DockerVersion;
  try {
    version = await docker.version();
  } catch (err) {
    throw new Error(`engine ${name}: no Docker engine answers (run: make setup)`, { cause: err });
  }
  if ((version as { Experimental?: boolean }).Experimental !== true) {
    throw new Error(`engine ${name}: Docker ${version.Version} is not in experimental mode; checkpoint/restore needs dockerd --experimental`);
  }
}

/** The machine's engine, as `make setup` started it. */
export async function mainEngine(): Promise<Engine> {
  const docker = connectDocker();
  await requireExperimental(docker, 'main');
  return { name: 'main', docker, socket: '/var/run/docker.sock', stop: async () => {} };
}

async function answers(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readPid(pidFile: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * A second engine under `dir`, in network namespace `netns`, started unless it already
 * answers; `stop()` ends it (by its pid) and removes the namespace only if this call
 * created them. `--bridge=none`: jobs have no network anyway.
 */
export async function secondEngine(dir = '/var/lib/workrs-test-engine-b', netns = 'workrs-test-engine-b'): Promise<Engine> {
  const socket = join(dir, 'docker.sock');
  const pidFile = join(dir, 'docker.pid');
  const docker = new Docker({ socketPath: socket });
  if (await answers(docker)) {
    await requireExperimental(docker, 'B');
    return { name: 'B', docker, socket, stop: async () => {} };
  }
  await mkdir(dir, { recursive: true });
  // A pid file left by a killed dockerd stops a new one from starting.
  const stalePid = await readPid(pidFile);
  if (stalePid !== null && !alive(stalePid)) await rm(pidFile, { force: true });
  const logPath = join(dir, 'dockerd.log');
  const logFile = await open(logPath, 'a');
  const args = [
    '--experimental',
    '--data-root', join(dir, 'root'),
    '--exec-root', join(dir, 'exec'),
    '-H', `unix://${socket}`,
    '--pidfile', pidFile,
    '--bridge=none',
    '--iptables=false',
    '--ip-masq=false',
  ];
  const netnsPath = `/run/netns/${netns}`;
  const createdNetns = !existsSync(netnsPath);
  if (createdNetns) await execFileP('ip', ['netns', 'add', netns]);
  await execFileP('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  const dropNetns = async () => {
    if (createdNetns) await execFileP('ip', ['netns', 'del', netns]);
  };
  // nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups (HOST.md).
  // nsenter execs dockerd: the child's pid is dockerd's.
  const child = spawn('nsenter', [`--net=${netnsPath}`, 'dockerd', ...args], {
    env: { ...process.env, PATH: DAEMON_PATH },
    stdio: ['ignore', logFile.fd, logFile.fd],
    detached: true,
  });
  child.unref();
  await logFile.close();
  const pid = child.pid;
  if (pid === undefined) {
    await dropNetns();
    throw new Error('could not spawn dockerd for engine B');
  }
  try {
    const state = await waitFor('engine B to answer', async () => ((await answers(docker)) ? 'up' : alive(pid) ? undefined : 'exited'), 60_000, 200);
    if (state === 'exited') throw new Error('dockerd exited');
  } catch (err) {
    const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    await dropNetns();
    throw new Error(`engine B did not start; last lines of ${logPath}:\n${tail}`, { cause: err });
  }
  await requireExperimental(docker, 'B');
  return {
    name: 'B',
    docker,
    socket,
    stop: async () => {
      const containers = await docker.listContainers({ all: true });
      for (const c of containers) await docker.getContainer(c.Id).remove({ force: true });
      process.kill(pid, 'SIGTERM');
      try {
        await waitFor('engine B to stop', () => (alive(pid) ? undefined : true), 30_000, 100);
      } catch {
        process.kill(pid, 'SIGKILL');
      }
      await dropNetns();
    },
  };
}
