// Read-only projections of the tables in the shapes docs/api.md promises. Every view is a
// fresh copy: the HTTP layer can keep or change it without touching the state.
// Timestamps are milliseconds since the epoch (numbers), as carried in commands.
import type { CheckpointPolicy, CheckpointRef, NodeRole } from './commands.js';
import { type AttemptRecord, type CheckpointRecord, isFinal, type JobRecord, type JobState, type NodeRecord, type NodeState } from './records.js';
import type { Tables } from './snapshot.js';
import { cloneSpec, type JobSpec } from './spec.js';

export interface AttemptView {
  node: string;
  epoch: number;
  /** The checkpoint the attempt was assigned to resume from. */
  fromCheckpoint: CheckpointRef | null;
  /** Why resuming from fromCheckpoint failed (the attempt started from scratch); null when it did not fail. */
  restoreError: string | null;
  /** When the worker reported the start; null before. */
  startedAt: number | null;
  endedAt: number | null;
  reason: string;
  /** Why the node failed the attempt itself (it would not start it, or its outputs exceeded the result cap); null otherwise. */
  failure: string | null;
}

/** A committed checkpoint as GET /v1/jobs/:id shows it; `holders` are the blob's current ones. */
export type CheckpointView = Omit<CheckpointRecord, 'jobId' | 'node' | 'blob'>;

/** GET /v1/jobs/:id */
export interface JobView {
  id: string;
  /** spec.name, repeated for readers of the view: null when the job has none. */
  name: string | null;
  /** spec.labels, likewise. */
  labels: Record<string, string>;
  state: JobState;
  spec: JobSpec;
  node: string | null;
  epoch: number;
  attempts: AttemptView[];
  checkpoints: CheckpointView[];
  policy: CheckpointPolicy;
  exitCode: number | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

/**
 * A row of GET /v1/jobs: what a list shows, without the spec (its command and
 * environment may be hundreds of KiB per job), so a page of rows stays small.
 */
export interface JobSummary {
  id: string;
  name: string | null;
  labels: Record<string, string>;
  state: JobState;
  image: string;
  /** The command's words joined by spaces, cut at COMMAND_LINE_MAX_CHARS characters (then ending with …). */
  commandLine: string;
  node: string | null;
  /** The number of attempts so far: 0 before the first assignment. */
  epoch: number;
  checkpointCount: number;
  exitCode: number | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

export const COMMAND_LINE_MAX_CHARS = 200;

/** One node of GET /v1/cluster. */
export interface NodeView {
  id: string;
  api: string;
  peer: string;
  role: NodeRole;
  voter: boolean;
  state: NodeState;
  /** Last heartbeat (ms since the epoch) from the caller's lease table, else the last replicated sign of life. */
  lastSeenMs: number | null;
  slots: number;
  running: number;
  /** Being drained: nothing new is placed here, and its jobs move off. */
  draining: boolean;
}

/** What a worker must be running: one per open attempt on its node. */
export interface Assignment {
  jobId: string;
  epoch: number;
  spec: JobSpec;
  /** Uploaded file name → blob id. */
  inputs: Record<string, string>;
  policy: CheckpointPolicy;
  /** Where to resume, with what a worker needs to fetch it; null to start from the image. */
  fromCheckpoint: { seq: number; epoch: number; blob: string; bytes: number; logOffset: number; holders: string[] } | null;
  /** When the job's first attempt started (replicated); its timeoutSeconds counts from there. */
  jobStartedAt?: number | null;
}

export function jobView(t: Tables, job: JobRecord): JobView {
  return {
    id: job.id,
    name: job.spec.name,
    labels: { ...job.spec.labels },
    state: job.state,
    spec: cloneSpec(job.spec),
    node: job.node,
    epoch: job.epoch,
    attempts: (t.attempts.get(job.id) ?? []).map(attemptView),
    checkpoints: (t.checkpoints.get(job.id) ?? []).map((c) => checkpointView(t, c)),
    policy: { ...job.policy },
    exitCode: job.exitCode,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
  };
}

export function jobSummary(t: Tables, job: JobRecord): JobSummary {
  return {
    id: job.id,
    name: job.spec.name,
    labels: { ...job.spec.labels },
    state: job.state,
    image: job.spec.image,
    commandLine: commandLine(job.spec.command, COMMAND_LINE_MAX_CHARS),
    node: job.node,
    epoch: job.epoch,
    checkpointCount: t.checkpoints.get(job.id)?.length ?? 0,
    exitCode: job.exitCode,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
  };
}

/**
 * `command` joined by spaces, at most `maxChars` UTF-16 units plus the ellipsis: reads
 * only as much of the command as it shows (a command can be 256 KiB), and never cuts
 * a surrogate pair in two.
 */
export function commandLine(command: readonly string[], maxChars: number): string {
  let line = '';
  for (const [i, word] of command.entries()) {
    line += i === 0 ? word.slice(0, maxChars + 1) : ` ${word.slice(0, maxChars)}`;
    if (line.length > maxChars) {
      const code = line.charCodeAt(maxChars - 1);
      const end = code >= 0xd800 && code <= 0xdbff ? maxChars - 1 : maxChars;
      return `${line.slice(0, end)}…`;
    }
  }
  return line;
}

function attemptView(a: AttemptRecord): AttemptView {
  return {
    node: a.node,
    epoch: a.epoch,
    fromCheckpoint: a.fromCheckpoint === null ? null : { ...a.fromCheckpoint },
    restoreError: a.restoreError ?? null,
    startedAt: a.startedAt,
    endedAt: a.endedAt,
    reason: a.reason,
    failure: a.failure ?? null,
  };
}

/** The holders shown are the blob's current ones (replicas come and go); none once the blob is forgotten (retention). */
export function currentHolders(t: Tables, c: CheckpointRecord): string[] {
  return (t.blobs.get(c.blob)?.holders ?? []).slice();
}

function checkpointView(t: Tables, c: CheckpointRecord): CheckpointView {
  return { seq: c.seq, epoch: c.epoch, at: c.at, bytes: c.bytes, durationMs: c.durationMs, frozenMs: c.frozenMs ?? null, ranMs: c.ranMs ?? null, logOffset: c.logOffset, holders: currentHolders(t, c) };
}

export function nodeView(n: NodeRecord, running: number, lastSeenMs: number | undefined): NodeView {
  return {
    id: n.id,
    api: n.api,
    peer: n.peer,
    role: n.role,
    voter: n.role === 'voter',
    state: n.state,
    lastSeenMs: lastSeenMs ?? n.seenAt,
    slots: n.slots,
    running,
    draining: n.draining,
  };
}

export function findCheckpoint(t: Tables, jobId: string, ref: CheckpointRef): CheckpointRecord | null {
  return (t.checkpoints.get(jobId) ?? []).find((c) => c.epoch === ref.epoch && c.seq === ref.seq) ?? null;
}

export function assignment(t: Tables, job: JobRecord, attempt: AttemptRecord): Assignment {
  // An attempt started again on its node (the box restarted under it) resumes from its
  // own newest committed checkpoint, not from where it began: that is the job's resume point.
  const own = job.latestCheckpoint !== null && job.latestCheckpoint.epoch === attempt.epoch ? job.latestCheckpoint : null;
  const ref = own ?? attempt.fromCheckpoint;
  const from = ref === null ? null : findCheckpoint(t, job.id, ref);
  return {
    jobId: job.id,
    epoch: attempt.epoch,
    spec: cloneSpec(job.spec),
    inputs: { ...job.inputs },
    policy: { ...job.policy },
    fromCheckpoint: from === null ? null : { seq: from.seq, epoch: from.epoch, blob: from.blob, bytes: from.bytes, logOffset: from.logOffset, holders: currentHolders(t, from) },
    jobStartedAt: job.startedAt,
  };
}

/**
 * The blobs the cluster still needs; a node's blob gc deletes the rest (src/blobs):
 * every image; an unfinished job's inputs, its newest committed checkpoint and the one
 * its current attempt resumed from; a finished job's result. Older checkpoints and
 * results of fenced attempts are garbage.
 */
export function liveBlobs(t: Tables): Set<string> {
  const live = new Set<string>();
  for (const b of t.blobs.values()) if (b.kind === 'image') live.add(b.id);
  for (const job of t.jobs.values()) {
    if (isFinal(job.state)) {
      if (job.resultBlob !== null) live.add(job.resultBlob);
      continue;
    }
    for (const id of Object.values(job.inputs)) live.add(id);
    const current = job.epoch > 0 ? t.attempts.get(job.id)?.[job.epoch - 1] : undefined;
    for (const ref of [job.latestCheckpoint, current?.fromCheckpoint ?? null]) {
      const cp = ref === null ? null : findCheckpoint(t, job.id, ref);
      if (cp !== null) live.add(cp.blob);
    }
  }
  return live;
}
