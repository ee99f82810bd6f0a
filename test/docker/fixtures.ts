// Shared pieces of the Docker runtime tests: assignments, exit recorders, cleanup and
// a way to read a file inside a running container.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { validateJobSpec } from '../../src/state/spec.js';
import type { Assignment } from '../../src/state/views.js';
import { demuxDockerLog } from '../../src/worker/docker-logs.js';
import { CaptureHook } from '../../src/worker/criu-hook.js';
import { DockerRuntime } from '../../src/worker/docker-runtime.js';
import { containerName } from '../../src/worker/docker-names.js';
import type { RunKey } from '../../src/worker/runtime.js';
import { testLogger } from './engines.js';

export const uid = (): string => randomBytes(4).toString('hex');

/** A job that prints a marker once, then a count held only in the shell's memory, and appends the count to a file. */
export const COUNTING_JOB = ['sh', '-c', 'echo START; i=0; while true; do echo $i; echo $i >> /work/count.txt; i=$((i+1)); sleep 0.1; done'];

export function assignment(jobId: string, epoch: number, spec: Record<string, unknown>): Assignment {
  const parsed = validateJobSpec(spec);
  if (!parsed.ok) throw new Error(`bad test spec: ${JSON.stringify(parsed.errors)}`);
  return { jobId, epoch, spec: parsed.spec, inputs: {}, policy: { mode: 'off', intervalSeconds: null, reason: 'test' }, fromCheckpoint: null };
}

/** Records the onExit calls of one attempt. */
export class Exits {
  readonly codes: number[] = [];
  readonly onExit = (code: number): void => {
    this.codes.push(code);
  };
}

/** A runtime of a fresh node id on `docker`, with its own staging folder; `cleanup()` removes both. */
/** A node's DockerRuntime on `docker`; `pausing`: without the CRIU capture hook, as a node that is not root checkpoints. */
export async function testRuntime(docker: Docker, nodeId = `test-${uid()}`, opts: { pausing?: boolean; logger?: Logger } = {}): Promise<{ runtime: DockerRuntime; nodeId: string; stagingDir: string; cleanup: () => Promise<void> }> {
  const stagingDir = await mkdtemp(join(tmpdir(), 'workrs-staging-'));
  const logger = opts.logger ?? testLogger;
  const captureHook = opts.pausing ? new CaptureHook(logger, () => Promise.resolve(false)) : undefined;
  const runtime = new DockerRuntime({ docker, nodeId, stagingDir, logger, ...(captureHook ? { captureHook } : {}) });
  return {
    runtime,
    nodeId,
    stagingDir,
    cleanup: async () => {
      runtime.detach();
      await removeNodeContainers(docker, nodeId);
      await rm(stagingDir, { recursive: true, force: true });
    },
  };
}

export async function removeNodeContainers(docker: Docker, nodeId: string): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`workrs.node=${nodeId}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
}

export function containerOf(docker: Docker, key: RunKey): Docker.Container {
  return docker.getContainer(containerName(key));
}

/** Runs a command in a running container; its stdout, or an error with its stderr. */
export async function execIn(docker: Docker, key: RunKey, cmd: string[]): Promise<string> {
  const exec = await containerOf(docker, key).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const { stdout, stderr } = demuxDockerLog(Buffer.concat(chunks));
  const { ExitCode } = await exec.inspect();
  if (ExitCode !== 0) throw new Error(`${cmd.join(' ')} exited with ${ExitCode}: ${stderr.toString()}`);
  return stdout.toString();
}

/** The lines of a log that are numbers, as numbers. */
export function numbersIn(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

export function isContiguousFrom(values: readonly number[], first: number): boolean {
  return values.every((v, i) => v === first + i);
}

/** Counts 0..n-1 (one line to the log and one to /work/count.txt each 0.1 s), then prints the file and exits with `exitCode`. */
export function countingJob(n: number, exitCode: number): string[] {
  return ['sh', '-c', `echo START; i=0; while [ $i -lt ${n} ]; do echo $i; echo $i >> /work/count.txt; i=$((i+1)); sleep 0.1; done; echo FILE; cat /work/count.txt; exit ${exitCode}`];
}

/** The whole log `countingJob(n)` prints when nothing is lost or repeated. */
export function countingJobLog(n: number): string {
  const lines = Array.from({ length: n }, (_, i) => `${i}\n`).join('');
  return `START\n${lines}FILE\n${lines}`;
}
