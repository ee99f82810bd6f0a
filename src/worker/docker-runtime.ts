// The Docker implementation of ContainerRuntime: one container per attempt, labelled
// with its job, epoch and node; CRIU checkpoints exported as bundles (see
// checkpoint-bundle.ts) and restored into a new container, on this engine or another.
//
// Docker is the truth about what runs (Nomad-style): `running()` lists containers by
// label, and `adopt()` re-attaches to them after this process restarts.
import { createReadStream, createWriteStream } from 'node:fs';
import { cp, mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { slimSavedImage } from './slim-image.js';
import { overlayUpperDir, packLayer, unpackLayer } from './overlay-layer.js';
import { join } from 'node:path';
import { pipeline as pipelineCallback, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { Assignment } from '../state/views.js';
import { WORK_DIR } from '../state/spec.js';
import { BUNDLE_VERSION, bundlePaths, folderBytes, readBundleMeta, writeBundleMeta, type BundleMeta } from './checkpoint-bundle.js';
import { removeCheckpointLeftovers } from './ctrd-leftovers.js';
import { CHECKPOINT_NAME, createCheckpoint, deleteCheckpoint, engineCheckpointDir, listCheckpoints, startFromCheckpoint } from './docker-checkpoint.js';
import { describeError, isConflict, isNotFound } from './docker-errors.js';
import { ensureImage, hasImage, loadImage, type ImageSource } from './docker-images.js';
import { DockerLogMerger } from './docker-logs.js';
import { containerName, jobFolderName, LABEL_CLUSTER, LABEL_NODE, runKeyFromLabels, runLabels, snapshotImageRef, SNAPSHOT_REPO_PREFIX } from './docker-names.js';
import { createOptions, restoredRunConfig, runConfigOf } from './docker-run-config.js';
import { DEFAULT_JOB_LIMITS, logKeepBytes, type JobLimits } from './job-limits.js';
import { openFileHead, writeLogTail } from './log-tail.js';
import { runKey, type ContainerRuntime, type RunKey } from './runtime.js';
import { tarStream, type TarEntry } from './tar-pack.js';
import { extractTar } from '../util/tar-extract.js';
import { OutputBudget, outputArchiveName, writeResultArchive } from './result-archive.js';

/** Reported as the exit code when an attempt's container disappeared without an exit we could see. */
export const EXIT_CONTAINER_LOST = -1;

/** Label on a restored container: the snapshot image it runs from, removed with it. */
export const LABEL_SNAPSHOT = 'workrs.snapshot';
/** Label: the image the job asked for, also on a container restored from a snapshot of it. */
export const LABEL_IMAGE = 'workrs.image';

const WAIT_RETRY_MS = 1000;

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
}

export interface CheckpointResult {
  bundleDir: string;
  name: string;
  /** The whole call: capture, export to the bundle, engine-side cleanup. */
  durationMs: number;
  /** The job did not run from `docker pause` to `docker unpause`. */
  frozenMs: number;
  /** Size of the bundle's files. */
  bytes: number;
  criuBytes: number;
  imageBytes: number;
  /** Bytes of this attempt's log (stdout and stderr in order) written before the freeze. */
  logOffset: number;
}

export type RestoreResult =
  | { restored: true; durationMs: number; containerId: string; logOffset: number; leftoversRemoved: number }
  | { restored: false; reason: string };

interface Watcher {
  abort: AbortController;
}

export class DockerRuntime implements ContainerRuntime {
  readonly kind = 'docker' as const;
  private readonly docker: Docker;
  private readonly nodeId: string;
  private readonly clusterId: string | undefined;
  private readonly stagingDir: string;
  private readonly images: ImageSource | undefined;
  private readonly limits: Readonly<JobLimits>;
  private readonly log: Logger;
  private readonly watchers = new Map<string, Watcher>();
  /** Attempts frozen by self-fencing (runKey): a checkpoint neither starts nor unpauses them. */
  private readonly frozen = new Set<string>();
  /** Attempts inside capture() (paused by it, unpaused by it unless frozen meanwhile). */
  private readonly capturing = new Set<string>();
  private engine: Promise<{ rootDir: string; version: string }> | undefined;

  constructor(opts: DockerRuntimeOptions) {
    if (opts.nodeId === '') throw new Error('DockerRuntime needs a node id');
    this.docker = opts.docker;
    this.nodeId = opts.nodeId;
    this.clusterId = opts.clusterId;
    this.stagingDir = opts.stagingDir;
    this.images = opts.images;
    this.limits = opts.limits ?? DEFAULT_JOB_LIMITS;
    this.log = opts.logger.child({ component: 'docker-runtime', node: opts.nodeId });
  }

  // ---- running jobs -------------------------------------------------------------

  async start(a: Assignment, onExit: (exitCode: number) => void, files?: ReadonlyMap<string, string>): Promise<void> {
    const key = { jobId: a.jobId, epoch: a.epoch };
    const existing = await this.inspectOwn(key);
    if (existing !== null) {
      if (existing.State.Status !== 'created') {
        // Running: keep it. Exited: this attempt already ran, report its exit, never run it twice.
        this.log.info({ job: key.jobId, epoch: key.epoch, state: existing.State.Status }, 'the container of this attempt exists already; watching it');
        this.watch(key, existing.Id, onExit);
        return;
      }
      // Created but never started (we died in between): nothing ran, start over.
      await this.removeContainer(existing.Id);
    }
    const run = runConfigOf(a.spec, this.limits);
    await ensureImage(this.docker, run.baseImage, this.images, this.log);
    const labels = { ...runLabels(key, this.nodeId, this.clusterId), [LABEL_IMAGE]: run.baseImage };
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(createOptions({ name: containerName(key), image: run.baseImage, run, labels, limits: this.limits }));
    } catch (err) {
      throw new Error(`cannot create the container of job ${key.jobId} epoch ${key.epoch} from image ${run.baseImage}`, { cause: err });
    }
    try {
      if (files !== undefined && files.size > 0) await this.putInputs(container, files);
      await container.start();
    } catch (err) {
      await this.removeContainer(container.id).catch((rmErr: unknown) => this.log.error({ err: rmErr, container: container.id }, 'cannot remove a container that failed to start'));
      throw new Error(`cannot start job ${key.jobId} epoch ${key.epoch}`, { cause: err });
    }
    this.log.info({ job: key.jobId, epoch: key.epoch, container: container.id.slice(0, 12) }, 'started');
    this.watch(key, container.id, onExit);
  }

  async kill(key: RunKey): Promise<void> {
    const info = await this.inspectOwn(key);
    if (info === null || !info.State.Running) return;
    try {
      if (info.State.Paused) await this.docker.getContainer(info.Id).unpause();
      await this.docker.getContainer(info.Id).kill({ signal: 'SIGKILL' });
    } catch (err) {
      // Not running any more (409) or gone (404): the exit is on its way anyway.
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
    this.log.info({ job: key.jobId, epoch: key.epoch }, 'killed');
  }

  async freeze(key: RunKey): Promise<void> {
    const id = runKey(key);
    this.frozen.add(id);
    if (this.capturing.has(id)) return; // paused by the checkpoint, which now leaves it paused
    const info = await this.inspectOwn(key);
    if (info === null || !info.State.Running || info.State.Paused) return;
    try {
      await this.docker.getContainer(info.Id).pause();
      this.log.warn({ job: key.jobId, epoch: key.epoch }, 'frozen (self-fencing)');
    } catch (err) {
      // Gone (404) or paused/stopped meanwhile (409): nothing runs either way.
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  async thaw(key: RunKey): Promise<void> {
    const id = runKey(key);
    if (!this.frozen.delete(id) || this.capturing.has(id)) return; // a checkpoint under way unpauses it itself
    const info = await this.inspectOwn(key);
    if (info === null || !info.State.Paused) return;
    try {
      await this.docker.getContainer(info.Id).unpause();
      this.log.warn({ job: key.jobId, epoch: key.epoch }, 'thawed: the lease is back');
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  async stop(key: RunKey): Promise<void> {
    this.frozen.delete(runKey(key));
    this.unwatch(key);
    const info = await this.inspectOwn(key);
    if (info === null) return;
    await this.removeContainer(info.Id);
    this.log.info({ job: key.jobId, epoch: key.epoch, container: info.Id.slice(0, 12) }, 'stopped and removed');
    await rm(this.logPrefixPath(key), { force: true });
    const snapshot = info.Config.Labels?.[LABEL_SNAPSHOT];
    if (snapshot !== undefined) await this.removeSnapshotImage(snapshot);
  }

  async running(): Promise<RunKey[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: this.ownLabelFilter(), status: ['running', 'paused'] } });
    const keys: RunKey[] = [];
    for (const c of list) {
      const key = runKeyFromLabels(c.Labels);
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
   * started is removed, since nothing of it ran.
   */
  async adopt(onExit: (key: RunKey, exitCode: number) => void): Promise<RunKey[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: this.ownLabelFilter() } });
    const adopted: RunKey[] = [];
    for (const c of list) {
      const key = runKeyFromLabels(c.Labels);
      if (key === null) {
        this.log.warn({ container: c.Id.slice(0, 12), labels: c.Labels }, 'a container of this node has malformed workrs labels; not adopted');
        continue;
      }
      if (c.State === 'created') {
        await this.removeContainer(c.Id);
        continue;
      }
      if (c.State === 'running' || c.State === 'paused') adopted.push(key);
      // Paused by a fence (or a checkpoint) of the process before: thaw() unpauses it
      // once the worker holds a lease and the attempt is still assigned here.
      if (c.State === 'paused') this.frozen.add(runKey(key));
      this.watch(key, c.Id, (exitCode) => onExit(key, exitCode));
    }
    this.log.info({ running: adopted.length, containers: list.length }, 'adopted the containers of this node');
    return adopted;
  }

  /** Stops watching (onExit will not be called) and leaves the containers running: for shutdown. */
  detach(): void {
    for (const w of this.watchers.values()) w.abort.abort();
    this.watchers.clear();
  }

  // ---- logs --------------------------------------------------------------------

  /**
   * A resumed attempt's container only has what it wrote since the restore; what came
   * before, up to the checkpoint, is kept in this file (from the bundle's log) and
   * shown first. Each line of the job's output thus appears once.
   */
  private logPrefixPath(key: RunKey): string {
    return join(this.stagingDir, 'log-prefix', `${jobFolderName(key.jobId)}-e${key.epoch}`);
  }

  /** What the attempt inherited from its checkpoint, as a stream; null when it inherited nothing. */
  private openLogPrefix(key: RunKey): Promise<Readable | null> {
    return openFileHead(this.logPrefixPath(key));
  }

  /**
   * What a container printed (stdout and stderr merged), streamed from the engine;
   * with `follow`, until it stops. dockerode reads a whole log into one buffer unless
   * the request is a stream, so the request is made here as a stream.
   */
  private async containerLog(containerId: string, follow: boolean): Promise<Readable> {
    const raw = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
      this.docker.modem.dial(
        {
          path: `/containers/${encodeURIComponent(containerId)}/logs?`,
          method: 'GET',
          isStream: true,
          statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
          options: { stdout: true, stderr: true, follow },
        },
        (err, data) => (err ? reject(err) : resolve(data as NodeJS.ReadableStream)),
      );
    });
    const merged = new DockerLogMerger();
    // A failure reaches the reader as an error of `merged`; a reader that destroys
    // `merged` (a client gone) ends the request to the engine.
    pipelineCallback(raw, merged, () => undefined);
    return merged;
  }

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
  async logs(key: RunKey, opts: { follow: boolean }): Promise<Readable> {
    const container = await this.ownContainer(key);
    const prefix = await this.openLogPrefix(key);
    let own: Readable;
    try {
      own = await this.containerLog(container.id, opts.follow);
    } catch (err) {
      prefix?.destroy();
      throw err;
    }
    async function* inOrder(): AsyncGenerator<Buffer> {
      if (prefix !== null) yield* prefix as AsyncIterable<Buffer>;
      yield* own as AsyncIterable<Buffer>;
    }
    const out = Readable.from(inOrder(), { objectMode: false });
    // Also when the reader goes before the generator ran: nothing stays open.
    out.on('close', () => {
      prefix?.destroy();
      own.destroy();
    });
    return out;
  }

  /**
   * The attempt's log as a file, cut to the tail results and bundles keep: what it
   * inherited, then what the container printed (none when `containerId` is null: the
   * container vanished). Returns the bytes written.
   */
  private writeAttemptLog(key: RunKey, containerId: string | null, path: string): Promise<number> {
    const parts = [() => this.openLogPrefix(key), ...(containerId === null ? [] : [() => this.containerLog(containerId, false)])];
    return writeLogTail(parts, path, logKeepBytes(this.limits));
  }

  // ---- results -----------------------------------------------------------------

  /**
   * Collects the exited attempt's log and declared outputs (copied out of its
   * container, which still exists) into a result archive. A container that vanished
   * leaves only the inherited log and the exit code.
   */
  async exportResult(key: RunKey, exitCode: number, outputs: readonly string[], tarPath: string): Promise<{ missing: string[]; failure: string | null }> {
    await mkdir(this.stagingDir, { recursive: true });
    const workDir = await mkdtemp(join(this.stagingDir, `result-${jobFolderName(key.jobId)}-e${key.epoch}-`));
    let collected: { missing: string[]; failure: string | null };
    try {
      const info = await this.inspectOwn(key);
      const logPath = join(workDir, 'log');
      await this.writeAttemptLog(key, info?.Id ?? null, logPath);
      const outputsDir = join(workDir, 'outputs');
      collected = info === null ? { missing: [...outputs], failure: null } : await this.collectOutputs(key, info.Id, outputs, outputsDir);
      // Over the cap: what was collected goes, the log and exit code stay.
      if (collected.failure !== null) await rm(outputsDir, { recursive: true, force: true });
      await writeResultArchive({ tarPath, workDir, logPath, exitCode, outputsDir });
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
    if (collected.missing.length > 0) this.log.info({ job: key.jobId, epoch: key.epoch, missing: collected.missing }, 'result: declared outputs that do not exist');
    if (collected.failure !== null) this.log.warn({ job: key.jobId, epoch: key.epoch, reason: collected.failure }, 'result: the outputs exceed the cap; the attempt fails');
    return collected;
  }

  /**
   * Copies the declared outputs out of the exited container into `outputsDir`, counted
   * against the node's result cap while they stream: past it, the copy stops and the
   * reason comes back as `failure`.
   */
  private async collectOutputs(key: RunKey, containerId: string, outputs: readonly string[], outputsDir: string): Promise<{ missing: string[]; failure: string | null }> {
    const missing: string[] = [];
    const budget = new OutputBudget(this.limits.maxResultBytes);
    for (const output of outputs) {
      let archive: NodeJS.ReadableStream;
      try {
        archive = (await this.docker.getContainer(containerId).getArchive({ path: output })) as NodeJS.ReadableStream;
      } catch (err) {
        if (!isNotFound(err)) throw err;
        missing.push(output);
        continue;
      }
      // Docker names the entries from the output's last segment: put them under its path.
      const name = outputArchiveName(output);
      const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/') + 1) : '';
      const metered = budget.meter(output);
      // An error (the cap) reaches extractTar through `metered`, and ends the engine's stream.
      pipelineCallback(archive, metered, () => undefined);
      try {
        const extracted = await extractTar(metered, outputsDir, { rename: (entry) => `${parent}${entry}` });
        if (extracted.skipped.length > 0) this.log.info({ job: key.jobId, epoch: key.epoch, output, skipped: extracted.skipped.slice(0, 10) }, 'result: entries not collected');
      } catch (err) {
        metered.destroy();
        // The reader may wrap the error; the budget knows whether the cap stopped it.
        if (budget.exceeded !== null) return { missing, failure: budget.exceeded.message };
        throw err;
      }
    }
    return { missing, failure: null };
  }

  // ---- checkpoints ------------------------------------------------------------

  /**
   * Captures the attempt at one instant (HOST.md): `pause` → CRIU dump leaving it
   * running → `commit` of its filesystem → `unpause`; the job is frozen only between
   * pause and unpause. Then exports a bundle to the staging folder and removes the
   * engine's copies.
   */
  async checkpoint(key: RunKey, name: string): Promise<CheckpointResult> {
    if (!CHECKPOINT_NAME.test(name)) throw new Error(`invalid checkpoint name '${name}' (at least 2 of [a-zA-Z0-9_.-], starting with a letter or digit)`);
    const startedAt = performance.now();
    const engine = await this.engineInfo();
    const container = await this.ownContainer(key);
    const info = await container.inspect();
    if (!info.State.Running || info.State.Paused) throw new Error(`job ${key.jobId} epoch ${key.epoch} is not running (${info.State.Status}): nothing to checkpoint`);
    const bundleDir = join(this.stagingDir, jobFolderName(key.jobId), `e${key.epoch}-${name}`);
    if (await exists(bundleDir)) throw new Error(`bundle ${bundleDir} exists already: checkpoint names must not be reused within an attempt`);
    if ((await listCheckpoints(container)).includes(name)) {
      this.log.warn({ job: key.jobId, epoch: key.epoch, name }, 'removing a stale engine checkpoint of the same name');
      await deleteCheckpoint(container, name);
    }
    const ref = snapshotImageRef(key, name);
    const fields = { job: key.jobId, epoch: key.epoch, name };

    try {
      const paths = bundlePaths(bundleDir);
      await mkdir(bundleDir, { recursive: true });
      const containerLogPath = join(bundleDir, '.container-log');
      const capture = await this.capture(key, container, name, ref, containerLogPath);
      const frozenMs = capture.frozenMs;
      await cp(engineCheckpointDir(engine.rootDir, info.Id, name), paths.checkpoint, { recursive: true });
      const run = runConfigFromContainer(info);
      const saved = await this.exportFilesystem(`${ref.repo}:${ref.tag}`, run.baseImage, paths, bundleDir);
      // What the attempt inherited, then what it printed up to the freeze: its tail.
      const logOffset = await writeLogTail([() => this.openLogPrefix(key), () => openFileHead(containerLogPath)], paths.log, logKeepBytes(this.limits));
      await rm(containerLogPath, { force: true });
      const meta: BundleMeta = {
        version: BUNDLE_VERSION,
        jobId: key.jobId,
        epoch: key.epoch,
        node: this.nodeId,
        checkpointName: name,
        createdAt: capture.frozenAt,
        logOffset,
        snapshotImage: { ref: `${ref.repo}:${ref.tag}`, id: capture.snapshotId },
        run,
        dockerVersion: engine.version,
        baseLayersOmitted: saved.baseLayersOmitted,
        filesystem: saved.filesystem,
        baseDiffIds: saved.baseDiffIds,
      };
      await writeBundleMeta(bundleDir, meta);
      const criuBytes = await folderBytes(paths.checkpoint);
      const imageBytes = (await stat(saved.filesystem === 'layer' ? paths.layer : paths.image)).size;
      const bytes = await folderBytes(bundleDir);
      await this.dropEngineCopies(container, name, capture.snapshotId);
      const result = { bundleDir, name, durationMs: performance.now() - startedAt, frozenMs, bytes, criuBytes, imageBytes, logOffset: meta.logOffset };
      this.log.info({ ...fields, durationMs: Math.round(result.durationMs), frozenMs: Math.round(frozenMs), bytes }, 'checkpoint exported');
      return result;
    } catch (err) {
      await rm(bundleDir, { recursive: true, force: true });
      // Whatever got made before the failure: the dump, the snapshot image (by its tag).
      await this.dropEngineCopies(container, name, `${ref.repo}:${ref.tag}`).catch((e: unknown) => this.log.error({ ...fields, err: e }, 'cannot clean up after a failed checkpoint'));
      throw new Error(`checkpoint ${name} of job ${key.jobId} epoch ${key.epoch} failed`, { cause: err });
    }
  }

  /** The frozen part: everything between pause and unpause. */
  private async capture(
    key: RunKey,
    container: Docker.Container,
    name: string,
    ref: { repo: string; tag: string },
    logPath: string,
  ): Promise<{ snapshotId: string; frozenMs: number; frozenAt: number }> {
    const id = runKey(key);
    if (this.frozen.has(id) || this.capturing.has(id)) throw new Error(`job ${key.jobId} epoch ${key.epoch} is ${this.frozen.has(id) ? 'frozen (self-fencing)' : 'being checkpointed'}: no checkpoint now`);
    this.capturing.add(id);
    try {
      return await this.captureFrozen(id, container, name, ref, logPath);
    } finally {
      this.capturing.delete(id);
    }
  }

  private async captureFrozen(
    id: string,
    container: Docker.Container,
    name: string,
    ref: { repo: string; tag: string },
    logPath: string,
  ): Promise<{ snapshotId: string; frozenMs: number; frozenAt: number }> {
    await container.pause();
    const pausedAt = performance.now();
    const frozenAt = Date.now();
    let outcome: { snapshotId: string } | undefined;
    let failure: unknown;
    try {
      await createCheckpoint(container, name, { leaveRunning: true });
      // Both while frozen: the files and the log offset belong to the same instant as
      // the memory. The dump took long enough for the log to take in all the job wrote.
      const [commit] = await Promise.all([
        container.commit({ repo: ref.repo, tag: ref.tag, pause: false }) as Promise<{ Id?: unknown }>,
        this.containerLog(container.id, false).then((log) => pipeline(log, createWriteStream(logPath))),
      ]);
      if (typeof commit.Id !== 'string') throw new Error(`docker commit answered without an image id: ${JSON.stringify(commit)}`);
      outcome = { snapshotId: commit.Id };
    } catch (err) {
      failure = err;
    }
    try {
      // Frozen by self-fencing meanwhile: it stays paused (thaw() unpauses it later).
      if (!this.frozen.has(id)) await container.unpause();
    } catch (err) {
      // A job left paused is stuck for good: this is worth more than the first error.
      throw new Error(`cannot unpause container ${container.id.slice(0, 12)} after a checkpoint: ${describeError(err)}`, { cause: failure ?? err });
    }
    const frozenMs = performance.now() - pausedAt;
    if (outcome === undefined) throw failure;
    return { ...outcome, frozenMs, frozenAt };
  }

  /** The engine's checkpoint folder and snapshot image are in the bundle now. */
  private async dropEngineCopies(container: Docker.Container, name: string, snapshotImage: string): Promise<void> {
    try {
      await deleteCheckpoint(container, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.removeSnapshotImage(snapshotImage);
  }

  /**
   * Resumes an attempt from a bundle in a new container on this engine: loads the
   * snapshot image if missing, creates the container as the dumped one was (named and
   * labelled for the new epoch), places the CRIU images where the engine looks, and
   * starts from them. Does not throw: on failure the reason comes back and the caller
   * starts the attempt from scratch instead.
   */
  async restore(a: Assignment, bundleDir: string, onExit: (exitCode: number) => void): Promise<RestoreResult> {
    const startedAt = performance.now();
    const key = { jobId: a.jobId, epoch: a.epoch };
    const fields = { job: key.jobId, epoch: key.epoch, bundleDir };
    const paths = bundlePaths(bundleDir);
    let created: string | undefined;
    let loadedImage: string | undefined;
    let startTried = false;
    try {
      const meta = await readBundleMeta(bundleDir);
      if (meta.jobId !== key.jobId) throw new Error(`the bundle is a checkpoint of job ${meta.jobId}, not ${key.jobId}`);
      if (meta.epoch >= key.epoch) throw new Error(`the bundle comes from epoch ${meta.epoch}; it can only resume a later epoch, not ${key.epoch}`);
      const existing = await this.inspectOwn(key);
      if (existing !== null) {
        if (existing.State.Running) {
          this.log.info(fields, 'the restored container of this attempt runs already; watching it');
          this.watch(key, existing.Id, onExit);
          return { restored: true, durationMs: performance.now() - startedAt, containerId: existing.Id, logOffset: meta.logOffset, leftoversRemoved: 0 };
        }
        await this.removeContainer(existing.Id);
      }
      const run = restoredRunConfig(meta.run, this.limits);
      const engine = await this.engineInfo();
      let container: Docker.Container;
      if (meta.filesystem === 'layer') {
        // The job's image plus the dump's layer unpacked into the new container's upper directory.
        await ensureImage(this.docker, meta.run.baseImage, this.images, this.log);
        const base = (await this.docker.getImage(meta.run.baseImage).inspect()) as { RootFS?: { Layers?: string[] } };
        const here = base.RootFS?.Layers ?? [];
        if (here.length !== meta.baseDiffIds.length || here.some((id, i) => id !== meta.baseDiffIds[i])) {
          throw new Error(`image ${meta.run.baseImage} on this engine is not the one the checkpoint was taken on (its layers differ): the checkpoint's filesystem layer does not apply to it`);
        }
        const labels = { ...runLabels(key, this.nodeId, this.clusterId), [LABEL_IMAGE]: meta.run.baseImage };
        container = await this.docker.createContainer(createOptions({ name: containerName(key), image: meta.run.baseImage, run, labels, limits: this.limits }));
        created = container.id;
        const upper = overlayUpperDir(await container.inspect());
        if (upper === null) throw new Error('the bundle holds an overlay2 layer, and this engine does not use the overlay2 storage driver');
        await unpackLayer(paths.layer, upper);
      } else {
        if (await this.ensureSnapshotImage(meta, paths.image)) loadedImage = meta.snapshotImage.id;
        const labels = { ...runLabels(key, this.nodeId, this.clusterId), [LABEL_IMAGE]: meta.run.baseImage, [LABEL_SNAPSHOT]: meta.snapshotImage.id };
        container = await this.docker.createContainer(createOptions({ name: containerName(key), image: meta.snapshotImage.id, run, labels, limits: this.limits }));
        created = container.id;
      }
      const target = engineCheckpointDir(engine.rootDir, container.id, meta.checkpointName);
      await mkdir(join(target, '..'), { recursive: true });
      await cp(paths.checkpoint, target, { recursive: true });
      // The output up to the checkpoint, shown before what the restored processes write:
      // at most the tail a bundle keeps, whatever the bundle holds.
      await mkdir(join(this.logPrefixPath(key), '..'), { recursive: true });
      await writeLogTail([() => openFileHead(paths.log, meta.logOffset)], this.logPrefixPath(key), logKeepBytes(this.limits));
      startTried = true;
      await startFromCheckpoint(container, meta.checkpointName, target);
      const leftovers = await removeCheckpointLeftovers(paths.checkpoint);
      // The engine's copy of the images is not needed once the processes run.
      await deleteCheckpoint(container, meta.checkpointName).catch((err: unknown) => this.log.warn({ ...fields, err }, 'cannot delete the engine copy of a restored checkpoint'));
      this.watch(key, container.id, onExit);
      const durationMs = performance.now() - startedAt;
      this.log.info({ ...fields, container: container.id.slice(0, 12), durationMs: Math.round(durationMs) }, 'restored from checkpoint');
      return { restored: true, durationMs, containerId: container.id, logOffset: meta.logOffset, leftoversRemoved: leftovers.length };
    } catch (err) {
      const reason = describeError(err);
      this.log.warn({ ...fields, reason }, 'restore failed; the attempt must start from scratch');
      await rm(this.logPrefixPath(key), { force: true });
      if (created !== undefined) await this.removeContainer(created).catch((e: unknown) => this.log.error({ ...fields, err: e }, 'cannot remove the container of a failed restore'));
      if (loadedImage !== undefined) await this.removeSnapshotImage(loadedImage);
      if (startTried) await removeCheckpointLeftovers(paths.checkpoint).catch((e: unknown) => this.log.error({ ...fields, err: e }, "cannot remove containerd's copy of a failed restore"));
      return { restored: false, reason };
    }
  }

  /**
   * The snapshot image's filesystem into the bundle: its top layer alone (layer.tar)
   * when the engine uses overlay2 and the snapshot is the job's image plus that one
   * layer (overlay-layer.ts); otherwise `docker save` (image.tar, slimmed).
   */
  private async exportFilesystem(
    snapshotRef: string,
    baseImage: string,
    paths: ReturnType<typeof bundlePaths>,
    bundleDir: string,
  ): Promise<{ filesystem: 'layer' | 'image'; baseLayersOmitted: number; baseDiffIds: string[] }> {
    const snapshot = (await this.docker.getImage(snapshotRef).inspect()) as { RootFS?: { Layers?: string[] }; GraphDriver?: { Name?: unknown; Data?: unknown } };
    const upper = overlayUpperDir(snapshot);
    const base = await this.docker
      .getImage(baseImage)
      .inspect()
      .then((i: { RootFS?: { Layers?: string[] } }) => i.RootFS?.Layers ?? null, (err: unknown) => {
        if (isNotFound(err)) return null;
        throw err;
      });
    const layers = snapshot.RootFS?.Layers ?? [];
    const oneLayerOverBase = base !== null && layers.length === base.length + 1 && base.every((id, i) => layers[i] === id);
    if (upper !== null && oneLayerOverBase) {
      await packLayer(upper, paths.layer);
      return { filesystem: 'layer', baseLayersOmitted: base.length, baseDiffIds: base.slice() };
    }
    return { filesystem: 'image', baseLayersOmitted: await this.saveSnapshot(snapshotRef, baseImage, paths.image, bundleDir), baseDiffIds: [] };
  }

  /**
   * `docker save` of the snapshot image into `tarPath`, without the layers of the job's
   * own image when the snapshot is built on them (slim-image.ts); returns how many
   * layers it left out.
   */
  private async saveSnapshot(snapshotRef: string, baseImage: string, tarPath: string, bundleDir: string): Promise<number> {
    const fullPath = `${tarPath}.full`;
    try {
      await pipeline((await this.docker.getImage(snapshotRef).get()) as NodeJS.ReadableStream, createWriteStream(fullPath));
      let baseLayers: string[] = [];
      try {
        const base = (await this.docker.getImage(baseImage).inspect()) as { RootFS?: { Layers?: string[] } };
        baseLayers = base.RootFS?.Layers ?? [];
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (baseLayers.length === 0) {
        await rename(fullPath, tarPath);
        return 0;
      }
      return await slimSavedImage(fullPath, tarPath, baseLayers, join(bundleDir, '.image-work'));
    } finally {
      await rm(fullPath, { force: true });
    }
  }

  /** Loads the bundle's image.tar unless the engine has the snapshot image; whether it loaded. */
  private async ensureSnapshotImage(meta: BundleMeta, tarPath: string): Promise<boolean> {
    if (await hasImage(this.docker, meta.snapshotImage.id)) return false;
    // A slim image.tar leaves out the job image's layers: the engine must have them.
    if (meta.baseLayersOmitted > 0) await ensureImage(this.docker, meta.run.baseImage, this.images, this.log);
    await loadImage(this.docker, createReadStream(tarPath));
    if (!(await hasImage(this.docker, meta.snapshotImage.id))) throw new Error(`the bundle's image.tar did not provide image ${meta.snapshotImage.id}`);
    return true;
  }

  // ---- helpers -----------------------------------------------------------------

  /** Docker label filters (all must match) that select this node's containers. */
  private ownLabelFilter(): string[] {
    return [`${LABEL_NODE}=${this.nodeId}`, ...(this.clusterId === undefined ? [] : [`${LABEL_CLUSTER}=${this.clusterId}`])];
  }

  private async engineInfo(): Promise<{ rootDir: string; version: string }> {
    this.engine ??= Promise.all([this.docker.info() as Promise<{ DockerRootDir?: unknown }>, this.docker.version()]).then(([info, version]) => {
      if (typeof info.DockerRootDir !== 'string' || !info.DockerRootDir.startsWith('/')) throw new Error(`docker info reports no DockerRootDir (${String(info.DockerRootDir)})`);
      return { rootDir: info.DockerRootDir, version: version.Version };
    });
    try {
      return await this.engine;
    } catch (err) {
      this.engine = undefined;
      throw err;
    }
  }

  /** The attempt's container on this engine if it exists and belongs to this node. */
  private async inspectOwn(key: RunKey): Promise<Docker.ContainerInspectInfo | null> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(containerName(key)).inspect();
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    const labelled = runKeyFromLabels(info.Config.Labels);
    const otherCluster = this.clusterId !== undefined && info.Config.Labels?.[LABEL_CLUSTER] !== this.clusterId;
    if (labelled === null || runKey(labelled) !== runKey(key) || info.Config.Labels?.[LABEL_NODE] !== this.nodeId || otherCluster) {
      throw new Error(`container ${containerName(key)} exists but is not job ${key.jobId} epoch ${key.epoch} of node ${this.nodeId} (labels ${JSON.stringify(info.Config.Labels)})`);
    }
    return info;
  }

  private async ownContainer(key: RunKey): Promise<Docker.Container> {
    const info = await this.inspectOwn(key);
    if (info === null) throw new Error(`job ${key.jobId} epoch ${key.epoch} has no container on this engine`);
    return this.docker.getContainer(info.Id);
  }

  /** Kills (SIGKILL, also when paused) and removes; a container already gone is fine. */
  private async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true });
    } catch (err) {
      // 409: a removal is already in progress.
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  /** `image`: an id or a `workrs-snap/…` reference. */
  private async removeSnapshotImage(image: string): Promise<void> {
    if (!image.startsWith('sha256:') && !image.startsWith(SNAPSHOT_REPO_PREFIX)) throw new Error(`refusing to remove ${image}: not a snapshot image`);
    try {
      await this.docker.getImage(image).remove({ force: false, noprune: false });
    } catch (err) {
      // 409: another container still runs from it; the last one to stop removes it.
      if (isNotFound(err) || isConflict(err)) return;
      this.log.warn({ image, err }, 'cannot remove a snapshot image');
    }
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

  private watch(key: RunKey, containerId: string, onExit: (exitCode: number) => void): void {
    const id = runKey(key);
    if (this.watchers.has(id)) return;
    const watcher: Watcher = { abort: new AbortController() };
    this.watchers.set(id, watcher);
    void this.waitForExit(key, containerId, watcher.abort.signal).then((exitCode) => {
      if (this.watchers.get(id) !== watcher || exitCode === null) return;
      this.watchers.delete(id);
      onExit(exitCode);
    });
  }

  private unwatch(key: RunKey): void {
    const id = runKey(key);
    this.watchers.get(id)?.abort.abort();
    this.watchers.delete(id);
  }

  /** The exit code, or null when the watch was cancelled. Survives an engine restart. */
  private async waitForExit(key: RunKey, containerId: string, signal: AbortSignal): Promise<number | null> {
    const container = this.docker.getContainer(containerId);
    for (;;) {
      try {
        const result = (await container.wait({ condition: 'not-running', abortSignal: signal })) as { StatusCode?: unknown };
        if (signal.aborted) return null;
        if (typeof result.StatusCode !== 'number') throw new Error(`docker wait answered without a status code: ${JSON.stringify(result)}`);
        this.log.info({ job: key.jobId, epoch: key.epoch, exitCode: result.StatusCode }, 'exited');
        return result.StatusCode;
      } catch (err) {
        if (signal.aborted) return null;
        if (isNotFound(err)) {
          this.log.error({ job: key.jobId, epoch: key.epoch, container: containerId.slice(0, 12) }, 'the container vanished without an exit we could see');
          return EXIT_CONTAINER_LOST;
        }
        this.log.warn({ job: key.jobId, epoch: key.epoch, err }, 'waiting for the container to exit failed; retrying');
        await delay(WAIT_RETRY_MS, undefined, { signal }).catch(() => undefined);
      }
    }
  }
}

/** What the dumped container ran, read back from the engine (the truth), for the bundle. */
function runConfigFromContainer(info: Docker.ContainerInspectInfo): BundleMeta['run'] {
  const memory = info.HostConfig.Memory ?? 0;
  const nanoCpus = (info.HostConfig as { NanoCpus?: number }).NanoCpus ?? 0;
  return {
    baseImage: info.Config.Labels?.[LABEL_IMAGE] ?? info.Config.Image,
    cmd: info.Config.Cmd ?? [],
    env: info.Config.Env ?? [],
    workingDir: info.Config.WorkingDir || WORK_DIR,
    memoryBytes: memory > 0 ? memory : null,
    nanoCpus: nanoCpus > 0 ? nanoCpus : null,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
