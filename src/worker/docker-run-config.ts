// How a job's spec becomes a Docker container: the same function builds the container
// of a fresh start and the one a checkpoint is restored into, so the two cannot drift
// apart (CRIU restores into a container configured like the dumped one).
import type Docker from 'dockerode';
import { WORK_DIR, type JobSpec } from '../state/spec.js';
import type { RunConfig } from './checkpoint-bundle.js';
import { DEFAULT_JOB_LIMITS, type JobLimits } from './job-limits.js';

/**
 * Capabilities a job keeps; Docker's default set minus raw sockets, mknod, chroot,
 * setfcap, setpcap, net_bind_service and audit_write, which a batch job has no use for
 * (and it has no network anyway).
 */
export const JOB_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID'] as const;

const MIB = 1024 * 1024;

/** The container settings of a spec on this node: its own limits, else the node's defaults. */
export function runConfigOf(spec: JobSpec, limits: Pick<JobLimits, 'defaultMemoryMB' | 'defaultCpus'> = DEFAULT_JOB_LIMITS): RunConfig {
  return {
    baseImage: spec.image,
    cmd: spec.command.slice(),
    env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    workingDir: WORK_DIR,
    memoryBytes: Math.round((spec.memoryMB ?? limits.defaultMemoryMB) * MIB),
    nanoCpus: Math.round((spec.cpus ?? limits.defaultCpus) * 1e9),
  };
}

/**
 * The settings a checkpoint bundle brings, as this node runs them: a limit the bundle
 * lacks becomes the node's default; a limit above the node's maximum is refused with
 * the reason (the node never runs a container above its maximum).
 */
export function restoredRunConfig(run: RunConfig, limits: Pick<JobLimits, 'defaultMemoryMB' | 'defaultCpus' | 'maxMemoryMB' | 'maxCpus'>): RunConfig {
  const memoryBytes = run.memoryBytes ?? Math.round(limits.defaultMemoryMB * MIB);
  const nanoCpus = run.nanoCpus ?? Math.round(limits.defaultCpus * 1e9);
  if (memoryBytes > limits.maxMemoryMB * MIB) {
    throw new Error(`the checkpoint's container had ${Math.round(memoryBytes / MIB)} MB of memory, more than this node's maximum of ${limits.maxMemoryMB} MB per job`);
  }
  if (nanoCpus > Math.round(limits.maxCpus * 1e9)) {
    throw new Error(`the checkpoint's container had ${nanoCpus / 1e9} CPUs, more than this node's maximum of ${limits.maxCpus} per job`);
  }
  return { ...run, cmd: run.cmd.slice(), env: run.env.slice(), memoryBytes, nanoCpus };
}

/** Options of `docker create` for one attempt; `image` is the base image or a snapshot. */
export function createOptions(opts: {
  name: string;
  image: string;
  run: RunConfig;
  labels: Record<string, string>;
  limits?: Pick<JobLimits, 'pidsLimit' | 'logFileMB' | 'logFiles'>;
}): Docker.ContainerCreateOptions {
  const { run } = opts;
  const limits = opts.limits ?? DEFAULT_JOB_LIMITS;
  return {
    name: opts.name,
    Image: opts.image,
    Cmd: run.cmd.slice(),
    Env: run.env.slice(),
    WorkingDir: run.workingDir,
    Labels: { ...opts.labels },
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    HostConfig: {
      NetworkMode: 'none',
      Privileged: false,
      CapDrop: ['ALL'],
      CapAdd: [...JOB_CAPABILITIES],
      SecurityOpt: ['no-new-privileges'],
      // Stops a fork bomb from taking the box.
      PidsLimit: limits.pidsLimit,
      // No swap: the limit is the job's memory. 0 means unlimited to Docker.
      Memory: run.memoryBytes ?? 0,
      MemorySwap: run.memoryBytes ?? 0,
      NanoCpus: run.nanoCpus ?? 0,
      // Logs are read back through the API: json-file whatever the engine's default
      // driver, rotated so a job that prints without end cannot fill the disk. A
      // checkpoint's log offset counts the bytes its bundle keeps, not a position in
      // these files, so rotation does not move it.
      LogConfig: { Type: 'json-file', Config: { 'max-size': `${limits.logFileMB}m`, 'max-file': String(limits.logFiles) } },
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    },
  };
}
