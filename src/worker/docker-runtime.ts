// The Docker implementation of ContainerRuntime: one container per attempt, labelled
// with its job, epoch and node; CRIU checkpoints exported as bundles (see
// checkpoint-bundle.ts, docker-capture.ts) and restored into a new container, on this
// engine or another (docker-restore.ts).
//
// Docker is the truth about what runs (Nomad-style): `running()` lists containers by
// label, and `adopt()` re-attaches to them after this process restarts.
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { Assignment } from '../state/views.js';
import { WORK_DIR } from '../state/spec.js';
import { systemClock, type Clock } from '../util/clock.js';
import { CaptureHook } from './criu-hook.js';
import { AttemptLogs } from './docker-attempt-logs.js';
import { exportCheckpoint } from './docker-capture.js';
import { ignoreGoneOrBusy, LABEL_SNAPSHOT, NodeContainers, stoppedByTheBox } from './docker-containers.js';
import type { DockerContext } from './docker-context.js';
import { isNotFound } from './docker-errors.js';
import { ensureImage, type ImageSource } from './docker-images.js';
import { LABEL_STANDBY, runKeyOf } from './docker-names.js';
import { restoreAttempt, type RestoreResult } from './docker-restore.js';
import { discardStandby, prepareStandby } from './docker-standby.js';
import { exportResult } from './docker-result-export.js';
import { runConfigOf } from './docker-run-config.js';
import { DEFAULT_JOB_LIMITS, type JobLimits } from './job-limits.js';
import { runKey, type CheckpointResult, type ContainerRuntime, type RunKey } from './runtime.js';
import { tarStream, type TarEntry } from './tar-pack.js';

export { EXIT_CONTAINER_LOST, LABEL_IMAGE, LABEL_SNAPSHOT } from './docker-containers.js';
export type { RestoreResult } from './docker-restore.js';
export type { CheckpointResult } from './runtime.js';

export interface DockerRuntimeOptions {
  docker: Docker;
  /** This node's id: every container it starts carries it as label workrs.node. */
  nodeId: string;
  /**
   * The node's cluster: its containers carry it, and only containers with it are the
   * node's, so two clusters with the same node ids can share an engine (a demo next
   * to a real node). Without it, the node id alone decides (tests of the runtime).
   */
  clusterId?: string;
  /** Folder for the checkpoint bundles this runtime exports; created when needed. */
  stagingDir: string;
  logger: Logger;
  /** Where a job's image comes from when the engine lacks it (the cluster's imported images). */
  images?: ImageSource;
  /** What one job may consume (job-limits.ts); DEFAULT_JOB_LIMITS when not given. */
  limits?: JobLimits;
  /** Time for durations and retry waits. Default: the system clock. */
  clock?: Clock;
  /**
   * How checkpoints capture the files of the instant: the CRIU capture hook, installed
   * on first use when this process is root (criu-hook.ts). A hook that never installs
   * (`new CaptureHook(log, async () => false)`) makes every checkpoint pause the job.
   */
  captureHook?: CaptureHook;
}

export class DockerRuntime implements ContainerRuntime {
  readonly kind = 'docker' as const;
  private readonly ctx: DockerContext;
  private readonly docker: Docker;
  private readonly containers: NodeContainers;
  private readonly log: Logger;

  constructor(opts: DockerRuntimeOptions) {
    if (opts.nodeId === '') throw new Error('DockerRuntime needs a node id');
    const limits = opts.limits ?? DEFAULT_JOB_LIMITS;
    const clock = opts.clock ?? systemClock;
    const log = opts.logger.child({ component: 'docker-runtime', node: opts.nodeId });
    const containers = new NodeContainers(opts.docker, opts.nodeId, opts.clusterId, limits, clock, log);
    this.ctx = {
      docker: opts.docker,
      nodeId: opts.nodeId,
      clusterId: opts.clusterId,
      stagingDir: opts.stagingDir,
      images: opts.images,
      limits,
      log,
      clock,
      containers,
      logs: new AttemptLogs(containers, opts.stagingDir, limits),
      frozen: new Set(),
      capturing: new Set(),
      runningInCapture: new Set(),
      restoreCleanups: new Map(),
      pagesByReference: { usable: true },
      standbys: new Map(),
      captureHook: opts.captureHook ?? new CaptureHook(log),
    };
    this.docker = opts.docker;
    this.containers = containers;
    this.log = log;
    containers.onStoppedByTheBox = (key, info) => this.removeAttempt(key, info);
  }

  // ---- running jobs -------------------------------------------------------------

  async start(a: Assignment, onExit: (exitCode: number) => void, files?: ReadonlyMap<string, string>): Promise<void> {
    const key = { jobId: a.jobId, epoch: a.epoch };
    const existing = await this.containers.inspect(key);
    if (existing !== null) {
      if (existing.State.Status !== 'created') {
        // Running: keep it. Exited: this attempt already ran, report its exit, never run it twice.
        this.log.info({ job: key.jobId, epoch: key.epoch, state: existing.State.Status }, 'the container of this attempt exists already; watching it');
        this.containers.watch(key, existing.Id, onExit);
        return;
      }
      // Created but never started (we died in between): nothing ran, start over.
      await this.containers.remove(existing.Id);
    }
    const run = runConfigOf(a.spec, this.ctx.limits);
    await ensureImage(this.docker, run.baseImage, this.ctx.images, this.log, this.ctx.clock);
    let container: Docker.Container;
    try {
      container = await this.containers.create(key, run.baseImage, run);
    } catch (err) {
      throw new Error(`cannot create the container of job ${key.jobId} epoch ${key.epoch} from image ${run.baseImage}`, { cause: err });
    }
    try {
      if (files !== undefined && files.size > 0) await this.putInputs(container, files);
      await container.start();
    } catch (err) {
      await this.containers.remove(container.id).catch((rmErr: unknown) => this.log.error({ err: rmErr, container: container.id }, 'cannot remove a container that failed to start'));
      throw new Error(`cannot start job ${key.jobId} epoch ${key.epoch}`, { cause: err });
    }
    this.log.info({ job: key.jobId, epoch: key.epoch, container: container.id.slice(0, 12) }, 'started');
    this.containers.watch(key, container.id, onExit);
  }

  async kill(key: RunKey): Promise<void> {
    const info = await this.containers.inspect(key);
    if (info === null || !info.State.Running) return;
    const container = this.docker.getContainer(info.Id);
    // Not running any more (409) or gone (404): the exit is on its way anyway.
    await ignoreGoneOrBusy(
      (async () => {
        if (info.State.Paused) await container.unpause();
        await container.kill({ signal: 'SIGKILL' });
      })(),
    );
    this.log.info({ job: key.jobId, epoch: key.epoch }, 'killed');
  }

  async freeze(key: RunKey): Promise<void> {
    const id = runKey(key);
    this.ctx.frozen.add(id);
    // Inside a capture's freeze: the checkpoint leaves it paused (docker-capture.ts).
    if (this.ctx.capturing.has(id) && !this.ctx.runningInCapture.has(id)) return;
    await this.setPaused(key, true, 'frozen (self-fencing)');
  }

  async thaw(key: RunKey): Promise<void> {
    const id = runKey(key);
    if (!this.ctx.frozen.delete(id)) return;
    if (this.ctx.capturing.has(id) && !this.ctx.runningInCapture.has(id)) return; // a checkpoint under way unpauses it itself
    await this.setPaused(key, false, 'thawed: the lease is back');
  }

  async stop(key: RunKey): Promise<void> {
    this.ctx.frozen.delete(runKey(key));
    this.containers.unwatch(key);
    const info = await this.containers.inspect(key);
    if (info === null) return;
    await this.removeAttempt(key, info);
    this.log.info({ job: key.jobId, epoch: key.epoch, container: info.Id.slice(0, 12) }, 'stopped and removed');
  }

  /** Removes the attempt's container, its log and the snapshot image it ran from. */
  private async removeAttempt(key: RunKey, info: Docker.ContainerInspectInfo): Promise<void> {
    this.ctx.frozen.delete(runKey(key));
    await this.containers.remove(info.Id);
    await this.ctx.logs.drop(key);
    const snapshot = info.Config.Labels?.[LABEL_SNAPSHOT];
    if (snapshot !== undefined) await this.containers.removeSnapshotImage(snapshot);
  }

  async running(): Promise<RunKey[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: this.containers.labelFilter(), status: ['running', 'paused'] } });
    const keys: RunKey[] = [];
    for (const c of list) {
      const key = runKeyOf(c.Labels, c.Names[0]);
      if (key === null) this.log.warn({ container: c.Id.slice(0, 12), labels: c.Labels }, 'a container of this node has malformed workrs labels; ignored');
      else keys.push(key);
    }
    return keys;
  }

  /**
   * After this process restarted: watches again every container of this node, so a
   * job survives a restart of workrs while the box stays up. Returns the running
   * attempts; an attempt whose container exited meanwhile is reported through
   * `onExit` (the state machine ignores a duplicate report); one created but never
   * started is removed, since nothing of it ran. One its box stopped meanwhile (an
   * engine restart without live-restore, a reboot: stoppedByTheBox) is removed too, not
   * reported: the worker then resumes the attempt from its newest checkpoint.
   */
  async adopt(onExit: (key: RunKey, exitCode: number) => void): Promise<RunKey[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: this.containers.labelFilter() } });
    const adopted: RunKey[] = [];
    for (const c of list) {
      const key = runKeyOf(c.Labels, c.Names[0]);
      if (key === null && c.Labels[LABEL_STANDBY] !== undefined && c.State === 'created') {
        // An unclaimed standby of the process before: this one prepares its own.
        await this.containers.remove(c.Id);
        continue;
      }
      if (key === null) {
        this.log.warn({ container: c.Id.slice(0, 12), labels: c.Labels }, 'a container of this node has malformed workrs labels; not adopted');
        continue;
      }
      if (c.State === 'created') {
        await this.containers.remove(c.Id);
        continue;
      }
      if (c.State === 'exited' || c.State === 'dead') {
        const info = await this.containers.inspect(key);
        if (info !== null && stoppedByTheBox(info.State)) {
          this.log.warn({ job: key.jobId, epoch: key.epoch, exitCode: info.State.ExitCode, finishedAt: info.State.FinishedAt }, 'this job was stopped by its box (an engine restart or a reboot), not by itself: it resumes from its newest checkpoint');
          await this.removeAttempt(key, info);
          continue;
        }
      }
      if (c.State === 'running' || c.State === 'paused') adopted.push(key);
      // Paused by a fence (or a checkpoint) of the process before: thaw() unpauses it
      // once the worker holds a lease and the attempt is still assigned here.
      if (c.State === 'paused') this.ctx.frozen.add(runKey(key));
      this.containers.watch(key, c.Id, (exitCode) => onExit(key, exitCode));
    }
    this.log.info({ running: adopted.length, containers: list.length }, 'adopted the containers of this node');
    return adopted;
  }

  /** Stops watching (onExit will not be called) and leaves the containers running: for shutdown. */
  detach(): void {
    this.containers.unwatchAll();
  }

  // ---- logs, results, checkpoints -------------------------------------------------

  /**
   * The attempt's log so far in memory: for tests and tools. Bounded as the log is
   * (rotation, and the inherited tail); the node itself only streams it.
   */
  async logBytes(key: RunKey): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.logs(key, { follow: false })) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** The attempt's output, what it inherited first; with `follow`, it ends when the container stops. */
  logs(key: RunKey, opts: { follow: boolean }): Promise<Readable> {
    return this.ctx.logs.stream(key, opts);
  }

  /**
   * Collects the exited attempt's log and declared outputs (copied out of its
   * container, which still exists) into a result archive. A container that vanished
   * leaves only the inherited log and the exit code.
   */
  exportResult(key: RunKey, exitCode: number, outputs: readonly string[], tarPath: string): Promise<{ missing: string[]; failure: string | null }> {
    return exportResult(this.ctx, key, exitCode, outputs, tarPath);
  }

  /**
   * Captures the attempt at one instant (docs/host.md): `pause` → CRIU dump leaving it
   * running → `commit` of its filesystem → `unpause`; the job is frozen only between
   * pause and unpause. Then exports a bundle to the staging folder and removes the
   * engine's copies.
   */
  checkpoint(key: RunKey, name: string): Promise<CheckpointResult> {
    return exportCheckpoint(this.ctx, key, name);
  }

  /**
   * Resumes an attempt from a bundle in a new container on this engine: loads the
   * snapshot image if missing, creates the container as the dumped one was (named and
   * labelled for the new epoch), places the CRIU images where the engine looks, and
   * starts from them. Does not throw: on failure the reason comes back and the caller
   * starts the attempt from scratch instead.
   */
  restore(a: Assignment, bundleDir: string, onExit: (exitCode: number) => void): Promise<RestoreResult> {
    return restoreAttempt(this.ctx, a, bundleDir, onExit);
  }

  /**
   * Prepares the job's takeover on this node (docker-standby.ts): a container made
   * from the bundle in `bundleDir`, not started, which a restore from that same folder
   * claims. Replaces the job's earlier standby. The folder must stay until then.
   */
  prepareStandby(jobId: string, bundleDir: string, tag: string): Promise<void> {
    return prepareStandby(this.ctx, jobId, bundleDir, tag);
  }

  /** Removes the job's standby container, if any (the folder is the caller's). */
  discardStandby(jobId: string): Promise<void> {
    return discardStandby(this.ctx, jobId);
  }

  /** Jobs with a standby container here, and the folder each was made from. */
  standbys(): Map<string, string> {
    return new Map([...this.ctx.standbys].map(([job, s]) => [job, s.bundleDir]));
  }

  // ---- helpers -----------------------------------------------------------------

  /** Pauses or unpauses the attempt's container if it is not so already; one gone (404) or stopped meanwhile (409) runs nothing either way. */
  private async setPaused(key: RunKey, paused: boolean, message: string): Promise<void> {
    const info = await this.containers.inspect(key);
    if (info === null || (paused ? !info.State.Running || info.State.Paused : !info.State.Paused)) return;
    const container = this.docker.getContainer(info.Id);
    await ignoreGoneOrBusy(
      (async () => {
        await (paused ? container.pause() : container.unpause());
        this.log.warn({ job: key.jobId, epoch: key.epoch }, message);
      })(),
    );
  }

  /** Puts the input files into /work before the start; creates /work when the image lacks it. */
  private async putInputs(container: Docker.Container, files: ReadonlyMap<string, string>): Promise<void> {
    for (const [name, path] of files) {
      if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) throw new Error(`input file name ${JSON.stringify(name)} is not a plain file name`);
      const s = await stat(path).catch((err: unknown) => {
        throw new Error(`input file ${name}: cannot read ${path}`, { cause: err });
      });
      if (!s.isFile()) throw new Error(`input file ${name}: ${path} is not a regular file`);
    }
    let workExists = true;
    try {
      // The answer is a bodiless stream; reading it to its end frees the connection.
      const head = (await container.infoArchive({ path: WORK_DIR })) as NodeJS.ReadableStream;
      head.resume();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      workExists = false;
    }
    const prefix = workExists ? '' : `${WORK_DIR.slice(1)}/`;
    const entries: TarEntry[] = workExists ? [] : [{ kind: 'dir', name: WORK_DIR.slice(1), mode: 0o755 }];
    for (const [name, path] of files) entries.push({ kind: 'file', name: `${prefix}${name}`, mode: 0o644, sourcePath: path });
    await container.putArchive(tarStream(entries), { path: workExists ? WORK_DIR : '/' });
  }
}
