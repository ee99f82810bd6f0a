// The rows of the replicated tables. Every field is always present (null for "none"),
// and records are only built by the state machine's apply handlers, so a record's keys are
// in one fixed order: a snapshot of equal state is equal bytes.
import type { BlobKind, CheckpointPolicy, CheckpointRef, NodeRole, NodeVersions, TokenInfo } from './commands.js';
import type { JobSpec } from './spec.js';

/**
 * pending: submitted, or its attempt's node was lost/left, and no node runs it.
 * running: assigned to a node (an open attempt), whether or not the worker has
 *   reported jobStarted yet.
 * succeeded | failed: the current attempt reported exit code 0 | non-zero. Final.
 * cancelled: cancelJob while pending or running. Final.
 */
export type JobState = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const JOB_STATES: readonly JobState[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

export function isFinal(state: JobState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled';
}

export interface JobRecord {
  id: string;
  /** Log index of the submitJob entry: the order of jobs, oldest first. */
  order: number;
  spec: JobSpec;
  inputs: Record<string, string>;
  state: JobState;
  /** Epoch of the newest attempt; 0 before the first assignment. */
  epoch: number;
  /** Node of the newest attempt while running, and after it exited or was cancelled; null while pending. */
  node: string | null;
  policy: CheckpointPolicy;
  /** The newest committed checkpoint: where the next attempt resumes. */
  latestCheckpoint: CheckpointRef | null;
  exitCode: number | null;
  resultBlob: string | null;
  createdAt: number;
  /** When an attempt first reported jobStarted. */
  startedAt: number | null;
  finishedAt: number | null;
}

/** Why an attempt ended. */
export type AttemptEnd = 'exited' | 'cancelled' | 'nodeLost' | 'nodeLeft' | 'reassigned' | 'drained';

export interface AttemptRecord {
  jobId: string;
  epoch: number;
  node: string;
  fromCheckpoint: CheckpointRef | null;
  /** Why the attempt was assigned (from assignJob). */
  reason: string;
  assignedAt: number;
  /** Set when the attempt was to resume from fromCheckpoint and could not: it started from scratch. Absent in records from before it existed. */
  restoreError: string | null;
  startedAt: number | null;
  endedAt: number | null;
  end: AttemptEnd | null;
  exitCode: number | null;
  /** Why the node failed the attempt itself (commands.ts jobExited `failure`). Absent in records from before it existed. */
  failure: string | null;
}

export interface CheckpointRecord {
  jobId: string;
  epoch: number;
  seq: number;
  /** The node that made it. */
  node: string;
  blob: string;
  bytes: number;
  durationMs: number;
  /** How long the job was frozen by it; null when the worker did not report it. */
  frozenMs: number | null;
  /** How long the attempt had run (its freezes excluded, commands.ts) when it took this checkpoint; null when not reported. */
  ranMs: number | null;
  /** Bytes of the job's log the checkpoint covers: a job resumed from it continues its log from there. */
  logOffset: number;
  /** Holders when committed; the blobs table has the current ones. */
  holders: string[];
  at: number;
}

/**
 * alive: placeable. suspect: its lease is late; keeps its jobs, gets no new ones.
 * lost: the leader declared it dead; its jobs were re-queued. left: it left
 * gracefully; same effect on its jobs. nodeJoined or nodeAlive bring it back.
 */
export type NodeState = 'alive' | 'suspect' | 'lost' | 'left';

export interface NodeRecord {
  id: string;
  api: string;
  peer: string;
  role: NodeRole;
  state: NodeState;
  slots: number;
  memoryMB: number;
  versions: NodeVersions;
  joinedAt: number;
  /** `at` of the last nodeJoined/nodeAlive: a replicated, coarse "last seen". */
  seenAt: number;
  stateSince: number;
  /** Times the leader declared it lost; with upMs, what the failure-rate estimate learns from (src/policy). */
  losses: number;
  /** Milliseconds spent alive or suspect before stateSince (add now − stateSince while it is up). */
  upMs: number;
  /** Serial of the certificate it registered with (secure mode); revoked when it leaves or registers another. */
  cert?: string;
  /**
   * Being drained (setDraining): the scheduler places nothing on it, and its worker
   * moves its jobs off (a last checkpoint, then jobDrained). Survives its restarts and
   * rejoins until undone. False in records from before draining (snapshot.ts).
   */
  draining: boolean;
}

/** An API token as the cluster keeps it: what tokenCreated carried (never the secret, only its SHA-256). */
export type TokenRecord = TokenInfo;

/** A node certificate refused from now on (its node left, or registered a newer one). */
export interface RevokedCert {
  serial: string;
  node: string;
  at: number;
}

export interface BlobRecord {
  id: string;
  kind: BlobKind;
  bytes: number;
  holders: string[];
  /**
   * For images: the references the image provides (e.g. `workrs/busybox:1`),
   * separated by single spaces (a reference contains none); null when it provides
   * none (any more: a newer import took them).
   */
  name: string | null;
  /** When it was first added; for checkpoints, inputs and results, when it was last added again (retention counts from there). */
  addedAt: number;
}

/** The references listed in an image blob's `name`. */
export function imageReferences(name: string | null): string[] {
  return name === null ? [] : name.split(' ').filter((r) => r !== '');
}
