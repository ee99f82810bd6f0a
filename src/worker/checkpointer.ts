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
  clock: RunClock;
}

/** Per attempt on this node: since when it runs, and how long checkpoints froze it. */
interface RunClock {
  /** performance.now() when this node first tracked the attempt: when it started running here (or was adopted). */
  since: number;
  frozenMs: number;
  /** Checkpoints of this attempt committed so far; a resumed attempt counts from 1 again. */
  seq: number;
  /** A checkpoint of it is under way (capture, store, replicate, commit). */
  busy: boolean;
}

export class Checkpointer {
  private readonly tracked = new Map<string, Tracked>();
  /** Kept while an attempt's checkpoints are merely off (its policy may turn them on again), dropped when it ends. */
  private readonly clocks = new Map<string, RunClock>();
  private readonly log: Logger;

  constructor(private readonly opts: CheckpointerOptions) {
    this.log = opts.logger.child({ component: 'checkpoint' });
  }

  /** Starts checkpointing an attempt at its interval; called again when its policy changes, it follows the new one. */
  track(a: Assignment): void {
    const id = runKey(a);
    let clock = this.clocks.get(id);
    if (!clock) this.clocks.set(id, (clock = { since: performance.now(), frozenMs: 0, seq: 0, busy: false }));
    const seconds = intervalSecondsOf(a);
    const known = this.tracked.get(id);
    if (known && known.intervalSeconds === seconds) return;
    if (known && seconds === null) {
      clearInterval(known.timer);
      this.tracked.delete(id);
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
    const entry: Tracked = { key: { jobId: a.jobId, epoch: a.epoch }, clock, intervalSeconds: seconds, timer: setInterval(() => void this.take(entry), seconds * 1000) };
    this.tracked.set(id, entry);
  }

  /** The attempt did not run for `ms` (frozen by self-fencing): its checkpoints' ranMs leave that out. */
  addFrozen(key: RunKey, ms: number): void {
    const clock = this.clocks.get(runKey(key));
    if (clock && ms > 0) clock.frozenMs += ms;
  }

  /** The attempt ended here (exited, stopped, fenced): no more checkpoints of it. */
  untrack(key: RunKey): void {
    this.clocks.delete(runKey(key));
    const entry = this.tracked.get(runKey(key));
    if (!entry) return;
    clearInterval(entry.timer);
    this.tracked.delete(runKey(key));
  }

  untrackAll(): void {
    for (const e of this.tracked.values()) clearInterval(e.timer);
    this.tracked.clear();
    this.clocks.clear();
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
      while (e.clock.busy) await new Promise((r) => setTimeout(r, 50));
      const before = e.clock.seq;
      await this.take(e);
      if (e.clock.seq > before) done.push(e.key);
    };
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(entries.map(last)), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.tracked.clear();
    return done;
  }

  private async take(entry: Tracked): Promise<void> {
    const { clock } = entry;
    if (clock.busy) return; // the previous one is still being replicated
    clock.busy = true;
    const seq = clock.seq + 1;
    const { key } = entry;
    let bundleDir: string | null = null;
    try {
      // The job runs until the capture freezes it, a moment after this.
      const ranMs = Math.max(0, performance.now() - clock.since - clock.frozenMs);
      const cp = await this.opts.runtime.checkpoint(key, `c${seq}`);
      clock.frozenMs += cp.frozenMs;
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
        ranMs: Math.round(ranMs),
        logOffset: cp.logOffset,
        holders,
      });
      if (r.ok) {
        clock.seq = seq;
        this.log.info({ job: key.jobId, epoch: key.epoch, seq, bytes: put.bytes, newBytes: put.newBytes, frozenMs: Math.round(cp.frozenMs), holders }, 'checkpoint committed');
      } else {
        this.log.info({ job: key.jobId, seq, code: r.code }, 'checkpoint not accepted');
        if (r.code === 'STALE_EPOCH' || r.code === 'JOB_FINISHED') this.untrack(key);
      }
    } catch (err) {
      this.log.warn({ err, job: key.jobId, epoch: key.epoch, seq }, 'checkpoint failed; the job keeps running');
    } finally {
      clock.busy = false;
      if (bundleDir) await rm(bundleDir, { recursive: true, force: true });
    }
  }
}
