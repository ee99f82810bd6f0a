// The worker half of a node: runs what the replicated state assigns to this node and
// nothing else (Nomad-style reconciliation), reports starts and exits, and fences
// itself when it cannot renew its lease with the leader.
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { resourcesAboveMaximum, type ResourceMaxima } from '../state/spec.js';
import type { Assignment } from '../state/views.js';
import { backoffDelayMs } from '../util/backoff.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { SingleFlight } from '../util/single-flight.js';
import { type Checkpointer, LAST_CHECKPOINT_MS } from './checkpointer.js';
import type { ReportSink } from './report-sink.js';
import { runKey, type ContainerRuntime, type RunKey } from './runtime.js';
import { EXIT_CANNOT_START, UnstartableError } from './unstartable.js';

/** The exit code of an attempt killed at its timeoutSeconds (as coreutils `timeout` reports it). */
export const EXIT_TIMED_OUT = 124;

/** Delays between tries of an exit report that found no leader: 0.5–1 s, doubling, up to 5–10 s. */
const REPORT_RETRY = { baseMs: 1_000, maxMs: 10_000 };

/** Node timers hold at most 2^31-1 ms (24.8 days); a longer wait is re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface WorkerOptions {
  nodeId: string;
  runtime: ContainerRuntime;
  proposer: ReportSink;
  /** The attempts the replicated state assigns to this node now. */
  assignments: () => Assignment[];
  /** Whether the replicated state assigns this attempt to this node now: assignments() holds it, asked without building every view. Default: assignments(). */
  isAssigned?: (key: RunKey) => boolean;
  /** Whether this node holds a valid lease (heard from the leader within leaseTimeoutMs). */
  leaseValid: () => boolean;
  /**
   * Self-fencing freezes the attempts first (a leader election also interrupts the
   * lease, and a node still up renews with the new leader before its lease bound
   * passes); only a lease lost for this long stops them for good. Default: stop at once.
   */
  fenceStopAfterMs?: number;
  /** Counts attempts frozen and thawed by self-fencing. */
  onFence?: (what: 'frozen' | 'thawed') => void;
  /** Makes the attempt's input files available locally: file name → path. */
  prepareInputs: (a: Assignment) => Promise<Map<string, string>>;
  /** Called once the runtime has copied the input files into the container. */
  releaseInputs: (a: Assignment) => Promise<void>;
  /**
   * Stores the exited attempt's result archive on k nodes; returns its blob id, and
   * the reason the attempt fails whatever its exit code (its outputs exceed the
   * node's cap) or null. Runs before the exit is reported, while the container still
   * exists.
   */
  publishResult?: (key: RunKey, exitCode: number) => Promise<{ blob: string; failure: string | null }>;
  /**
   * The most a job may ask for on this node: an assignment above it fails at once
   * (EXIT_CANNOT_START, with the reason) instead of starting. None: no ceiling.
   */
  maxima?: ResourceMaxima;
  /** Counts reports the state machine refused (the fence at work): STALE_EPOCH, JOB_FINISHED, … */
  onReportRejected?: (what: string, code: string) => void;
  /**
   * Whether this node is being drained (replicated, `workrs nodes drain`): nothing
   * starts here, and every attempt assigned here is moved off (a last checkpoint, the
   * container stopped, jobDrained proposed). None: never.
   */
  draining?: () => boolean;
  /** Docker only: takes checkpoints of running attempts. */
  checkpointer?: Checkpointer;
  /** Docker only: fetches the attempt's resume checkpoint and unpacks it; returns the bundle folder. */
  prepareCheckpoint?: (a: Assignment) => Promise<string>;
  /** Docker only: resumes an attempt from an unpacked checkpoint bundle. */
  restore?: (a: Assignment, bundleDir: string, onExit: (exitCode: number) => void) => Promise<{ restored: true } | { restored: false; reason: string }>;
  logger: Logger;
  /** Timeouts, fencing durations and retry delays; the system clock by default. */
  clock?: Clock;
  /** The jitter of retry delays, in [0, 1); Math.random by default. */
  random?: () => number;
  /**
   * UNSAFE, for tests only (a mutant the whole-node simulator must catch): a lost
   * lease neither freezes nor stops the attempts running here, so a fenced attempt
   * goes on executing beside its successor. Nothing new starts without a lease still.
   */
  ignoreLostLease?: boolean;
}

export class Worker {
  private readonly opts: WorkerOptions;
  get checkpointer(): Checkpointer | undefined {
    return this.opts.checkpointer;
  }
  private readonly log: Logger;
  /**
   * Attempts that exited here. Such an attempt must never run again: the entry stays
   * while its report is undecided (whatever this node believes about its lease or
   * assignment) and, once decided, until the local state stops assigning it.
   */
  private readonly exited = new Map<string, { key: RunKey; exitCode: number; decided: boolean }>();
  private readonly startedReported = new Set<string>();
  /** timeoutSeconds timers of the attempts running here, and the attempts they killed. */
  private readonly deadlines = new Map<string, Timer>();
  private readonly timedOut = new Set<string>();
  /** One reconcile at a time; a poke during one asks for one more. */
  private readonly reconciler: SingleFlight;
  /** Applies the lease and the assignments to what runs here while a reconcile is busy starting attempts (see poke). */
  private readonly fencer: SingleFlight;
  /** The end of the last enforce(): the reconcile's and the fencer's run one after the other. */
  private enforcing: Promise<unknown> = Promise.resolve();
  /** When the lease was first seen lost (clock.monotonic(); null while it is valid). */
  private fencedSince: number | null = null;
  /** Attempts this worker froze and has not thawed or stopped, and since when (clock.monotonic()). */
  private readonly frozen = new Map<string, number>();
  /** In-flight checkpoints a start waits for (Checkpointer.inFlight): each wakes the worker once when decided. */
  private readonly awaitedCheckpoints = new WeakSet<Promise<void>>();
  private halted = false;
  /** Attempts a drain stopped here (they must not start again), and those whose jobDrained is proposed or accepted. */
  private readonly drainStopped = new Set<string>();
  private readonly drainReported = new Set<string>();
  private readonly clock: Clock;
  private readonly random: () => number;

  constructor(opts: WorkerOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'worker' });
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.reconciler = new SingleFlight(
      async () => {
        if (!this.halted) await this.reconcile();
      },
      (err) => this.log.error({ err }, 'reconcile failed'),
    );
    this.fencer = new SingleFlight(
      async () => {
        if (!this.halted) await this.enforceSerially();
      },
      (err) => this.log.error({ err }, 'fencing the runs failed'),
    );
  }

  private stopAfterMs(): number {
    return this.opts.fenceStopAfterMs ?? 0;
  }

  private fencesTotal(what: 'frozen' | 'thawed'): void {
    this.opts.onFence?.(what);
  }

  /** For a graceful stop: no more reconciling (nothing starts again while the node drains); waits for a run in progress. */
  async halt(): Promise<void> {
    this.halted = true;
    await Promise.all([this.reconciler.idle(), this.fencer.idle()]);
  }

  /** Call on every applied change and periodically; runs are serialized. */
  poke(): void {
    if (this.halted) return;
    // A reconcile can be busy for seconds starting an attempt (its inputs or checkpoint
    // fetched from a holder that does not answer, for the connect timeout per holder):
    // what runs here must still be frozen or stopped once the lease is lost (or stopped
    // once it is no longer assigned here) without waiting for that start to end.
    if (this.reconciler.busy) void this.fencer.run();
    void this.reconciler.run();
  }

  /** Resolves once no reconcile is in progress or asked for (tests, simulators). */
  async settled(): Promise<void> {
    await Promise.all([this.reconciler.idle(), this.fencer.idle()]);
  }

  private async reconcile(): Promise<void> {
    const { leaseValid, want, runningIds, assigned } = await this.enforceSerially();
    // Here, not in enforce(): the fencer's enforce() must not drop the exit that keeps
    // an attempt in a start pass's (older) list from running a second time.
    const assignedIds = new Set(assigned.map(runKey));
    for (const [id, e] of this.exited) if (e.decided && !assignedIds.has(id)) this.exited.delete(id);
    for (const id of this.startedReported) if (!assignedIds.has(id)) this.startedReported.delete(id);
    for (const set of [this.drainStopped, this.drainReported]) for (const id of set) if (!assignedIds.has(id)) set.delete(id);
    if (!leaseValid) return; // nothing starts without a lease
    if (this.opts.draining?.() === true) {
      await this.moveOff(want, runningIds);
      return;
    }
    await this.startMissing(want, runningIds);
  }

  /** enforce(), after any other enforce() under way has ended. */
  private enforceSerially(): Promise<Enforced> {
    const next = this.enforcing.then(() => this.enforce());
    this.enforcing = next.catch(() => undefined);
    return next;
  }

  /**
   * What runs here follows the lease and the assignments: runs no longer assigned (or,
   * past fenceStopAfterMs without a lease, all runs) stop; without a lease they freeze;
   * with it they thaw and are checkpointed. Quick: no blob fetch, no start.
   */
  private async enforce(): Promise<Enforced> {
    const { runtime } = this.opts;
    const leaseValid = this.opts.leaseValid();
    // With the unsafe test knob, what runs here runs on as if the lease were valid.
    const keepRunning = leaseValid || this.opts.ignoreLostLease === true;
    const assigned = this.opts.assignments();
    const running = await runtime.running();
    const now = this.clock.monotonic();
    if (!keepRunning && this.fencedSince === null) {
      this.fencedSince = now;
      if (running.length > 0) this.log.warn(`lease lost: ${this.stopAfterMs() > 0 ? 'freezing' : 'stopping'} every job on this node (self-fencing)`);
    } else if (keepRunning && this.fencedSince !== null) {
      this.fencedSince = null;
      if (this.frozen.size > 0) this.log.warn({ frozen: this.frozen.size }, 'lease back: thawing the jobs still assigned here');
    }
    // Frozen, not stopped, while the lease may still come back (an election); stopped past that.
    const freezing = !keepRunning && this.fencedSince !== null && now - this.fencedSince < this.stopAfterMs();
    const want = new Map((keepRunning || freezing ? assigned : []).map((a) => [runKey(a), a]));
    const runningIds = new Set(running.map(runKey));

    for (const key of running) {
      const id = runKey(key);
      const a = want.get(id);
      if (a === undefined) {
        this.log.info({ job: key.jobId, epoch: key.epoch }, leaseValid ? 'stopping a run no longer assigned here' : 'stopping a run: lease lost (self-fencing)');
        this.opts.checkpointer?.untrack(key);
        this.clearDeadline(key);
        this.frozen.delete(id);
        await runtime.stop(key);
      } else if (freezing) {
        if (!this.frozen.has(id)) {
          this.frozen.set(id, this.clock.monotonic());
          this.fencesTotal('frozen');
        }
        await runtime.freeze(key);
      } else {
        const frozenAt = this.frozen.get(id);
        if (frozenAt !== undefined) {
          this.frozen.delete(id);
          this.fencesTotal('thawed');
          this.opts.checkpointer?.addFrozen(key, this.clock.monotonic() - frozenAt);
        }
        // Also a run adopted frozen after a restart of this process: the runtime knows.
        await runtime.thaw(key);
        // Also an attempt adopted after a restart of this process: its deadline and its
        // checkpoints, at the interval of its current policy.
        this.armDeadline(a);
        this.opts.checkpointer?.track(a);
      }
    }
    return { leaseValid, want, runningIds, assigned };
  }

  /**
   * A drained node moves every attempt assigned here off, all at once: a last
   * checkpoint (the graceful stop's mechanism, lifecycle.ts drainJobs, one attempt at
   * a time), the container stopped, then jobDrained, which ends the attempt and puts
   * the job back to pending; the scheduler places it elsewhere, resuming from that
   * checkpoint. An attempt that exits meanwhile is reported as exited instead. A
   * jobDrained that could not be proposed is proposed again at the next reconcile.
   */
  private async moveOff(want: Map<string, Assignment>, runningIds: Set<string>): Promise<void> {
    await Promise.all(
      [...want].map(async ([id, a]) => {
        if (this.exited.has(id) || this.drainReported.has(id)) return;
        const key = { jobId: a.jobId, epoch: a.epoch };
        if (runningIds.has(id) && !this.drainStopped.has(id)) {
          const saved = (await this.opts.checkpointer?.last(a, LAST_CHECKPOINT_MS)) ?? false;
          if (this.exited.has(id)) return; // it ended on its own meanwhile: its exit report decides
          this.opts.checkpointer?.untrack(key);
          this.clearDeadline(key);
          this.frozen.delete(id);
          await this.opts.runtime.stop(key);
          this.drainStopped.add(id);
          this.log.warn({ job: a.jobId, epoch: a.epoch, checkpointed: saved }, saved ? 'node drained: took a last checkpoint and stopped the job; it resumes elsewhere' : 'node drained: stopped the job (no checkpoint taken); it starts elsewhere from its newest checkpoint, if any');
        }
        this.drainReported.add(id);
        try {
          const r = await this.opts.proposer.send({ type: 'jobDrained', jobId: a.jobId, epoch: a.epoch, node: this.opts.nodeId });
          if (!r.ok) {
            this.log.info({ job: a.jobId, epoch: a.epoch, code: r.code }, 'jobDrained not accepted');
            this.opts.onReportRejected?.('jobDrained', r.code);
          }
        } catch (err) {
          this.drainReported.delete(id);
          this.log.warn({ err, job: a.jobId, epoch: a.epoch }, 'jobDrained could not be proposed; trying again at the next reconcile');
        }
      }),
    );
  }

  /** Starts (or resumes) the attempts assigned here that do not run here. */
  private async startMissing(want: Map<string, Assignment>, runningIds: Set<string>): Promise<void> {
    const { runtime } = this.opts;
    for (const [id, a] of want) {
      if (runningIds.has(id) || this.exited.has(id)) continue;
      // A checkpoint of this attempt still on its way (it was captured before a fence
      // stop): once committed it is the attempt's resume point, so starting now, from
      // the older one, would redo the work between them. Wait for it to be decided.
      const pending = this.opts.checkpointer?.inFlight(a);
      if (pending) {
        if (!this.awaitedCheckpoints.has(pending)) {
          this.awaitedCheckpoints.add(pending);
          this.log.info({ job: a.jobId, epoch: a.epoch }, 'waiting for its checkpoint under way before starting it again');
          void pending.then(() => this.poke());
        }
        continue;
      }
      const above = this.opts.maxima === undefined ? [] : resourcesAboveMaximum(a.spec, this.opts.maxima);
      if (above.length > 0) {
        // Submitted through a node with a higher maximum: this node never runs it.
        const reason = `this node does not start the job: ${above.map((e) => `${e.field} ${e.message}`).join('; ')}`;
        this.log.error({ job: a.jobId, epoch: a.epoch, reason }, 'the job asks for more than this node allows: its attempt fails');
        this.onExit({ jobId: a.jobId, epoch: a.epoch }, EXIT_CANNOT_START, reason);
        continue;
      }
      this.log.info({ job: a.jobId, epoch: a.epoch }, 'starting');
      let files: Map<string, string>;
      try {
        files = await this.opts.prepareInputs(a);
      } catch (err) {
        // No holder reachable right now: try again at the next reconcile.
        this.log.warn({ err, job: a.jobId, epoch: a.epoch }, 'input files not available yet');
        continue;
      }
      const onExit = (exitCode: number): void => this.onExit({ jobId: a.jobId, epoch: a.epoch }, exitCode);
      let restore: Awaited<ReturnType<Worker['tryRestore']>>;
      try {
        restore = await this.tryRestore(a, onExit);
        if (!restore.restored) {
          if (!this.mayStart(a)) {
            await this.opts.releaseInputs(a);
            continue;
          }
          await runtime.start(a, onExit, files);
        }
      } catch (err) {
        if (err instanceof UnstartableError) {
          // Retrying would never end: the attempt fails, with the reason here.
          this.log.error({ job: a.jobId, epoch: a.epoch, exitCode: err.exitCode, reason: err.message }, 'the job cannot start: its attempt fails');
          await this.opts.releaseInputs(a);
          this.onExit({ jobId: a.jobId, epoch: a.epoch }, err.exitCode, err.message);
        } else {
          // Other assignments still start; this one is tried again at the next reconcile.
          this.log.warn({ err, job: a.jobId, epoch: a.epoch }, 'start failed; trying again');
        }
        continue;
      }
      // Reported the moment it runs (the attempt's start time is when the report
      // applies); the housekeeping below does not hold the report up.
      if (!this.startedReported.has(id)) {
        this.startedReported.add(id);
        const restoreError = restore.restored ? undefined : restore.error;
        const started = { type: 'jobStarted' as const, jobId: a.jobId, epoch: a.epoch, node: this.opts.nodeId, ...(restoreError === undefined ? {} : { restoreError }) };
        void this.report(() => this.opts.proposer.send(started), 'jobStarted', a);
      }
      await this.opts.releaseInputs(a);
      this.opts.checkpointer?.track(a);
      this.armDeadline(a);
    }
  }

  /**
   * Resumes from the attempt's checkpoint when it has one. A restore that fails (no
   * holder reachable, an incompatible kernel, a CRIU error) falls back to a start from
   * scratch: the job still completes, only the work since its start is redone.
   */
  private async tryRestore(a: Assignment, onExit: (exitCode: number) => void): Promise<{ restored: true } | { restored: false; error?: string }> {
    const from = a.fromCheckpoint;
    if (!from) return { restored: false };
    if (!this.opts.restore || !this.opts.prepareCheckpoint) return { restored: false, error: 'this node cannot restore checkpoints (not a Docker runtime)' };
    let bundleDir: string | null = null;
    let error: string;
    try {
      bundleDir = await this.opts.prepareCheckpoint(a);
      if (!this.mayStart(a)) return { restored: false };
      const r = await this.opts.restore(a, bundleDir, onExit);
      if (r.restored) {
        this.log.warn({ job: a.jobId, epoch: a.epoch, from }, 'resumed from checkpoint');
        return { restored: true };
      }
      error = r.reason;
    } catch (err) {
      error = describe(err);
    } finally {
      // Nothing reads the unpacked bundle once the restore returned: it goes while the
      // start is reported (a restored attempt) or the attempt starts from scratch.
      if (bundleDir) void this.removeBundle(a, bundleDir);
    }
    this.log.warn({ job: a.jobId, epoch: a.epoch, from, reason: error }, 'restore failed: starting from scratch');
    // The replicated record holds at most COMMAND_LIMITS.reasonBytes.
    return { restored: false, error: truncateUtf8(error, FAILURE_MAX_BYTES) };
  }

  private async removeBundle(a: Assignment, dir: string): Promise<void> {
    try {
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      this.log.warn({ err, job: a.jobId, epoch: a.epoch, dir }, 'cannot remove an unpacked checkpoint bundle');
    }
  }

  /**
   * Fetching inputs or a checkpoint can take long (a holder that does not answer), and
   * meanwhile the lease may lapse and the log may give the attempt to another node: so
   * this is asked again right before an attempt starts or is restored.
   */
  private mayStart(a: Assignment): boolean {
    if (!this.opts.leaseValid()) return false;
    const key = { jobId: a.jobId, epoch: a.epoch };
    return this.opts.isAssigned?.(key) ?? this.opts.assignments().some((x) => x.jobId === key.jobId && x.epoch === key.epoch);
  }

  /** An exit the runtime saw outside a run started here (an adopted container). */
  adoptedExit(key: RunKey, exitCode: number): void {
    this.onExit(key, exitCode);
  }

  /** `failure`: why this node fails the attempt itself (it could not or may not start it). */
  private onExit(key: RunKey, exitCode: number, failure: string | null = null): void {
    this.opts.checkpointer?.untrack(key);
    this.clearDeadline(key);
    const id = runKey(key);
    const code = this.timedOut.delete(id) ? EXIT_TIMED_OUT : exitCode;
    this.exited.set(id, { key, exitCode: code, decided: false });
    void this.reportExit(id, key, code, failure);
  }

  /**
   * spec.timeoutSeconds counts from the job's first start (replicated, so a resumed
   * attempt keeps the original deadline); past it the attempt is killed and its exit
   * reported as EXIT_TIMED_OUT, with its log and outputs as they are.
   */
  private armDeadline(a: Assignment): void {
    const id = runKey(a);
    const seconds = a.spec.timeoutSeconds;
    if (seconds === null || this.deadlines.has(id)) return;
    const due = (a.jobStartedAt ?? this.clock.now()) + seconds * 1000;
    const key = { jobId: a.jobId, epoch: a.epoch };
    const timer = this.clock.after(Math.min(Math.max(0, due - this.clock.now()), MAX_TIMER_MS), () => {
      this.deadlines.delete(id);
      if (this.clock.now() < due) {
        this.armDeadline(a);
        return;
      }
      this.timedOut.add(id);
      this.log.warn({ job: a.jobId, epoch: a.epoch, timeoutSeconds: seconds }, 'timed out: killing the job');
      this.opts.checkpointer?.untrack(key);
      this.opts.runtime.kill(key).catch((err: unknown) => this.log.error({ err, job: a.jobId }, 'killing a timed-out job failed'));
    });
    this.deadlines.set(id, timer);
  }

  private clearDeadline(key: RunKey): void {
    const id = runKey(key);
    this.deadlines.get(id)?.cancel();
    this.deadlines.delete(id);
  }

  /**
   * An exit is a result: its archive is stored, then the exit is proposed until the
   * state machine decides, also across a lost lease (a partition): only the epoch
   * fence may refuse it, never this node's belief that it is stale.
   */
  private async reportExit(id: string, key: RunKey, exitCode: number, startFailure: string | null): Promise<void> {
    let result: { blob: string; failure: string | null } | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        if (result === undefined && this.opts.publishResult) result = await this.opts.publishResult(key, exitCode);
        const resultBlob = result?.blob;
        const failure = startFailure ?? result?.failure ?? null;
        const cmd = {
          type: 'jobExited' as const,
          jobId: key.jobId,
          epoch: key.epoch,
          node: this.opts.nodeId,
          exitCode,
          ...(resultBlob === undefined ? {} : { resultBlob }),
          // The replicated record holds at most COMMAND_LIMITS.reasonBytes.
          ...(failure === null ? {} : { failure: truncateUtf8(failure, FAILURE_MAX_BYTES) }),
        };
        const r = await this.opts.proposer.send(cmd, 30_000);
        if (r.ok) {
          this.log.info({ job: key.jobId, epoch: key.epoch, exitCode, resultBlob, failure }, 'exit reported');
        } else {
          this.log.warn({ job: key.jobId, epoch: key.epoch, code: r.code, message: r.message }, 'jobExited not accepted');
          this.opts.onReportRejected?.('jobExited', r.code);
        }
        break;
      } catch (err) {
        this.log.warn({ err, job: key.jobId, epoch: key.epoch }, 'the exit could not be reported yet; retrying');
        await this.clock.sleep(backoffDelayMs(attempt, this.random, REPORT_RETRY));
      }
    }
    // Decided (accepted, or fenced): the container is no longer needed.
    const entry = this.exited.get(id);
    if (entry) entry.decided = true;
    await this.opts.runtime.stop(key).catch((err: unknown) => this.log.warn({ err, job: key.jobId }, 'removing the exited container failed'));
  }

  private async report(send: () => Promise<{ ok: boolean; code?: string }>, what: string, key: RunKey): Promise<void> {
    try {
      const r = await send();
      // A fenced report (STALE_EPOCH, JOB_FINISHED) is the system working: this attempt is over.
      if (!r.ok) {
        this.log.info({ job: key.jobId, epoch: key.epoch, code: r.code }, `${what} not accepted`);
        this.opts.onReportRejected?.(what, r.code ?? 'UNKNOWN');
      }
    } catch (err) {
      this.log.warn({ err, job: key.jobId, epoch: key.epoch }, `${what} could not be reported`);
    }
  }
}

/** What a start pass needs from enforce(). */
interface Enforced {
  leaseValid: boolean;
  /** The attempts that should run here now, by runKey. */
  want: Map<string, Assignment>;
  /** The ones the runtime ran when enforce() looked. */
  runningIds: Set<string>;
  /** What the replicated state assigned here when enforce() looked, lease or not. */
  assigned: Assignment[];
}

/** Reasons proposed into the replicated records: under COMMAND_LIMITS.reasonBytes. */
const FAILURE_MAX_BYTES = 1000;

function truncateUtf8(text: string, maxBytes: number): string {
  return Buffer.from(text).subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '');
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
