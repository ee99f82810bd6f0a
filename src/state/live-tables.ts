// The state machine's tables together with what is derived from them (the open jobs,
// the submission order) and the row lookups every command handler uses. The derived
// parts are rebuilt from the tables on restore and never go into a snapshot.
import type { Command } from './commands.js';
import type { AttemptEnd, AttemptRecord, CheckpointRecord, JobRecord, JobState, NodeRecord } from './records.js';
import { isFinal } from './records.js';
import { rejected, type ApplyResult } from './result.js';
import { emptyTables, type Tables } from './snapshot.js';
import type { JobSpec } from './spec.js';

/** The command of type T. */
export type Cmd<T extends Command['type']> = Extract<Command, { type: T }>;

/** Slots and memory taken on a node by its open attempts. */
export interface NodeUsage {
  running: number;
  memoryMB: number;
}

export interface ClusterStateOptions {
  /**
   * UNSAFE, tests only (a mutant of the whole-node simulator): jobExited and
   * checkpointCommitted are accepted from any attempt of an unfinished job, without
   * the epoch check that fences stale attempts off. Never set in a real node.
   */
  acceptExitWithoutEpochCheck?: boolean;
}

/** A node's state hash at a log index (checkState). */
export interface StateCheck {
  index: number;
  hash: string;
}

/** How many state checks a node keeps: enough for the leader to find a follower's among its own. */
export const STATE_CHECKS_KEPT = 32;

export class LiveTables {
  /** Ids of pending and running jobs, in submission order (a job never reopens). */
  readonly open: Set<string>;
  /** Names of the pending and running jobs that have one → their ids: a name is unique among them (submitJob). */
  readonly openNames = new Map<string, string>();
  /** Ids of pending jobs (submission order, except requeued jobs come last). */
  readonly pending = new Set<string>();
  /** Per node, the ids of the jobs running there, and what they use. */
  private readonly running = new Map<string, { jobs: Set<string>; usage: NodeUsage }>();
  /** The jobs in submission order (= `jobs` Map order), for paging by position. */
  byOrder: JobRecord[];
  /** Nodes that went lost or left since this object was made: a cheap change signal for the node. */
  departures = 0;
  /** nodeJoined commands applied since this object was made (addresses may have changed): likewise. */
  registrations = 0;
  /** The newest state checks (checkState) this node applied, oldest first: not replicated, not in snapshots. */
  readonly stateChecks: StateCheck[] = [];

  // The indexes (open, pending, running) are derived: the apply handlers change a
  // job's state only through open/markRunning/markPending/finish, which keep them in
  // step, so every query a submission or a plan round makes costs in proportion to
  // what it returns, not to the table.
  constructor(
    readonly t: Tables = emptyTables(),
    readonly options: Readonly<ClusterStateOptions> = {},
  ) {
    this.open = new Set();
    for (const job of t.jobs.values()) {
      if (isFinal(job.state)) continue;
      this.open.add(job.id);
      if (job.spec.name !== null) this.openNames.set(job.spec.name, job.id);
      if (job.state === 'pending') this.pending.add(job.id);
      else if (job.node !== null) this.addRunning(job, job.node);
    }
    this.byOrder = [...t.jobs.values()];
  }

  /** A state check this node applied (checkState); the oldest beyond STATE_CHECKS_KEPT is dropped. */
  recordCheck(check: StateCheck): void {
    this.stateChecks.push(check);
    if (this.stateChecks.length > STATE_CHECKS_KEPT) this.stateChecks.shift();
  }

  job(id: string): JobRecord {
    const job = this.t.jobs.get(id);
    if (job === undefined) throw new Error(`state machine: open job ${id} is not in the jobs table`);
    return job;
  }

  attemptsOf(jobId: string): AttemptRecord[] {
    const list = this.t.attempts.get(jobId);
    if (list === undefined) throw new Error(`state machine: job ${jobId} has no attempts row`);
    return list;
  }

  checkpointsOf(jobId: string): CheckpointRecord[] {
    const list = this.t.checkpoints.get(jobId);
    if (list === undefined) throw new Error(`state machine: job ${jobId} has no checkpoints row`);
    return list;
  }

  /** Pending and running jobs, oldest first. */
  openJobs(): JobRecord[] {
    return [...this.open].map((id) => this.job(id));
  }

  /** Pending jobs, oldest first. */
  pendingJobs(): JobRecord[] {
    return [...this.pending].map((id) => this.job(id)).sort((a, b) => a.order - b.order);
  }

  /** The jobs running on `node`, oldest first. */
  runningOn(node: string): JobRecord[] {
    const ids = this.running.get(node)?.jobs ?? [];
    return [...ids].map((id) => this.job(id)).sort((a, b) => a.order - b.order);
  }

  /** Every running job, oldest first. */
  runningJobs(): JobRecord[] {
    const out: JobRecord[] = [];
    for (const r of this.running.values()) for (const id of r.jobs) out.push(this.job(id));
    return out.sort((a, b) => a.order - b.order);
  }

  pendingCount(): number {
    return this.pending.size;
  }

  /** Usage of every node that has open attempts (others use nothing); a copy. */
  usageByNode(): Map<string, NodeUsage> {
    const usage = new Map<string, NodeUsage>();
    for (const [node, r] of this.running) usage.set(node, { ...r.usage });
    return usage;
  }

  /** What `node`'s open attempts use; a copy. */
  usageOf(node: string): NodeUsage {
    const u = this.running.get(node)?.usage;
    return u === undefined ? { running: 0, memoryMB: 0 } : { ...u };
  }

  /** A new job: pending. */
  openJob(job: JobRecord): void {
    job.state = 'pending';
    job.node = null;
    this.open.add(job.id);
    this.pending.add(job.id);
    if (job.spec.name !== null) this.openNames.set(job.spec.name, job.id);
  }

  /** The job runs on `node` now (from pending, or moved from another node). */
  markRunning(job: JobRecord, node: string): void {
    this.leave(job);
    job.state = 'running';
    job.node = node;
    this.addRunning(job, node);
  }

  /** The job waits for a node again (its node went away). */
  markPending(job: JobRecord): void {
    this.leave(job);
    job.state = 'pending';
    job.node = null;
    this.pending.add(job.id);
  }

  endAttempt(job: JobRecord, at: number, end: AttemptEnd, exitCode: number | null): void {
    const attempt = this.attemptsOf(job.id)[job.epoch - 1];
    if (attempt === undefined || attempt.end !== null) throw new Error(`state machine: job ${job.id} has no open attempt ${job.epoch} to end`);
    attempt.endedAt = at;
    attempt.end = end;
    attempt.exitCode = exitCode;
  }

  finish(job: JobRecord, at: number, state: JobState): void {
    this.leave(job);
    job.state = state;
    job.finishedAt = at;
    this.open.delete(job.id);
    if (job.spec.name !== null && this.openNames.get(job.spec.name) === job.id) this.openNames.delete(job.spec.name);
  }

  /** Takes the job out of the pending set or its node's running set. */
  private leave(job: JobRecord): void {
    this.pending.delete(job.id);
    if (job.state !== 'running' || job.node === null) return;
    const r = this.running.get(job.node);
    if (r === undefined || !r.jobs.delete(job.id)) return;
    r.usage.running -= 1;
    r.usage.memoryMB -= job.spec.memoryMB ?? 0;
    if (r.jobs.size === 0) this.running.delete(job.node);
  }

  private addRunning(job: JobRecord, node: string): void {
    let r = this.running.get(node);
    if (r === undefined) {
      r = { jobs: new Set(), usage: { running: 0, memoryMB: 0 } };
      this.running.set(node, r);
    }
    r.jobs.add(job.id);
    r.usage.running += 1;
    r.usage.memoryMB += job.spec.memoryMB ?? 0;
  }
}

/** Whether a job fits next to `usage` on a node: a free slot, and its memory (when declared) within the node's. */
export function fits(node: Readonly<NodeRecord>, usage: NodeUsage, spec: JobSpec): boolean {
  if (usage.running >= node.slots) return false;
  return spec.memoryMB === null || usage.memoryMB + spec.memoryMB <= node.memoryMB;
}

/** Code-unit order of ids (not locale order): the same on every machine. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function notFound(jobId: string): ApplyResult {
  return rejected('JOB_NOT_FOUND', `job ${jobId} does not exist`);
}

export function finished(job: JobRecord): ApplyResult {
  return rejected('JOB_FINISHED', `job ${job.id} is ${job.state} already`);
}

export function unknownNode(id: string): ApplyResult {
  return rejected('NODE_UNKNOWN', `node ${id} is not a member`);
}
