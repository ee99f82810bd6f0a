// The checkpoint loop of one node: for each running attempt whose policy asks for
// checkpoints, every interval: CRIU checkpoint (one-instant capture, src/worker/
// docker-runtime.ts) → bundle into the blob store → copies on k−1 other nodes →
// propose `checkpointCommitted`. Only a committed record is a resume point.
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ReplicatedBlobs } from '../blobs/replicated.js';
import type { Assignment } from '../state/views.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import type { ReportSink } from './report-sink.js';
import { runKey, type CheckpointResult, type RunKey } from './runtime.js';

/** How long a node that stops (SIGTERM) or is drained waits for the last checkpoint of its jobs. */
export const LAST_CHECKPOINT_MS = 60_000;

/** Until the checkpoint model (src/policy) decides, `auto` checkpoints at this interval. */
export const AUTO_INTERVAL_SECONDS = 30;

export interface CheckpointingRuntime {
  checkpoint(key: RunKey, name: string): Promise<CheckpointResult>;
}

export interface CheckpointerOptions {
  nodeId: string;
  runtime: CheckpointingRuntime;
  /** Stores a bundle here and on k−1 other nodes (src/blobs/replicated.ts). */
  blobs: Pick<ReplicatedBlobs, 'putFolder'>;
  proposer: ReportSink;
  logger: Logger;
  /** Intervals and run times; the system clock by default. */
  clock?: Clock;
  /** Each checkpoint the runtime took (before it is stored and replicated): metrics. */
  onCheckpoint?: (cp: CheckpointResult) => void;
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
  timer: Timer;
  intervalSeconds: number;
  clock: RunClock;
}

/** Per attempt on this node: since when it runs, and how long checkpoints froze it. */
interface RunClock {
  /** clock.monotonic() when this node first tracked the attempt: when it started running here (or was adopted). */
  since: number;
  frozenMs: number;
  /** Checkpoints of this attempt committed so far; a resumed attempt counts from 1 again. */
  seq: number;
  /** The checkpoint of it under way (capture, store, replicate, commit), if any. */
  inFlight: Promise<void> | null;
}

export class Checkpointer {
  private readonly tracked = new Map<string, Tracked>();
  /** Kept while an attempt's checkpoints are merely off (its policy may turn them on again), dropped when it ends. */
  private readonly clocks = new Map<string, RunClock>();
  /** Per attempt, the checkpoint of it under way; kept past untrack, until it is decided. */
  private readonly undecided = new Map<string, Promise<void>>();
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(private readonly opts: CheckpointerOptions) {
    this.log = opts.logger.child({ component: 'checkpoint' });
    this.clock = opts.clock ?? systemClock;
  }

  /** Starts checkpointing an attempt at its interval; called again when its policy changes, it follows the new one. */
  track(a: Assignment): void {
    const id = runKey(a);
    let clock = this.clocks.get(id);
    // An attempt resumed from its own checkpoint (its box restarted) counts on from it: a lower seq would be refused as out of order.
    const seq = a.fromCheckpoint?.epoch === a.epoch ? a.fromCheckpoint.seq : 0;
    if (!clock) this.clocks.set(id, (clock = { since: this.clock.monotonic(), frozenMs: 0, seq, inFlight: null }));
    const seconds = intervalSecondsOf(a);
    const known = this.tracked.get(id);
    if (known && known.intervalSeconds === seconds) return;
    if (known && seconds === null) {
      known.timer.cancel();
      this.tracked.delete(id);
      return;
    }
    if (seconds === null) return;
    if (known) {
      // A new plan: the next checkpoint comes one new interval from now; the count goes on.
      known.timer.cancel();
      known.intervalSeconds = seconds;
      known.timer = this.every(known);
      return;
    }
    const entry: Tracked = { key: { jobId: a.jobId, epoch: a.epoch }, clock, intervalSeconds: seconds, timer: NO_TIMER };
    entry.timer = this.every(entry);
    this.tracked.set(id, entry);
  }

  /**
   * The checkpoint of the attempt still under way (captured, being stored, replicated or
   * committed), also once the attempt stopped here, or null: resolves when it is
   * decided. Its commit may move the attempt's resume point (src/worker/worker.ts).
   */
  inFlight(key: RunKey): Promise<void> | null {
    return this.undecided.get(runKey(key)) ?? null;
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
    entry.timer.cancel();
    this.tracked.delete(runKey(key));
  }

  untrackAll(): void {
    for (const e of this.tracked.values()) e.timer.cancel();
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
    for (const e of entries) e.timer.cancel();
    const done: RunKey[] = [];
    const last = async (e: Tracked): Promise<void> => {
      // The one under way may have captured the state before the node stopped taking work.
      while (e.clock.inFlight) await e.clock.inFlight;
      const before = e.clock.seq;
      await this.take(e);
      if (e.clock.seq > before) done.push(e.key);
    };
    let timer: Timer | undefined;
    await Promise.race([Promise.all(entries.map(last)), new Promise((r) => (timer = this.clock.after(timeoutMs, () => r(undefined))))]);
    timer?.cancel();
    this.tracked.clear();
    return done;
  }

  /**
   * For an attempt about to be stopped here (its node is drained): one last
   * checkpoint, committed before this resolves, unless its policy is off or it never
   * ran here; then no more of it. Gives up after `timeoutMs` (a checkpoint still under
   * way may commit later: the attempt's end then fences it off). Resolves whether a
   * checkpoint of it was committed.
   */
  async last(a: Assignment, timeoutMs: number): Promise<boolean> {
    const id = runKey(a);
    const clock = this.clocks.get(id);
    const tracked = this.tracked.get(id);
    tracked?.timer.cancel();
    this.tracked.delete(id);
    if (clock === undefined || a.policy.mode === 'off') return false;
    const entry: Tracked = tracked ?? { key: { jobId: a.jobId, epoch: a.epoch }, clock, intervalSeconds: 0, timer: NO_TIMER };
    const before = clock.seq;
    const once = async (): Promise<void> => {
      // One under way may have captured the state a while ago: the last one comes after it.
      while (clock.inFlight) await clock.inFlight;
      await this.take(entry);
    };
    let timer: Timer | undefined;
    await Promise.race([once(), new Promise((r) => (timer = this.clock.after(timeoutMs, () => r(undefined))))]);
    timer?.cancel();
    return clock.seq > before;
  }

  private every(entry: Tracked): Timer {
    return this.clock.every(entry.intervalSeconds * 1000, () => void this.take(entry));
  }

  /** Takes a checkpoint of the attempt, unless one of it is still under way (then this one is skipped). */
  private take(entry: Tracked): Promise<void> {
    const { clock } = entry;
    if (clock.inFlight) return clock.inFlight;
    const bundle: { dir: string | null } = { dir: null };
    const id = runKey(entry.key);
    const decided = this.capture(entry, bundle).finally(() => {
      clock.inFlight = null;
      if (this.undecided.get(id) === decided) this.undecided.delete(id);
    });
    clock.inFlight = decided;
    this.undecided.set(id, decided);
    // Once the checkpoint is decided, its exported folder is only a leftover: the blob store has its copy.
    return decided.then(async () => {
      // '' names no folder (a runtime that exports nothing): no disk call for it.
      if (bundle.dir !== null && bundle.dir !== '') await rm(bundle.dir, { recursive: true, force: true }).catch((err: unknown) => this.log.warn({ err, dir: bundle.dir }, 'removing a checkpoint bundle failed'));
    });
  }

  /** One checkpoint: capture, store, replicate, commit. Never throws; `bundle.dir` is set once there is a folder to remove. */
  private async capture(entry: Tracked, bundle: { dir: string | null }): Promise<void> {
    const { clock } = entry;
    const seq = clock.seq + 1;
    const { key } = entry;
    try {
      // The job runs until the capture freezes it, a moment after this.
      const ranMs = Math.max(0, this.clock.monotonic() - clock.since - clock.frozenMs);
      const cp = await this.opts.runtime.checkpoint(key, `c${seq}`);
      this.opts.onCheckpoint?.(cp);
      clock.frozenMs += cp.frozenMs;
      bundle.dir = cp.bundleDir;
      // Too few copies throws (src/blobs/replicated.ts): the checkpoint then does not
      // count. The blob service keeps the blob out of its gc until the proposal settles.
      const { blob: put, registered: r } = await this.opts.blobs.putFolder(cp.bundleDir, 'checkpoint', (placed) =>
        this.opts.proposer.send({
          type: 'checkpointCommitted',
          jobId: key.jobId,
          epoch: key.epoch,
          node: this.opts.nodeId,
          seq,
          blob: placed.id,
          bytes: placed.bytes,
          durationMs: Math.round(cp.durationMs),
          frozenMs: Math.round(cp.frozenMs),
          ranMs: Math.round(ranMs),
          logOffset: cp.logOffset,
          holders: placed.holders,
        }),
      );
      const { holders } = put;
      if (r.ok) {
        clock.seq = seq;
        this.log.info({ job: key.jobId, epoch: key.epoch, seq, bytes: put.bytes, newBytes: put.newBytes, frozenMs: Math.round(cp.frozenMs), holders }, 'checkpoint committed');
      } else {
        this.log.info({ job: key.jobId, seq, code: r.code }, 'checkpoint not accepted');
        if (r.code === 'STALE_EPOCH' || r.code === 'JOB_FINISHED') this.untrack(key);
      }
    } catch (err) {
      this.log.warn({ err, job: key.jobId, epoch: key.epoch, seq }, 'checkpoint failed; the job keeps running');
    }
  }
}

/** Stands in for an entry's timer until its own is armed. */
const NO_TIMER: Timer = { cancel: () => {}, unref: () => NO_TIMER };
