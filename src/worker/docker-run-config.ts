// How a job's spec becomes a Docker container: the same function builds the container
// of a fresh start and the one a checkpoint is restored into, so the two cannot drift
// apart (CRIU restores into a container configured like the dumped one).
import type Docker from 'dockerode';
import { WORK_DIR, type JobSpec } from '../state/spec.js';
import type { RunConfig } from './checkpoint-bundle.js';

/**
 * Capabilities a job keeps; Docker's default set minus raw sockets, mknod, chroot,
 * setfcap, setpcap, net_bind_service and audit_write, which a batch job has no use for
 * (and it has no network anyway).
 */
export const JOB_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID'] as const;

/** Enough for any reasonable job; stops a fork bomb from taking the box. */
export const JOB_PIDS_LIMIT = 4096;

const MIB = 1024 * 1024;

export function runConfigOf(spec: JobSpec): RunConfig {
  return {
    baseImage: spec.image,
    cmd: spec.command.slice(),
    env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    workingDir: WORK_DIR,
    memoryBytes: spec.memoryMB === null ? null : Math.round(spec.memoryMB * MIB),
    nanoCpus: spec.cpus === null ? null : Math.round(spec.cpus * 1e9),
  };
}

/** Options of `docker create` for one attempt; `image` is the base image or a snapshot. */
export function createOptions(opts: { name: string; image: string; run: RunConfig; labels: Record<string, string> }): Docker.ContainerCreateOptions {
  const { run } = opts;
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
      PidsLimit: JOB_PIDS_LIMIT,
      // No swap: the limit is the job's memory. 0 means unlimited to Docker.
      Memory: run.memoryBytes ?? 0,
      MemorySwap: run.memoryBytes ?? 0,
      NanoCpus: run.nanoCpus ?? 0,
      // Logs are read back through the API (output, checkpoint offsets): json-file
      // whatever the engine's default driver, and never rotated, so offsets stay valid.
      LogConfig: { Type: 'json-file', Config: {} },
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    },
  };
}
