// The checkpoint loop of one node: for each running attempt whose policy asks for
// checkpoints, every interval: CRIU checkpoint (one-instant capture, src/worker/
// docker-runtime.ts) → bundle into the blob store → copies on k−1 other nodes →
// propose `checkpointCommitted`. Only a committed record is a resume point.
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { BlobStore } from '../blobs/index.js';
import type { Proposer } from '../node/proposer.js';
import type { Assignment } from '../state/views.js';
import type { CheckpointResult } from './docker-runtime.js';
import { runKey, type RunKey } from './runtime.js';

/** Until the checkpoint model (src/policy) decides, `auto` checkpoints at this interval. */
export const AUTO_INTERVAL_SECONDS = 30;

export interface CheckpointingRuntime {
  checkpoint(key: RunKey, name: string): Promise<CheckpointResult>;
}

export interface CheckpointerOptions {
  nodeId: string;
  runtime: CheckpointingRuntime;
  blobs: BlobStore;
  /** Asks `count` other nodes to hold a copy; returns their ids. */
  replicate: (blobId: string, count: number) => Promise<string[]>;
  replicas: number;
  proposer: Proposer;
  logger: Logger;
}

/**
 * The interval in force: the spec's when fixed; for `auto`, the plan the leader made
 * (src/scheduler/policy.ts), `off` when checkpoints do not pay, and
 * AUTO_INTERVAL_SECONDS until a plan arrives.
 */
export function intervalSecondsOf(a: Assignment): number | null {
  const c = a.spec.checkpoint;
  if (c.mode === 'off') return null;
  if (c.mode === 'interval') return c.intervalSeconds;
  if (a.policy.mode === 'off') return null;
  return a.policy.intervalSeconds ?? AUTO_INTERVAL_SECONDS;
}

interface Tracked {
  key: RunKey;
  timer: NodeJS.Timeout;
  intervalSeconds: number;
  /** Checkpoints of this attempt so far; a resumed attempt counts from 1 again. */
  seq: number;
  busy: boolean;
}

export class Checkpointer {
  private readonly tracked = new Map<string, Tracked>();
  private readonly log: Logger;

  constructor(private readonly opts: CheckpointerOptions) {
    this.log = opts.logger.child({ component: 'checkpoint' });
  }

  /** Starts checkpointing an attempt at its interval; called again when its policy changes, it follows the new one. */
  track(a: Assignment): void {
    const id = runKey(a);
    const seconds = intervalSecondsOf(a);
    const known = this.tracked.get(id);
    if (known && known.intervalSeconds === seconds) return;
    if (known && seconds === null) {
      this.untrack(a);
      return;
    }
    if (seconds === null) return;
    if (known) {
      // A new plan: the next checkpoint comes one new interval from now; the count goes on.
      clearInterval(known.timer);
      known.intervalSeconds = seconds;
      known.timer = setInterval(() => void this.take(known), seconds * 1000);
      return;
    }
    const entry: Tracked = { key: { jobId: a.jobId, epoch: a.epoch }, seq: 0, busy: false, intervalSeconds: seconds, timer: setInterval(() => void this.take(entry), seconds * 1000) };
    this.tracked.set(id, entry);
  }

  untrack(key: RunKey): void {
    const entry = this.tracked.get(runKey(key));
    if (!entry) return;
    clearInterval(entry.timer);
    this.tracked.delete(runKey(key));
  }

  untrackAll(): void {
    for (const e of this.tracked.values()) clearInterval(e.timer);
    this.tracked.clear();
  }

  /**
   * For a graceful stop: one last checkpoint of every tracked attempt, committed
   * before the node goes, so their jobs resume elsewhere with nothing lost. Gives up
   * on what is not done within `timeoutMs`. Returns the attempts checkpointed.
   */
  async final(timeoutMs: number): Promise<RunKey[]> {
    const entries = [...this.tracked.values()];
    for (const e of entries) clearInterval(e.timer);
    const done: RunKey[] = [];
    const last = async (e: Tracked): Promise<void> => {
      while (e.busy) await new Promise((r) => setTimeout(r, 50));
      const before = e.seq;
      await this.take(e);
      if (e.seq > before) done.push(e.key);
    };
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(entries.map(last)), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.tracked.clear();
    return done;
  }

  private async take(entry: Tracked): Promise<void> {
    if (entry.busy) return; // the previous one is still being replicated
    entry.busy = true;
    const seq = entry.seq + 1;
    const { key } = entry;
    let bundleDir: string | null = null;
    try {
      const cp = await this.opts.runtime.checkpoint(key, `c${seq}`);
      bundleDir = cp.bundleDir;
      const put = await this.opts.blobs.putFolder(cp.bundleDir, 'checkpoint');
      const holders = [this.opts.nodeId, ...(await this.opts.replicate(put.id, this.opts.replicas - 1))];
      if (holders.length < this.opts.replicas) {
        this.log.warn({ job: key.jobId, seq, holders }, 'not enough holders: the checkpoint does not count');
        return;
      }
      const r = await this.opts.proposer.send({
        type: 'checkpointCommitted',
        jobId: key.jobId,
        epoch: key.epoch,
        node: this.opts.nodeId,
        seq,
        blob: put.id,
        bytes: put.bytes,
        durationMs: Math.round(cp.durationMs),
        frozenMs: Math.round(cp.frozenMs),
        logOffset: cp.logOffset,
        holders,
      });
      if (r.ok) {
        entry.seq = seq;
        this.log.info({ job: key.jobId, epoch: key.epoch, seq, bytes: put.bytes, newBytes: put.newBytes, frozenMs: Math.round(cp.frozenMs), holders }, 'checkpoint committed');
      } else {
        this.log.info({ job: key.jobId, seq, code: r.code }, 'checkpoint not accepted');
        if (r.code === 'STALE_EPOCH' || r.code === 'JOB_FINISHED') this.untrack(key);
      }
    } catch (err) {
      this.log.warn({ err, job: key.jobId, epoch: key.epoch, seq }, 'checkpoint failed; the job keeps running');
    } finally {
      entry.busy = false;
      if (bundleDir) await rm(bundleDir, { recursive: true, force: true });
    }
  }
}
