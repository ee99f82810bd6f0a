// The state machine's tables as bytes, for Raft log compaction:
//   [format version: 1 byte][msgpack payload]
// Tables are written as arrays in their Map order, so a restored state iterates (and
// snapshots) exactly as the original. Integrity (checksums) is the storage layer's job.
import { Packr } from 'msgpackr';
import { isPlainObject } from '../util/parse.js';
import type { AttemptRecord, BlobRecord, CheckpointRecord, JobRecord, NodeRecord, RevokedCert, TokenRecord } from './records.js';
import type { ApplyResult } from './result.js';
import { enabled } from './versions.js';

/**
 * The newest format this build writes and reads. Format 1 (builds before protocol
 * versions) has no cluster version: it is 1. Format 2 carries it. A node writes format 2
 * only once the cluster runs at a version that has it (versions.ts), since a member of
 * an older build must still read what the leader sends it; an older build refuses
 * format 2 by its version byte instead of misreading it.
 */
export const SNAPSHOT_FORMAT_VERSION = 2;

export interface Session {
  /** The last request id applied for this client, and what applying it returned. */
  requestId: number;
  result: ApplyResult;
}

export interface Tables {
  appliedIndex: number;
  jobs: Map<string, JobRecord>;
  /** Per job id, its attempts by epoch (epoch e at position e-1). */
  attempts: Map<string, AttemptRecord[]>;
  /** Per job id, its committed checkpoints in commit order. */
  checkpoints: Map<string, CheckpointRecord[]>;
  nodes: Map<string, NodeRecord>;
  blobs: Map<string, BlobRecord>;
  /** Dedupe table: per client id. */
  sessions: Map<string, Session>;
  /** API tokens by id (hashes only). */
  tokens: Map<string, TokenRecord>;
  /** Whether the first admin token was made (POST /v1/acl/bootstrap): it is made once. */
  aclBootstrapped: boolean;
  /** Node certificates refused from now on, by serial. */
  revokedCerts: Map<string, RevokedCert>;
  /** The protocol version the cluster runs at (src/state/versions.ts); 1 until raised. */
  clusterVersion: number;
}

export function emptyTables(): Tables {
  return {
    appliedIndex: 0,
    jobs: new Map(),
    attempts: new Map(),
    checkpoints: new Map(),
    nodes: new Map(),
    blobs: new Map(),
    sessions: new Map(),
    tokens: new Map(),
    aclBootstrapped: false,
    revokedCerts: new Map(),
    clusterVersion: 1,
  };
}

export class SnapshotFormatError extends Error {
  readonly code = 'SNAPSHOT_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SnapshotFormatError';
  }
}

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

interface Body {
  appliedIndex: number;
  jobs: JobRecord[];
  attempts: Array<[string, AttemptRecord[]]>;
  checkpoints: Array<[string, CheckpointRecord[]]>;
  nodes: NodeRecord[];
  blobs: BlobRecord[];
  sessions: Array<[string, number, ApplyResult]>;
  // Absent in snapshots from before API tokens: empty.
  tokens?: TokenRecord[];
  aclBootstrapped?: boolean;
  revokedCerts?: RevokedCert[];
  // Format 2 on.
  clusterVersion?: number;
}

export function encodeSnapshot(t: Tables): Uint8Array {
  const format = enabled('snapshotFormat2', t.clusterVersion) ? 2 : 1;
  const body: Body = {
    appliedIndex: t.appliedIndex,
    jobs: [...t.jobs.values()],
    attempts: [...t.attempts.entries()],
    checkpoints: [...t.checkpoints.entries()],
    nodes: [...t.nodes.values()],
    blobs: [...t.blobs.values()],
    sessions: [...t.sessions.entries()].map(([client, s]) => [client, s.requestId, s.result]),
    tokens: [...t.tokens.values()],
    aclBootstrapped: t.aclBootstrapped,
    revokedCerts: [...t.revokedCerts.values()],
  };
  if (format >= 2) body.clusterVersion = t.clusterVersion;
  const payload = packr.pack(body);
  const out = new Uint8Array(1 + payload.length);
  out[0] = format;
  out.set(payload, 1);
  return out;
}

/**
 * Decodes a snapshot's tables. The shape is checked down to each row's key; the
 * caller (ClusterState.restore) then asserts the cross-table invariants.
 */
export function decodeSnapshot(bytes: Uint8Array): Tables {
  if (bytes.length < 2) throw new SnapshotFormatError(`state snapshot is ${bytes.length} bytes, too short`);
  const format = bytes[0]!;
  if (format < 1 || format > SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotFormatError(`state snapshot format version ${format}: this build reads formats 1 to ${SNAPSHOT_FORMAT_VERSION}${format > SNAPSHOT_FORMAT_VERSION ? ' (it was written by a newer build)' : ''}`);
  }
  let raw: unknown;
  try {
    raw = packr.unpack(bytes.subarray(1));
  } catch (err) {
    throw new SnapshotFormatError('state snapshot payload does not decode', { cause: err });
  }
  if (!isPlainObject(raw)) throw new SnapshotFormatError('state snapshot payload is not a map');
  const appliedIndex = raw.appliedIndex;
  if (typeof appliedIndex !== 'number' || !Number.isSafeInteger(appliedIndex) || appliedIndex < 0) {
    throw new SnapshotFormatError('state snapshot has no valid appliedIndex');
  }
  return {
    appliedIndex,
    jobs: upgradeJobs(rows<JobRecord>(raw.jobs, 'jobs', 'id')),
    attempts: pairs<AttemptRecord>(raw.attempts, 'attempts'),
    checkpoints: pairs<CheckpointRecord>(raw.checkpoints, 'checkpoints'),
    nodes: upgradeNodes(rows<NodeRecord>(raw.nodes, 'nodes', 'id')),
    blobs: rows<BlobRecord>(raw.blobs, 'blobs', 'id'),
    sessions: sessions(raw.sessions),
    tokens: raw.tokens === undefined ? new Map() : rows<TokenRecord>(raw.tokens, 'tokens', 'id'),
    aclBootstrapped: raw.aclBootstrapped === true,
    revokedCerts: raw.revokedCerts === undefined ? new Map() : rows<RevokedCert>(raw.revokedCerts, 'revokedCerts', 'serial'),
    clusterVersion: format === 1 ? 1 : clusterVersion(raw.clusterVersion),
  };
}

function clusterVersion(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 2) throw new SnapshotFormatError('state snapshot (format 2) has no valid clusterVersion');
  return value;
}

/**
 * Rows written before a field existed get its neutral value, in the key order a new
 * row has, so every node holds (and snapshots) the same bytes whether it replayed the
 * old entries (decoding fills the fields in) or restored an old snapshot.
 */
function upgradeJobs(jobs: Map<string, JobRecord>): Map<string, JobRecord> {
  for (const job of jobs.values()) {
    const spec = job.spec as Partial<JobRecord['spec']> | undefined;
    if (!isPlainObject(spec)) throw new SnapshotFormatError(`state snapshot: job ${job.id} has no spec`);
    if (spec.name === undefined || spec.labels === undefined) job.spec = { ...job.spec, name: spec.name ?? null, labels: spec.labels ?? {} };
  }
  return jobs;
}

function upgradeNodes(nodes: Map<string, NodeRecord>): Map<string, NodeRecord> {
  for (const node of nodes.values()) {
    const draining = (node as Partial<NodeRecord>).draining;
    if (draining === undefined) node.draining = false;
    else if (typeof draining !== 'boolean') throw new SnapshotFormatError(`state snapshot: node ${node.id} has a draining that is not a boolean`);
  }
  return nodes;
}

function rows<T>(value: unknown, table: string, key: string): Map<string, T> {
  if (!Array.isArray(value)) throw new SnapshotFormatError(`state snapshot: ${table} is not an array`);
  const out = new Map<string, T>();
  for (const row of value) {
    if (!isPlainObject(row) || typeof row[key] !== 'string') throw new SnapshotFormatError(`state snapshot: a row of ${table} has no ${key}`);
    out.set(row[key], row as T);
  }
  return out;
}

function pairs<T>(value: unknown, table: string): Map<string, T[]> {
  if (!Array.isArray(value)) throw new SnapshotFormatError(`state snapshot: ${table} is not an array`);
  const out = new Map<string, T[]>();
  for (const pair of value) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || !Array.isArray(pair[1]) || !pair[1].every(isPlainObject)) {
      throw new SnapshotFormatError(`state snapshot: ${table} has a malformed entry`);
    }
    out.set(pair[0], pair[1] as T[]);
  }
  return out;
}

function sessions(value: unknown): Map<string, Session> {
  if (!Array.isArray(value)) throw new SnapshotFormatError('state snapshot: sessions is not an array');
  const out = new Map<string, Session>();
  for (const s of value) {
    if (!Array.isArray(s) || s.length !== 3 || typeof s[0] !== 'string' || typeof s[1] !== 'number' || !isPlainObject(s[2]) || typeof s[2].ok !== 'boolean') {
      throw new SnapshotFormatError('state snapshot: sessions has a malformed entry');
    }
    out.set(s[0], { requestId: s[1], result: s[2] as ApplyResult });
  }
  return out;
}
