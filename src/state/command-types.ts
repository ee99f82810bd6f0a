// The commands of the replicated state machine and their envelope: the shapes that
// travel in the Raft log, and the bounds decoding holds them to (commands.ts).
import type { FieldError } from './parse.js';
import type { CheckpointMode, WireJobSpec } from './spec.js';
/** Version of the envelope and command shapes. A change of shape gets a new version. */
export const COMMAND_VERSION = 1;

export interface Envelope {
  v: 1;
  /**
   * The proposer (a gateway or the leader's scheduler) in one incarnation. Its
   * request ids increase with every new request and are never reused; a retry of a
   * request reuses its id. See README.md, "Dedupe".
   */
  clientId: string;
  requestId: number;
  /** Milliseconds since the epoch, read from the proposer's clock when proposing. */
  at: number;
  cmd: Command;
}

export type NodeRole = 'voter' | 'learner';
/** What an API token may do: read ⊂ submit ⊂ admin (src/api/roles.ts). */
export type TokenRole = 'read' | 'submit' | 'admin';
export const TOKEN_ROLES: readonly TokenRole[] = ['read', 'submit', 'admin'];
export type BlobKind = 'image' | 'input' | 'result' | 'checkpoint';
export const BLOB_KINDS: readonly BlobKind[] = ['image', 'input', 'result', 'checkpoint'];

/** Identifies a checkpoint of a job: the attempt (epoch) that made it and its number in that attempt. */
export interface CheckpointRef {
  seq: number;
  epoch: number;
}

export interface CheckpointPolicy {
  mode: CheckpointMode;
  /** The interval in force; null when off, or when auto has not computed one yet. */
  intervalSeconds: number | null;
  /** Why this interval: shown to users. */
  reason: string;
}

export interface NodeVersions {
  docker: string;
  criu: string;
  kernel: string;
}

export interface NodeInfo {
  id: string;
  /** host:port of the HTTP API. */
  api: string;
  /** host:port of the peer link. */
  peer: string;
  slots: number;
  memoryMB: number;
  versions: NodeVersions;
  /** A new node is a learner unless given; a rejoining node keeps its role unless given. */
  role?: NodeRole;
  /** Serial (lower-case hex) of the node's certificate, in secure mode. */
  cert?: string;
}

/** A new API token, as proposed: the gateway drew its id and secret and sends only the secret's hash. */
export interface TokenInfo {
  id: string;
  name: string;
  role: TokenRole;
  /** Hex SHA-256 of the token's secret part. */
  hash: string;
  createdAt: number;
  /** Milliseconds since the epoch; null: never expires. */
  expiresAt: number | null;
}

export interface NewJob {
  id: string;
  /** Decoded from the log, it is whole (validateJobSpec); proposed, its later fields may be left out (spec.ts wireSpec). */
  spec: WireJobSpec;
  createdAt: number;
  /** Uploaded file name → blob id of its content. Must name exactly spec.files. */
  inputs?: Record<string, string>;
}

export type Command =
  /**
   * `maxPending`: the proposing gateway's cap on pending jobs (its maxPendingJobs
   * setting, carried here so that apply decides it the same on every node): refused
   * with TOO_MANY_PENDING when that many jobs are pending. Absent: no cap (entries
   * proposed before the field existed).
   */
  | { type: 'submitJob'; job: NewJob; maxPending?: number }
  | { type: 'cancelJob'; jobId: string }
  | { type: 'assignJob'; jobId: string; node: string; epoch: number; fromCheckpoint: CheckpointRef | null; reason: string }
  /** `restoreError`: the attempt was to resume from a checkpoint, the restore failed, it started from scratch. */
  | { type: 'jobStarted'; jobId: string; epoch: number; node: string; restoreError?: string }
  /**
   * `failure`: why the node failed the attempt itself, whatever its exit code (it may
   * not start it, or its outputs exceed the node's result cap); the job then fails.
   */
  | { type: 'jobExited'; jobId: string; epoch: number; node: string; exitCode: number; resultBlob?: string; failure?: string }
  | {
      type: 'checkpointCommitted';
      jobId: string;
      epoch: number;
      node: string;
      seq: number;
      blob: string;
      bytes: number;
      /** The whole checkpoint: capture, export, store (the job runs again during most of it). */
      durationMs: number;
      /** How long the job was frozen: what the checkpoint cost the job (C of the model). Absent from older workers. */
      frozenMs?: number;
      /**
       * How long this attempt's job had run when it was frozen for this checkpoint, less
       * the freezes of its earlier checkpoints: the work it holds beyond the checkpoint the
       * attempt resumed from. Measured on the worker's own clock. Absent from older workers.
       */
      ranMs?: number;
      /** Bytes of the job's output log covered by this checkpoint. */
      logOffset: number;
      holders: string[];
    }
  | { type: 'setPolicy'; jobId: string; policy: CheckpointPolicy }
  | { type: 'nodeJoined'; node: NodeInfo }
  | { type: 'nodeAlive'; node: string }
  | { type: 'nodeSuspect'; node: string }
  | { type: 'nodeLost'; node: string }
  | { type: 'nodeLeft'; node: string }
  | { type: 'setRole'; node: string; role: NodeRole }
  /** An operator drains a node (`workrs nodes drain`), or undoes it. */
  | { type: 'setDraining'; node: string; draining: boolean }
  /** The worker of a draining node took the attempt's last checkpoint and stopped it: the job waits for another node. */
  | { type: 'jobDrained'; jobId: string; epoch: number; node: string }
  /**
   * `name`: for an image, the references it provides. `replace`: whether those
   * references may be taken from other image blobs; false refuses the command with
   * IMAGE_EXISTS if any of them names another image. Absent (entries proposed before
   * the field existed): they move, newest wins.
   */
  | { type: 'blobAdded'; id: string; kind: BlobKind; bytes: number; holders: string[]; name?: string; replace?: boolean }
  | { type: 'blobHolders'; id: string; holders: string[] }
  /**
   * Retention (the leader's, src/scheduler/retention.ts): forgets each listed job that
   * is final and finished at or before `finishedBefore`, with its attempts and
   * checkpoints; any other listed id is skipped. Its blobs go with forgetBlobs.
   */
  | { type: 'forgetJobs'; jobIds: string[]; finishedBefore: number }
  /** Forgets each listed blob that no job needs any more (views.ts liveBlobs) and was last added at or before `addedBefore`. */
  | { type: 'forgetBlobs'; ids: string[]; addedBefore: number }
  /** The first admin token; refused with ACL_BOOTSTRAPPED once one was made. */
  | { type: 'aclBootstrap'; token: TokenInfo }
  | { type: 'tokenCreated'; token: TokenInfo }
  | { type: 'tokenRevoked'; id: string }
  /**
   * New in protocol 2 (versions.ts). The leader raises the cluster version once every
   * member speaks `version`; a node whose build does not speak it stops at this entry.
   */
  | { type: 'setClusterVersion'; version: number }
  /**
   * New in protocol 2. Every node hashes its state as it is at this entry (digest.ts) and
   * reports the hash with its lease renewals; the leader compares them (divergence).
   */
  | { type: 'checkState' };

export type CommandType = Command['type'];

/** A committed entry that is not a valid envelope. Deterministic: every node of one version rejects the same bytes. */
export class InvalidCommandError extends Error {
  readonly code = 'INVALID_COMMAND';
  constructor(
    readonly errors: FieldError[],
    options?: { cause?: unknown },
  ) {
    super(`invalid command: ${errors.map((e) => `${e.field || '(envelope)'}: ${e.message}`).join('; ')}`, options);
    this.name = 'InvalidCommandError';
  }
}

/**
 * A committed entry this build does not know: a command type, an envelope version or a
 * field from a newer build. Unlike InvalidCommandError it is never applied as a no-op
 * (the node would fall behind its peers' state): ClusterState.applyBytes stops the node.
 */
export class UnknownCommandError extends Error {
  readonly code = 'UNKNOWN_COMMAND';
  constructor(readonly detail: string) {
    super(`a command this build does not know: ${detail}`);
    this.name = 'UnknownCommandError';
  }
}

export const COMMAND_LIMITS = {
  reasonBytes: 1024,
  nameBytes: 1024,
  addressBytes: 256,
  versionBytes: 256,
  holders: 256,
  /** Ids per forgetJobs / forgetBlobs. */
  forgetBatch: 256,
  maxSlots: 4096,
  maxMemoryMB: 1024 * 1024 * 1024,
  tokenNameBytes: 64,
  /** API tokens the cluster keeps at most. */
  maxTokens: 10_000,
  /** The highest protocol version a command may name (a sanity bound, far above any real one). */
  maxProtocolVersion: 1_000_000,
} as const;
