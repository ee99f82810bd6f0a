// Docker engines for the tests: the machine's engine (started by `make setup`) and more
// dockerd processes on the same machine standing in for other boxes (docs/host.md "Several
// boxes on one machine"): each with its own data root, exec root, socket, containerd
// and network namespace.
//
// Every extra engine runs in a network namespace of its own. Started in the machine's,
// a dockerd with --bridge=none DELETES the host's docker0 interface at startup
// (moby removeDefaultBridgeInterface), which breaks the bridge network of the main
// engine: verified here, it made every bridged container of the main engine fail with
// "could not find bridge docker0".
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
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

/** Where an extra engine lives: everything of it under `dir`, its daemon in network namespace `netns`. */
export interface EngineSpec {
  name: string;
  dir: string;
  netns: string;
  /** More dockerd flags, e.g. --live-restore. */
  args?: string[];
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

/** The pid in a dockerd pid file, if that process is still a dockerd (a stale file may name a reused pid). */
async function daemonPid(pidFile: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    return comm === 'dockerd' ? pid : null;
  } catch {
    return null;
  }
}

function enginePaths(dir: string): { socket: string; pidFile: string; logPath: string } {
  return { socket: join(dir, 'docker.sock'), pidFile: join(dir, 'docker.pid'), logPath: join(dir, 'dockerd.log') };
}

/** Removes every container of the engine, then ends its daemon (SIGTERM, SIGKILL after 30 s). */
async function endDaemon(docker: Docker, pid: number, name: string): Promise<void> {
  if (await answers(docker)) {
    for (const c of await docker.listContainers({ all: true })) await docker.getContainer(c.Id).remove({ force: true });
  }
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  try {
    await waitFor(`engine ${name} to stop`, () => (alive(pid) ? undefined : true), 30_000, 100);
  } catch {
    process.kill(pid, 'SIGKILL');
  }
}

/**
 * Starts a dockerd for `spec` and waits until it answers in experimental mode; creates
 * its network namespace when missing. `stop()` removes its containers, ends it, and
 * deletes the namespace if this call created it.
 */
export async function launch(spec: EngineSpec): Promise<Engine> {
  const { socket, pidFile, logPath } = enginePaths(spec.dir);
  const docker = new Docker({ socketPath: socket });
  await mkdir(spec.dir, { recursive: true });
  // A pid file left by a killed dockerd stops a new one from starting.
  if ((await daemonPid(pidFile)) === null) await rm(pidFile, { force: true });
  const logFile = await open(logPath, 'a');
  const args = [
    '--experimental',
    '--data-root', join(spec.dir, 'root'),
    '--exec-root', join(spec.dir, 'exec'),
    '-H', `unix://${socket}`,
    '--pidfile', pidFile,
    // Jobs run with --network none: the engine needs no bridge and no NAT.
    '--bridge=none',
    '--iptables=false',
    '--ip-masq=false',
    ...(spec.args ?? []),
  ];
  const netnsPath = `/run/netns/${spec.netns}`;
  const createdNetns = !existsSync(netnsPath);
  if (createdNetns) await execFileP('ip', ['netns', 'add', spec.netns]);
  await execFileP('ip', ['-n', spec.netns, 'link', 'set', 'lo', 'up']);
  const dropNetns = async () => {
    if (createdNetns) await execFileP('ip', ['netns', 'del', spec.netns]);
  };
  // nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups (docs/host.md).
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
    throw new Error(`could not spawn dockerd for engine ${spec.name}`);
  }
  try {
    const state = await waitFor(`engine ${spec.name} to answer`, async () => ((await answers(docker)) ? 'up' : alive(pid) ? undefined : 'exited'), 60_000, 200);
    if (state === 'exited') throw new Error('dockerd exited');
  } catch (err) {
    const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    await dropNetns();
    throw new Error(`engine ${spec.name} did not start; last lines of ${logPath}:\n${tail}`, { cause: err });
  }
  await requireExperimental(docker, spec.name);
  return {
    name: spec.name,
    docker,
    socket,
    stop: async () => {
      await endDaemon(docker, pid, spec.name);
      await dropNetns();
    },
  };
}

/**
 * A second engine under `dir`, in network namespace `netns`, started unless it already
 * answers (then shared: `stop()` does nothing). Its data root stays for the next run.
 */
export async function secondEngine(dir = '/var/lib/workrs-test-engine-b', netns = 'workrs-test-engine-b'): Promise<Engine> {
  const docker = new Docker({ socketPath: enginePaths(dir).socket });
  if (await answers(docker)) {
    await requireExperimental(docker, 'B');
    return { name: 'B', docker, socket: enginePaths(dir).socket, stop: async () => {} };
  }
  return launch({ name: 'B', dir, netns });
}

/**
 * Ends whatever engine runs under `spec.dir` (e.g. left by a killed run: its
 * containers are removed first) and deletes the folder, unmounting what a crashed
 * daemon left mounted there. Does not touch the network namespace.
 */
export async function removeEngineAt(spec: EngineSpec): Promise<void> {
  const { socket, pidFile } = enginePaths(spec.dir);
  const pid = await daemonPid(pidFile);
  if (pid !== null) await endDaemon(new Docker({ socketPath: socket }), pid, spec.name);
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const m of mounts.filter((m) => m.startsWith(`${spec.dir}/`)).reverse()) await execFileP('umount', ['-l', m]);
  await rm(spec.dir, { recursive: true, force: true });
}

/**
 * One fresh engine per box, started in parallel (a dockerd takes seconds to start),
 * each with BASE_IMAGE copied from `source`. A leftover engine at the same place is
 * removed first. `stop()` of each removes its containers, ends it and deletes its
 * folder: nothing keeps running.
 */
export async function boxEngines(specs: EngineSpec[], source: Docker): Promise<Engine[]> {
  await Promise.all(specs.map(removeEngineAt));
  const started = await Promise.allSettled(
    specs.map(async (spec): Promise<Engine> => {
      const e = await launch(spec);
      const stop = async (): Promise<void> => {
        await e.stop();
        await removeEngineAt(spec);
      };
      return { ...e, stop };
    }),
  );
  const engines = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    await Promise.all(engines.map((e) => e.stop()));
    throw failure.reason;
  }
  await Promise.all(engines.map((e) => copyImage(source, e.docker, BASE_IMAGE)));
  return engines;
}

/** `docker save | docker load` from one engine to another (the image keeps its ID). */
export async function copyImage(from: Docker, to: Docker, ref: string): Promise<void> {
  const saved = await from.getImage(ref).get();
  const loading = await to.loadImage(saved, { quiet: true });
  await new Promise<void>((resolve, reject) => {
    loading.on('error', reject);
    loading.on('end', resolve);
    loading.resume();
  });
  const [a, b] = await Promise.all([from.getImage(ref).inspect(), to.getImage(ref).inspect()]);
  if (a.Id !== b.Id) throw new Error(`copying ${ref}: the target engine has ${b.Id}, not ${a.Id}`);
}

/** Pids of the processes whose command line names `dir`: an engine's dockerd, containerd and shims. */
async function processesUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').some((arg) => arg === dir || arg.startsWith(`${dir}/`) || arg.includes(`=${dir}/`))) pids.push(pid);
  }
  return pids;
}

/**
 * The engine under `spec.dir` crashes as a box sees it. `daemon`: dockerd killed -9
 * (its containerd ends with it); the containers' shims and processes live on, and a
 * new dockerd restores or stops them. `box`: a power loss: every process of the
 * engine and of its containers killed -9 at once, and its exec root, which is on
 * /run (a tmpfs) on a real box, emptied.
 */
export async function crashEngine(spec: EngineSpec, how: 'daemon' | 'box'): Promise<void> {
  const { socket, pidFile } = enginePaths(spec.dir);
  const daemon = await daemonPid(pidFile);
  const victims = daemon === null ? [] : [daemon];
  if (how === 'daemon') {
    // Its containerd ends with it (a parent-death signal); a new dockerd that finds the
    // old one still going times out waiting for its own.
    for (const pid of await processesUnder(spec.dir)) {
      if ((await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'containerd') victims.push(pid);
    }
  } else {
    const docker = new Docker({ socketPath: socket });
    if (await answers(docker)) {
      for (const c of await docker.listContainers()) {
        const pid = (await docker.getContainer(c.Id).inspect()).State.Pid;
        if (pid > 0) victims.push(pid);
      }
    }
    victims.push(...(await processesUnder(spec.dir)));
  }
  for (const pid of new Set(victims)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await waitFor(`engine ${spec.name} to be gone`, () => (victims.some(alive) ? undefined : true), 30_000, 50);
  if (how === 'box') {
    const exec = join(spec.dir, 'exec');
    const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
    for (const m of mounts.filter((m) => m === exec || m.startsWith(`${exec}/`)).reverse()) await execFileP('umount', ['-l', m]);
    await rm(exec, { recursive: true, force: true });
  }
}
