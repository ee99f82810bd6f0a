import type { Envelope } from '../../src/state/commands.js';
import type { ApplyResult } from '../../src/state/result.js';
import type { FakeRunEvent } from '../../src/worker/fake-runtime.js';

/**
 * The whole-node simulator's invariants. The checker sees three things and trusts
 * none of the code under test to tell it the truth:
 *   - the committed log, entry by entry, as the first member to apply each index saw
 *     it (and every other member's apply of the same index, which must agree);
 *   - what each box's runtime really did: starts, restores, freezes, thaws,
 *     checkpoints, exits and stops, and the box crashing under its runs;
 *   - what the clients were told: which jobs were acknowledged.
 * From the log it keeps its own model of every job (attempts, their nodes, when each
 * was fenced, the committed checkpoints and the progress each holds), and asserts:
 *   1. every acknowledged job reaches one final state exactly once, with one accepted
 *      result, from the attempt that was current and open (the epoch fence);
 *   2. no two attempts of a job execute at once, and an attempt fenced in the log
 *      stops executing within the lease bound;
 *   3. a job never resumes from a checkpoint that was not committed;
 *   4. progress is lost only back to the resume point: a run starts from its
 *      attempt's resume checkpoint, and an attempt that restarts never goes back past
 *      a checkpoint it committed itself.
 * A violation is thrown as InvariantViolation, at the step that broke it.
 */

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

interface AttemptModel {
  epoch: number;
  node: string;
  open: boolean;
  /** Simulated time the log closed it (fenced it), or null while open. */
  fencedAtMs: number | null;
  fencedBy: string | null;
  from: { epoch: number; seq: number } | null;
}

interface CheckpointModel {
  epoch: number;
  seq: number;
  blob: string;
  progressMs: number;
}

interface JobModel {
  id: string;
  final: string | null;
  finalIndex: number | null;
  epoch: number;
  attempts: Map<number, AttemptModel>;
  /** Committed checkpoints by `epoch:seq`, in commit order. */
  checkpoints: Map<string, CheckpointModel>;
  latest: CheckpointModel | null;
  /** The accepted result: the attempt whose exit finished the job. */
  result: { epoch: number; exitCode: number; resultBlob: string | null } | null;
}

interface Execution {
  node: string;
  jobId: string;
  epoch: number;
  sinceMs: number;
}

/** What the checker needs to know about blob contents (the simulated disks keep them). */
export interface BlobContents {
  content(blobId: string): string | undefined;
}

export interface CheckerOptions {
  /** An attempt fenced in the log must stop executing within this long (lease timeout + renewal + slack). */
  fenceBoundMs: number;
  blobs: BlobContents;
  /** The checkpoints of a job that node `node` has applied as committed (`epoch:seq`), or null while it is down (for the message only). */
  knownCheckpoints(node: string, jobId: string): Set<string> | null;
}

export interface CheckerStats {
  committed: number;
  jobsAcknowledged: number;
  jobsFinal: number;
  exitsAccepted: number;
  attempts: number;
  starts: number;
  restores: number;
  restoreFallbacks: number;
  checkpointsCommitted: number;
  freezes: number;
  fencedReports: number;
  killedByCrash: number;
  /** Attempts a drained box moved off (jobDrained accepted). */
  jobsDrained: number;
}

export class Checker {
  private readonly jobs = new Map<string, JobModel>();
  /** Runs executing now, by `node job@epoch`. */
  private readonly executing = new Map<string, Execution>();
  /** Per committed index: the data and the result the first member to apply it saw. */
  private readonly applied = new Map<number, { data: string; result: string }>();
  private lastIndex = 0;
  readonly acknowledged = new Set<string>();
  readonly stats: CheckerStats = { committed: 0, jobsAcknowledged: 0, jobsFinal: 0, exitsAccepted: 0, attempts: 0, starts: 0, restores: 0, restoreFallbacks: 0, checkpointsCommitted: 0, freezes: 0, fencedReports: 0, killedByCrash: 0, jobsDrained: 0 };

  constructor(private readonly opts: CheckerOptions) {}

  // ---------------------------------------------------------------- the log

  /**
   * A member applied a committed entry. The first member to reach an index defines it
   * (every index is first applied in increasing order: a member applies a contiguous
   * prefix, or a snapshot some member made of entries it applied one by one); later
   * members must apply the same bytes with the same result.
   */
  onApplied(node: string, index: number, data: Uint8Array, env: Envelope | null, result: ApplyResult, nowMs: number): void {
    const key = { data: Buffer.from(data).toString('base64'), result: JSON.stringify(result) };
    const seen = this.applied.get(index);
    if (seen !== undefined) {
      if (seen.data !== key.data) throw new InvariantViolation('state machine safety', `${node} applied other bytes at index ${index} than the first member to apply it`);
      if (seen.result !== key.result) throw new InvariantViolation('deterministic apply', `${node} got ${key.result} at index ${index}, the first member got ${seen.result}`);
      return;
    }
    if (index <= this.lastIndex) throw new InvariantViolation('harness error', `index ${index} first applied after index ${this.lastIndex}`);
    this.lastIndex = index;
    this.applied.set(index, key);
    this.stats.committed += 1;
    if (env !== null && result.ok) this.commit(index, env, nowMs);
    else if (env !== null && !result.ok && (result.code === 'STALE_EPOCH' || result.code === 'JOB_FINISHED')) this.stats.fencedReports += 1;
  }

  /** Forgets per-index records below `index` (memory): every live member has applied past it. */
  forgetAppliedBelow(index: number): void {
    for (const i of this.applied.keys()) {
      if (i >= index) break;
      this.applied.delete(i);
    }
  }

  private commit(index: number, env: Envelope, nowMs: number): void {
    const cmd = env.cmd;
    switch (cmd.type) {
      case 'submitJob': {
        this.jobs.set(cmd.job.id, { id: cmd.job.id, final: null, finalIndex: null, epoch: 0, attempts: new Map(), checkpoints: new Map(), latest: null, result: null });
        return;
      }
      case 'assignJob': {
        const job = this.job(cmd.jobId, 'assignJob');
        if (job.final !== null) throw new InvariantViolation('final state changed', `job ${job.id} is ${job.final} (index ${job.finalIndex}) but assignJob epoch ${cmd.epoch} was accepted at ${index}`);
        if (cmd.epoch !== job.epoch + 1) throw new InvariantViolation('epoch fence', `assignJob of ${job.id} for epoch ${cmd.epoch} accepted at ${index}; the current epoch is ${job.epoch}`);
        const previous = job.attempts.get(job.epoch);
        if (previous?.open) this.fence(previous, nowMs, `reassigned at ${index}`);
        if (cmd.fromCheckpoint !== null && !job.checkpoints.has(`${cmd.fromCheckpoint.epoch}:${cmd.fromCheckpoint.seq}`)) {
          throw new InvariantViolation('resume from uncommitted checkpoint', `job ${job.id} epoch ${cmd.epoch} assigned to resume from checkpoint ${cmd.fromCheckpoint.seq} of epoch ${cmd.fromCheckpoint.epoch}, which was never committed`);
        }
        job.epoch = cmd.epoch;
        job.attempts.set(cmd.epoch, { epoch: cmd.epoch, node: cmd.node, open: true, fencedAtMs: null, fencedBy: null, from: cmd.fromCheckpoint === null ? null : { ...cmd.fromCheckpoint } });
        this.stats.attempts += 1;
        return;
      }
      case 'jobExited': {
        const job = this.job(cmd.jobId, 'jobExited');
        const attempt = this.currentOpen(job, cmd, index);
        if (job.final !== null) throw new InvariantViolation('one final state', `job ${job.id} finished twice: ${job.final} at ${job.finalIndex}, then an exit of epoch ${cmd.epoch} accepted at ${index}`);
        if (cmd.resultBlob !== undefined) this.checkResultBlob(job, cmd.resultBlob, cmd.epoch, cmd.exitCode);
        this.fence(attempt, nowMs, `exited at ${index}`);
        job.result = { epoch: cmd.epoch, exitCode: cmd.exitCode, resultBlob: cmd.resultBlob ?? null };
        this.finish(job, cmd.exitCode === 0 && cmd.failure === undefined ? 'succeeded' : 'failed', index);
        this.stats.exitsAccepted += 1;
        return;
      }
      case 'checkpointCommitted': {
        const job = this.job(cmd.jobId, 'checkpointCommitted');
        this.currentOpen(job, cmd, index);
        const content = this.opts.blobs.content(cmd.blob);
        const parsed = content === undefined ? null : (JSON.parse(content) as { jobId?: string; epoch?: number; name?: string; progressMs?: number });
        if (parsed === null || parsed.jobId !== job.id || parsed.epoch !== cmd.epoch || parsed.name !== `c${cmd.seq}` || typeof parsed.progressMs !== 'number') {
          throw new InvariantViolation('checkpoint content', `checkpoint ${cmd.seq} of ${job.id} epoch ${cmd.epoch} committed at ${index} names blob ${cmd.blob}, which holds ${content === undefined ? 'nothing known' : content.slice(0, 120)}`);
        }
        const cp = { epoch: cmd.epoch, seq: cmd.seq, blob: cmd.blob, progressMs: parsed.progressMs };
        job.checkpoints.set(`${cmd.epoch}:${cmd.seq}`, cp);
        job.latest = cp;
        this.stats.checkpointsCommitted += 1;
        return;
      }
      case 'jobStarted': {
        const job = this.job(cmd.jobId, 'jobStarted');
        this.currentOpen(job, cmd, index);
        return;
      }
      case 'cancelJob': {
        const job = this.job(cmd.jobId, 'cancelJob');
        if (job.final !== null) throw new InvariantViolation('one final state', `job ${job.id} finished twice: ${job.final} at ${job.finalIndex}, then cancelled at ${index}`);
        const current = job.attempts.get(job.epoch);
        if (current?.open) this.fence(current, nowMs, `cancelled at ${index}`);
        this.finish(job, 'cancelled', index);
        return;
      }
      case 'jobDrained': {
        const job = this.job(cmd.jobId, 'jobDrained');
        this.fence(this.currentOpen(job, cmd, index), nowMs, `drained at ${index}`);
        this.stats.jobsDrained += 1;
        return;
      }
      case 'nodeLost':
      case 'nodeLeft': {
        for (const job of this.jobs.values()) {
          const current = job.attempts.get(job.epoch);
          if (current?.open && current.node === cmd.node) this.fence(current, nowMs, `${cmd.type} ${cmd.node} at ${index}`);
        }
        return;
      }
      case 'forgetJobs': {
        for (const id of cmd.jobIds) {
          const job = this.jobs.get(id);
          if (job && job.final === null) throw new InvariantViolation('final state changed', `job ${id} forgotten at ${index} while ${job.final ?? 'open'}`);
        }
        return;
      }
      default:
        return;
    }
  }

  private job(id: string, what: string): JobModel {
    const job = this.jobs.get(id);
    if (job === undefined) throw new InvariantViolation('unknown job', `${what} of ${id} accepted, but no submitJob of it was`);
    return job;
  }

  /** The epoch fence as the model sees it: a report counts only from the current, open attempt on its node. */
  private currentOpen(job: JobModel, cmd: { type: string; epoch: number; node: string }, index: number): AttemptModel {
    const attempt = job.attempts.get(cmd.epoch);
    if (cmd.epoch !== job.epoch || attempt === undefined || attempt.node !== cmd.node || !attempt.open) {
      const state = attempt === undefined ? 'never assigned' : attempt.open ? `open on ${attempt.node}` : `fenced (${attempt.fencedBy})`;
      throw new InvariantViolation('epoch fence', `${cmd.type} of ${job.id} epoch ${cmd.epoch} from ${cmd.node} accepted at ${index}; that attempt is ${state}, the current epoch is ${job.epoch}`);
    }
    return attempt;
  }

  private checkResultBlob(job: JobModel, blob: string, epoch: number, exitCode: number): void {
    const content = this.opts.blobs.content(blob);
    if (content === undefined) throw new InvariantViolation('one accepted result', `the result of ${job.id} epoch ${epoch} names blob ${blob}, which no box stored`);
    const r = JSON.parse(content) as { jobId?: string; epoch?: number; exitCode?: number };
    if (r.jobId !== job.id || r.epoch !== epoch || r.exitCode !== exitCode) {
      throw new InvariantViolation('one accepted result', `the exit of ${job.id} epoch ${epoch} (code ${exitCode}) names the result of ${r.jobId} epoch ${r.epoch} (code ${r.exitCode})`);
    }
  }

  private fence(attempt: AttemptModel, nowMs: number, by: string): void {
    attempt.open = false;
    attempt.fencedAtMs = nowMs;
    attempt.fencedBy = by;
  }

  private finish(job: JobModel, state: string, index: number): void {
    job.final = state;
    job.finalIndex = index;
    this.stats.jobsFinal += 1;
  }

  // ---------------------------------------------------------------- the clients

  onAcknowledged(jobId: string): void {
    if (!this.acknowledged.has(jobId)) this.stats.jobsAcknowledged += 1;
    this.acknowledged.add(jobId);
  }

  // ---------------------------------------------------------------- the runtimes

  onRunEvent(node: string, e: FakeRunEvent, nowMs: number): void {
    const id = `${node} ${e.jobId}@${e.epoch}`;
    const job = this.jobs.get(e.jobId);
    switch (e.type) {
      case 'start':
      case 'restore': {
        const attempt = job?.attempts.get(e.epoch);
        if (job === undefined || attempt === undefined || attempt.node !== node) {
          throw new InvariantViolation('run without assignment', `${node} ${e.type === 'start' ? 'started' : 'restored'} ${e.jobId} epoch ${e.epoch}, which the log never assigned to it`);
        }
        if (e.type === 'start') {
          this.stats.starts += 1;
          if (e.progressMs !== 0) throw new InvariantViolation('progress', `${node} started ${e.jobId} epoch ${e.epoch} at progress ${e.progressMs}, not 0`);
          if (attempt.from !== null) this.stats.restoreFallbacks += 1;
        } else {
          this.stats.restores += 1;
          this.checkRestore(node, job, attempt, e);
        }
        this.checkOwnCheckpoints(node, job, attempt, e.progressMs);
        this.begin(id, node, e, nowMs);
        return;
      }
      case 'thaw':
        this.begin(id, node, e, nowMs);
        return;
      case 'freeze':
        this.stats.freezes += 1;
        this.executing.delete(id);
        return;
      case 'exit':
      case 'stop':
        this.executing.delete(id);
        return;
      case 'checkpoint':
        return;
    }
  }

  /** The box went down: whatever ran on it stopped executing with it. */
  onBoxDown(node: string): void {
    for (const [id, ex] of this.executing) {
      if (ex.node !== node) continue;
      this.executing.delete(id);
      this.stats.killedByCrash += 1;
    }
  }

  private checkRestore(node: string, job: JobModel, attempt: AttemptModel, e: FakeRunEvent): void {
    const seq = Number((e.checkpoint ?? '').replace(/^c/, ''));
    const key = `${e.fromEpoch}:${seq}`;
    const cp = job.checkpoints.get(key);
    if (cp === undefined) {
      throw new InvariantViolation('resume from uncommitted checkpoint', `${node} resumed ${job.id} epoch ${e.epoch} from checkpoint ${e.checkpoint} of epoch ${e.fromEpoch}, which was never committed`);
    }
    if (cp.progressMs !== e.progressMs) {
      throw new InvariantViolation('progress', `${node} resumed ${job.id} epoch ${e.epoch} at progress ${e.progressMs}; committed checkpoint ${key} holds ${cp.progressMs}`);
    }
    const from = attempt.from;
    const own = e.fromEpoch === attempt.epoch;
    if (!own && (from === null || from.epoch !== e.fromEpoch || from.seq !== seq)) {
      throw new InvariantViolation('progress', `${node} resumed ${job.id} epoch ${e.epoch} from checkpoint ${key}, but its resume point is ${from === null ? 'the start' : `${from.epoch}:${from.seq}`}`);
    }
  }

  /**
   * An attempt that runs again on its node (the box restarted under it, or it was
   * stopped by self-fencing and its lease came back) must not go back past a checkpoint
   * it committed itself: that checkpoint is the job's resume point. Also one whose
   * commit the node had not applied yet: the worker waits for a checkpoint it has in
   * flight before it starts the attempt again (FINDINGS.md 6), and a lease counts only
   * once the node caught up with what was committed (FINDINGS.md 2).
   */
  private checkOwnCheckpoints(node: string, job: JobModel, attempt: AttemptModel, progressMs: number): void {
    let best: CheckpointModel | null = null;
    for (const cp of job.checkpoints.values()) {
      if (cp.epoch !== attempt.epoch || cp.progressMs <= progressMs) continue;
      if (best === null || cp.progressMs > best.progressMs) best = cp;
    }
    if (best !== null) {
      const applied = this.opts.knownCheckpoints(node, job.id)?.has(`${best.epoch}:${best.seq}`) === true;
      throw new InvariantViolation(
        'progress lost past the resume point',
        `${node} ran ${job.id} epoch ${attempt.epoch} again from progress ${progressMs}, though that attempt committed checkpoint ${best.seq} at progress ${best.progressMs} ` +
          `(${applied ? `${node} had applied it` : `its commit was not applied on ${node} yet`})`,
      );
    }
  }

  private begin(id: string, node: string, e: FakeRunEvent, nowMs: number): void {
    for (const other of this.executing.values()) {
      if (other.jobId === e.jobId && other.epoch !== e.epoch) {
        throw new InvariantViolation(
          'two attempts at once',
          `${e.jobId} epoch ${e.epoch} began executing on ${node} (${e.type}) while epoch ${other.epoch} executes on ${other.node} since ${other.sinceMs} ms`,
        );
      }
    }
    this.executing.set(id, { node, jobId: e.jobId, epoch: e.epoch, sinceMs: nowMs });
  }

  // ---------------------------------------------------------------- every step

  /** The checks that depend on time passing: a fenced attempt that goes on executing. */
  checkStep(nowMs: number): void {
    for (const ex of this.executing.values()) {
      const attempt = this.jobs.get(ex.jobId)?.attempts.get(ex.epoch);
      if (attempt === undefined || attempt.fencedAtMs === null) continue;
      if (nowMs - attempt.fencedAtMs > this.opts.fenceBoundMs) {
        throw new InvariantViolation(
          'fenced attempt still executing',
          `${ex.jobId} epoch ${ex.epoch} executes on ${ex.node} ${nowMs - attempt.fencedAtMs} ms after the log fenced it (${attempt.fencedBy}); the bound is ${this.opts.fenceBoundMs} ms`,
        );
      }
    }
  }

  /** After the quiet phase: every acknowledged job is final, exactly once. */
  checkFinal(): void {
    for (const id of this.acknowledged) {
      const job = this.jobs.get(id);
      if (job === undefined) throw new InvariantViolation('acknowledged job lost', `job ${id} was acknowledged but never committed`);
      if (job.final === null) {
        const current = job.attempts.get(job.epoch);
        throw new InvariantViolation('liveness failure: job not final', `job ${id} is not final after the quiet phase: epoch ${job.epoch}${current ? ` on ${current.node}, ${current.open ? 'open' : `fenced (${current.fencedBy})`}` : ''}`);
      }
    }
  }

  /** For the trace and failure reports. */
  describeJob(id: string): string {
    const job = this.jobs.get(id);
    if (!job) return `${id}: unknown`;
    const attempts = [...job.attempts.values()].map((a) => `e${a.epoch}@${a.node}${a.open ? '' : `(${a.fencedBy})`}`).join(' ');
    return `${id}: ${job.final ?? 'open'} epoch ${job.epoch} [${attempts}] checkpoints ${job.checkpoints.size}`;
  }

  isFinal(jobId: string): boolean {
    return this.jobs.get(jobId)?.final != null;
  }

  /** Acknowledged jobs not final yet. */
  openAcknowledged(): number {
    let n = 0;
    for (const id of this.acknowledged) if (this.jobs.get(id)?.final == null) n += 1;
    return n;
  }

  openJobs(): string[] {
    return [...this.jobs.values()].filter((j) => j.final === null).map((j) => j.id);
  }
}
