// This node's containers on the Docker engine: found by name and checked by label (a
// container of another node or cluster is never touched), removed, and watched until
// they exit; their logs streamed; and the engine facts a checkpoint needs.
import { pipeline as pipelineCallback, type Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../util/clock.js';
import type { RunConfig } from './checkpoint-bundle.js';
import { isConflict, isNotFound } from './docker-errors.js';
import { DockerLogMerger } from './docker-logs.js';
import { containerName, LABEL_CLUSTER, LABEL_JOB, LABEL_NODE, LABEL_STANDBY, runKeyOf, runLabels, SNAPSHOT_REPO_PREFIX, standbyName } from './docker-names.js';
import { createOptions } from './docker-run-config.js';
import type { JobLimits } from './job-limits.js';
import { runKey, type RunKey } from './runtime.js';

/** Reported as the exit code when an attempt's container disappeared without an exit we could see. */
export const EXIT_CONTAINER_LOST = -1;

/**
 * Exit codes of a container its box stopped rather than its job: SIGKILL (137) and
 * SIGTERM (143) sent by an engine shutting down or restoring after a crash without
 * live-restore, and 255 of a container the engine found gone (the box rebooted).
 */
const BOX_STOP_EXIT_CODES = new Set([137, 143, 255]);

/**
 * Whether a container that exited while this node could not watch it (workrs was
 * down, or the engine did not answer) was stopped by its box, not by its job: the
 * attempt then resumes from its newest checkpoint instead of failing with that code.
 * A job killed by the kernel for memory (OOMKilled) is the job's own end. A job that
 * kills itself with SIGKILL or SIGTERM while unwatched is taken for a stop too: it
 * resumes and, watched this time, its exit is reported.
 */
export function stoppedByTheBox(state: { Running?: boolean; Paused?: boolean; OOMKilled?: boolean; ExitCode?: number }): boolean {
  return state.Running !== true && state.OOMKilled !== true && typeof state.ExitCode === 'number' && BOX_STOP_EXIT_CODES.has(state.ExitCode);
}

/** Label on a restored container: the snapshot image it runs from, removed with it. */
export const LABEL_SNAPSHOT = 'workrs.snapshot';
/** Label: the image the job asked for, also on a container restored from a snapshot of it. */
export const LABEL_IMAGE = 'workrs.image';

const WAIT_RETRY_MS = 1000;
/**
 * While a container is watched, the engine is asked this often whether it answers. A
 * `docker wait` under way when dockerd dies never ends (the engine's connection
 * closes without an answer or an error reaching the caller: seen here), so a ping
 * that fails is what ends the waits, and tells that the engine was down meanwhile.
 */
const ENGINE_PING_MS = 1000;
const ENGINE_PING_TIMEOUT_MS = 5000;

export class NodeContainers {
  private readonly watchers = new Map<string, AbortController>();
  /**
   * Called instead of the watch's onExit for a container its box stopped while the
   * engine did not answer (an engine restart under this process): see stoppedByTheBox.
   */
  onStoppedByTheBox: ((key: RunKey, info: Docker.ContainerInspectInfo) => Promise<void>) | null = null;
  /** The `docker wait` requests under way, each ended when a ping finds the engine down. */
  private readonly waits = new Set<AbortController>();
  /** How many pings found the engine not answering. */
  private engineDowns = 0;
  private pinger: Timer | null = null;
  private engine: Promise<{ rootDir: string; version: string }> | undefined;

  constructor(
    readonly docker: Docker,
    private readonly nodeId: string,
    private readonly clusterId: string | undefined,
    private readonly limits: Readonly<JobLimits>,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Docker label filters (all must match) that select this node's containers. */
  labelFilter(): string[] {
    return [`${LABEL_NODE}=${this.nodeId}`, ...(this.clusterId === undefined ? [] : [`${LABEL_CLUSTER}=${this.clusterId}`])];
  }

  /**
   * Creates the attempt's container from `image`: the job's own image (`run.baseImage`),
   * or a snapshot image of it, which its label then names so that it goes with the container.
   */
  create(key: RunKey, image: string, run: RunConfig, opts: { snapshot?: boolean } = {}): Promise<Docker.Container> {
    const labels = { ...runLabels(key, this.nodeId, this.clusterId), [LABEL_IMAGE]: run.baseImage, ...(opts.snapshot === true ? { [LABEL_SNAPSHOT]: image } : {}) };
    return this.docker.createContainer(createOptions({ name: containerName(key), image, run, labels, limits: this.limits }));
  }

  /**
   * A standby container of the job (docker-standby.ts): made as a restore makes the
   * attempt's container, labelled with the job and `tag` (its checkpoint) and no epoch.
   */
  createStandby(jobId: string, tag: string, image: string, run: RunConfig, opts: { snapshot?: boolean } = {}): Promise<Docker.Container> {
    const labels = {
      [LABEL_JOB]: jobId,
      [LABEL_STANDBY]: tag,
      [LABEL_NODE]: this.nodeId,
      ...(this.clusterId === undefined ? {} : { [LABEL_CLUSTER]: this.clusterId }),
      [LABEL_IMAGE]: run.baseImage,
      ...(opts.snapshot === true ? { [LABEL_SNAPSHOT]: image } : {}),
    };
    return this.docker.createContainer(createOptions({ name: standbyName(jobId), image, run, labels, limits: this.limits }));
  }

  /** A standby container becomes the attempt's: renamed to its name, which carries the epoch (docker-names.ts runKeyOf). */
  async claim(containerId: string, key: RunKey): Promise<void> {
    await this.docker.getContainer(containerId).rename({ name: containerName(key) });
  }

  /** The attempt's container on this engine if it exists and belongs to this node. */
  async inspect(key: RunKey): Promise<Docker.ContainerInspectInfo | null> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(containerName(key)).inspect();
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    const labelled = runKeyOf(info.Config.Labels, info.Name);
    const otherCluster = this.clusterId !== undefined && info.Config.Labels?.[LABEL_CLUSTER] !== this.clusterId;
    if (labelled === null || runKey(labelled) !== runKey(key) || info.Config.Labels?.[LABEL_NODE] !== this.nodeId || otherCluster) {
      throw new Error(`container ${containerName(key)} exists but is not job ${key.jobId} epoch ${key.epoch} of node ${this.nodeId} (labels ${JSON.stringify(info.Config.Labels)})`);
    }
    return info;
  }

  async get(key: RunKey): Promise<Docker.Container> {
    const info = await this.inspect(key);
    if (info === null) throw new Error(`job ${key.jobId} epoch ${key.epoch} has no container on this engine`);
    return this.docker.getContainer(info.Id);
  }

  /** Kills (SIGKILL, also when paused) and removes; a container already gone, or being removed (409), is fine. */
  async remove(id: string): Promise<void> {
    await ignoreGoneOrBusy(this.docker.getContainer(id).remove({ force: true }));
  }

  /** `image`: an id or a `workrs-snap/…` reference. */
  async removeSnapshotImage(image: string): Promise<void> {
    if (!image.startsWith('sha256:') && !image.startsWith(SNAPSHOT_REPO_PREFIX)) throw new Error(`refusing to remove ${image}: not a snapshot image`);
    try {
      await this.docker.getImage(image).remove({ force: false, noprune: false });
    } catch (err) {
      // 409: another container still runs from it; the last one to stop removes it.
      if (isNotFound(err) || isConflict(err)) return;
      this.log.warn({ image, err }, 'cannot remove a snapshot image');
    }
  }

  async engineInfo(): Promise<{ rootDir: string; version: string }> {
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

  /**
   * What a container printed (stdout and stderr merged), streamed from the engine;
   * with `follow`, until it stops. dockerode reads a whole log into one buffer unless
   * the request is a stream, so the request is made here as a stream. `sinceMs`: only
   * the lines the engine logged from then on (ms since the epoch).
   */
  async output(containerId: string, follow: boolean, sinceMs?: number): Promise<Readable> {
    const raw = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
      this.docker.modem.dial(
        {
          path: `/containers/${encodeURIComponent(containerId)}/logs?`,
          method: 'GET',
          isStream: true,
          statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
          // `since` as seconds.fraction: the engine reads the digits after the point as a fraction of a second.
          options: { stdout: true, stderr: true, follow, ...(sinceMs === undefined ? {} : { since: (sinceMs / 1000).toFixed(3) }) },
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

  // ---- exits ----

  /**
   * Calls `onExit` once when the attempt's container stops; a second watch of the same
   * attempt is ignored. A stop by the box (the engine restarted meanwhile) goes to
   * onStoppedByTheBox instead, when set.
   */
  watch(key: RunKey, containerId: string, onExit: (exitCode: number) => void): void {
    const id = runKey(key);
    if (this.watchers.has(id)) return;
    const abort = new AbortController();
    this.watchers.set(id, abort);
    void this.waitForExit(key, containerId, abort.signal).then(async (exit) => {
      if (this.watchers.get(id) !== abort || exit === null) return;
      this.watchers.delete(id);
      const handler = this.onStoppedByTheBox;
      if (exit.engineWasDown && handler !== null) {
        const info = await this.inspect(key).catch((err: unknown) => {
          this.log.warn({ job: key.jobId, epoch: key.epoch, err }, 'cannot inspect an exited container; taking its exit as the job\'s');
          return null;
        });
        if (info !== null && stoppedByTheBox(info.State)) {
          this.log.warn({ job: key.jobId, epoch: key.epoch, exitCode: exit.code }, 'the engine restarted and stopped this job: it resumes from its newest checkpoint');
          await handler(key, info).catch((err: unknown) => this.log.error({ job: key.jobId, epoch: key.epoch, err }, 'cannot remove a container its box stopped'));
          return;
        }
      }
      onExit(exit.code);
    });
  }

  unwatch(key: RunKey): void {
    const id = runKey(key);
    this.watchers.get(id)?.abort();
    this.watchers.delete(id);
  }

  /** Stops every watch (no onExit call follows). */
  unwatchAll(): void {
    for (const abort of this.watchers.values()) abort.abort();
    this.watchers.clear();
    this.pinger?.cancel();
    this.pinger = null;
  }

  /**
   * The exit code, or null when the watch was cancelled. Survives an engine restart:
   * `engineWasDown` tells that the engine failed to answer at least once meanwhile.
   */
  private async waitForExit(key: RunKey, containerId: string, signal: AbortSignal): Promise<{ code: number; engineWasDown: boolean } | null> {
    const container = this.docker.getContainer(containerId);
    const downsBefore = this.engineDowns;
    let engineWasDown = false;
    for (;;) {
      const request = new AbortController();
      const cancel = (): void => request.abort();
      signal.addEventListener('abort', cancel);
      this.waits.add(request);
      this.watchEngine();
      try {
        const result = (await untilAborted(container.wait({ condition: 'not-running', abortSignal: request.signal }), request.signal)) as { StatusCode?: unknown };
        if (signal.aborted) return null;
        if (typeof result.StatusCode !== 'number') throw new Error(`docker wait answered without a status code: ${JSON.stringify(result)}`);
        this.log.info({ job: key.jobId, epoch: key.epoch, exitCode: result.StatusCode }, 'exited');
        return { code: result.StatusCode, engineWasDown: engineWasDown || this.engineDowns !== downsBefore };
      } catch (err) {
        if (signal.aborted) return null;
        if (isNotFound(err)) {
          this.log.error({ job: key.jobId, epoch: key.epoch, container: containerId.slice(0, 12) }, 'the container vanished without an exit we could see');
          return { code: EXIT_CONTAINER_LOST, engineWasDown };
        }
        engineWasDown = true;
        if (request.signal.aborted) this.log.warn({ job: key.jobId, epoch: key.epoch }, 'the engine does not answer; waiting for it to come back');
        else this.log.warn({ job: key.jobId, epoch: key.epoch, err }, 'waiting for the container to exit failed; retrying');
        await this.clock.sleep(WAIT_RETRY_MS, signal).catch(() => undefined);
      } finally {
        this.waits.delete(request);
        signal.removeEventListener('abort', cancel);
      }
    }
  }

  /** Pings the engine every ENGINE_PING_MS while a wait is under way; a failed ping ends every wait. */
  private watchEngine(): void {
    if (this.pinger !== null) return;
    const tick = async (): Promise<void> => {
      if (this.waits.size === 0) {
        this.pinger = null;
        return;
      }
      try {
        // dockerode takes the signal; its types do not say so.
        const ping = this.docker.ping.bind(this.docker) as unknown as (opts: { abortSignal: AbortSignal }) => Promise<unknown>;
        await ping({ abortSignal: AbortSignal.timeout(ENGINE_PING_TIMEOUT_MS) });
      } catch {
        this.engineDowns += 1;
        for (const request of this.waits) request.abort();
      }
      if (this.pinger !== null) this.pinger = this.clock.after(ENGINE_PING_MS, () => void tick()).unref();
    };
    this.pinger = this.clock.after(ENGINE_PING_MS, () => void tick()).unref();
  }
}

/**
 * `promise`, or a rejection once `signal` aborts: a dockerode request whose engine
 * died under it settles never, its abort signal notwithstanding (seen here with
 * `docker wait`), and is left behind.
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Waits for a container operation; gone (404) or in a state that makes it moot (409) is fine. */
export async function ignoreGoneOrBusy(operation: Promise<unknown>): Promise<void> {
  try {
    await operation;
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}
