// Takeovers prepared ahead (the Docker runtime's standby containers, docker-standby.ts).
//
// For each job running on another node whose newest committed checkpoint this node
// holds a replica of, the node unpacks that checkpoint into a folder of its own and has
// the runtime make a container from it, not started. The scheduler puts a job whose box
// was lost on a holder of its checkpoint first (scheduler/plan.ts), so when it lands
// here the restore finds the folder unpacked and the container made, and only the
// engine's start from the CRIU images remains.
//
// One preparation at a time, at most `max` standbys kept (the oldest jobs first); a new
// checkpoint of the job replaces its standby. A preparation that failed is not tried
// again for the same checkpoint. What a standby costs is disk: the checkpoint unpacked
// once more, and its filesystem layer in the container.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ReplicatedBlobs } from '../blobs/replicated.js';
import type { ClusterState } from '../state/machine.js';
import type { Assignment } from '../state/views.js';
import { jobFolderName } from '../worker/docker-names.js';

export interface StandbyRuntime {
  prepareStandby(jobId: string, bundleDir: string, tag: string): Promise<void>;
  discardStandby(jobId: string): Promise<void>;
}

export interface StandbyRestoresOptions {
  nodeId: string;
  runtime: StandbyRuntime;
  blobs: Pick<ReplicatedBlobs, 'exportFolder'>;
  state: () => ClusterState;
  /** Where the unpacked checkpoints go (folders named standby-*; leftovers of an earlier run are removed at start). */
  stagingDir: string;
  /** Most standbys kept at once; 0 turns them off. */
  max: number;
  random: () => number;
  logger: Logger;
  /** Told of each preparation's outcome and duration. */
  onPrepared?: (outcome: 'ready' | 'failed', ms: number) => void;
  monotonic: () => number;
}

interface Entry {
  blob: string;
  dir: string;
  /** Settles true once the standby is ready, false if it failed (its folder is then gone). */
  done: Promise<boolean>;
  ready: boolean;
}

const FOLDER_PREFIX = 'standby-';

export class StandbyRestores {
  private readonly entries = new Map<string, Entry>();
  /** Job → the checkpoint blob whose preparation failed: not tried again. */
  private readonly failed = new Map<string, string>();
  private loop: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(private readonly opts: StandbyRestoresOptions) {}

  /** Removes the folders an earlier run of the node left (its containers go in the runtime's adopt). */
  async removeLeftovers(): Promise<void> {
    const names = await readdir(this.opts.stagingDir).catch(() => [] as string[]);
    for (const name of names) if (name.startsWith(FOLDER_PREFIX)) await rm(join(this.opts.stagingDir, name), { recursive: true, force: true });
  }

  /** Standbys ready now. */
  get readyCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.ready) n += 1;
    return n;
  }

  /** Compares what is prepared with what the state asks for, in the background. */
  poke(): void {
    if (this.stopped || this.opts.max <= 0) return;
    if (this.loop !== null) {
      this.again = true;
      return;
    }
    this.loop = (async () => {
      do {
        this.again = false;
        await this.reconcile().catch((err: unknown) => this.opts.logger.warn({ err }, 'standby restores: reconcile failed'));
      } while (this.again && !this.stopped);
      this.loop = null;
    })();
  }

  /**
   * The unpacked folder of the attempt's resume checkpoint, if a standby of it is here
   * (waiting for one being prepared): the folder is the caller's from now on, and the
   * runtime's restore from it claims the container. Null otherwise.
   */
  async take(a: Assignment): Promise<string | null> {
    const from = a.fromCheckpoint;
    const entry = this.entries.get(a.jobId);
    if (!from || entry === undefined || entry.blob !== from.blob) return null;
    this.entries.delete(a.jobId);
    return (await entry.done) ? entry.dir : null;
  }

  /** Stops preparing; what is prepared stays for the runtime's adopt of the next run to remove. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Jobs (oldest first, at most max) whose newest checkpoint this node should stand by with. */
  private wanted(): Map<string, string> {
    const want = new Map<string, string>();
    const state = this.opts.state();
    for (const job of state.jobs.values()) {
      if (want.size >= this.opts.max) break;
      const cp = job.state === 'running' ? state.checkpoints.get(job.id)?.at(-1) : undefined;
      if (cp === undefined) continue;
      // A job assigned here keeps what it has: its restore takes it, or it started from
      // scratch and the standby goes with its next checkpoint.
      const kept = this.entries.get(job.id);
      if (job.node === this.opts.nodeId) {
        if (kept !== undefined && kept.blob === cp.blob) want.set(job.id, cp.blob);
        continue;
      }
      if (!(state.blobs.get(cp.blob)?.holders ?? []).includes(this.opts.nodeId)) continue;
      if (this.failed.get(job.id) === cp.blob) continue;
      want.set(job.id, cp.blob);
    }
    return want;
  }

  private async reconcile(): Promise<void> {
    const want = this.wanted();
    for (const [jobId, entry] of [...this.entries]) {
      if (want.get(jobId) === entry.blob) continue;
      this.entries.delete(jobId);
      await this.discard(jobId, entry);
    }
    for (const jobId of [...this.failed.keys()]) if (!want.has(jobId) && this.opts.state().jobs.get(jobId)?.state !== 'running') this.failed.delete(jobId);
    for (const [jobId, blob] of want) {
      if (this.stopped) return;
      if (this.entries.has(jobId)) continue;
      await this.prepare(jobId, blob);
    }
  }

  private async prepare(jobId: string, blob: string): Promise<void> {
    const { runtime, blobs, logger } = this.opts;
    const unique = Math.floor(this.opts.random() * 2 ** 48).toString(16).padStart(12, '0');
    const dir = join(this.opts.stagingDir, `${FOLDER_PREFIX}${jobFolderName(jobId)}-${unique}`);
    const startedAt = this.opts.monotonic();
    let settle: (ok: boolean) => void = () => undefined;
    const entry: Entry = { blob, dir, done: new Promise<boolean>((resolve) => (settle = resolve)), ready: false };
    this.entries.set(jobId, entry);
    try {
      await blobs.exportFolder(blob, dir);
      await runtime.prepareStandby(jobId, dir, blob);
      entry.ready = true;
      const ms = this.opts.monotonic() - startedAt;
      this.opts.onPrepared?.('ready', ms);
      logger.info({ job: jobId, blob, ms: Math.round(ms) }, 'standby restore ready');
      settle(true);
    } catch (err) {
      this.failed.set(jobId, blob);
      if (this.entries.get(jobId) === entry) this.entries.delete(jobId);
      await rm(dir, { recursive: true, force: true });
      this.opts.onPrepared?.('failed', this.opts.monotonic() - startedAt);
      logger.warn({ job: jobId, blob, err }, 'cannot prepare a standby restore; the job is restored the usual way if it lands here');
      settle(false);
    }
  }

  private async discard(jobId: string, entry: Entry): Promise<void> {
    if (!(await entry.done)) return;
    await this.opts.runtime.discardStandby(jobId);
    await rm(entry.dir, { recursive: true, force: true });
  }
}
