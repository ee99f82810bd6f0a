// The commands of the replicated state machine and their envelope, as they travel in
// the Raft log (msgpackr). Every node decodes each committed entry with
// decodeEnvelope, so the checks here are the boundary between bytes and types.
// Time and ids are chosen by the proposer and carried in the command: apply() never
// reads a clock or draws a random number.
import { Packr } from 'msgpackr';
import { type FieldError, isId, isPlainObject, joinPath, unknownKeys, utf8Bytes } from './parse.js';
import { type CheckpointMode, type JobSpec, validateJobSpec } from './spec.js';

export { validateJobSpec, type JobSpec, type CheckpointMode, type SpecResult } from './spec.js';
export type { FieldError } from './parse.js';

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
  spec: JobSpec;
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
  | { type: 'tokenRevoked'; id: string };

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
} as const;

// ---------------------------------------------------------------------------
// Reading untrusted objects: each reader method returns the typed value or throws
// InvalidCommandError naming the field's full path.

class Fields {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly path: string,
  ) {}

  static of(value: unknown, path: string, allowed: readonly string[]): Fields {
    if (!isPlainObject(value)) fail(path, 'must be an object');
    const extra = unknownKeys(value, allowed);
    if (extra.length > 0) fail(joinPath(path, extra[0]!), `unknown field (allowed: ${allowed.join(', ')})`);
    return new Fields(value, path);
  }

  raw(key: string): unknown {
    return this.obj[key];
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  at(key: string): string {
    return joinPath(this.path, key);
  }

  id(key: string): string {
    const v = this.obj[key];
    if (!isId(v)) fail(this.at(key), 'must be an id (1 to 256 printable ASCII characters, no spaces)');
    return v;
  }

  text(key: string, maxBytes: number): string {
    const v = this.obj[key];
    if (typeof v !== 'string') fail(this.at(key), 'must be a string');
    if (utf8Bytes(v) > maxBytes) fail(this.at(key), `must be at most ${maxBytes} bytes`);
    return v;
  }

  /** A safe integer in [min, max]. */
  pattern(key: string, re: RegExp, what: string): string {
    const v = this.raw(key);
    if (typeof v !== 'string' || !re.test(v)) fail(this.at(key), `must be ${what}`);
    return v;
  }

  int(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(this.at(key), `must be an integer from ${min} to ${max}`);
    return v;
  }

  /** A finite number ≥ 0. */
  nonNegative(key: string): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(this.at(key), 'must be a finite number ≥ 0');
    return v;
  }

  bool(key: string): boolean {
    const v = this.obj[key];
    if (typeof v !== 'boolean') fail(this.at(key), 'must be true or false');
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T {
    const v = this.obj[key];
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) fail(this.at(key), `must be one of ${values.join(', ')}`);
    return v as T;
  }

  /** A list of distinct node ids. */
  holders(key: string, minCount: number): string[] {
    return this.ids(key, minCount, COMMAND_LIMITS.holders, 'node');
  }

  /** An array of distinct ids, minCount to maxCount of them. */
  ids(key: string, minCount: number, maxCount: number, what = ''): string[] {
    const v = this.obj[key];
    const field = this.at(key);
    const noun = what ? `${what} ids` : 'ids';
    if (!Array.isArray(v)) fail(field, `must be an array of ${noun}`);
    if (v.length < minCount || v.length > maxCount) fail(field, `must list ${minCount} to ${maxCount} ${what ? `${what}s` : 'ids'}`);
    const seen = new Set<string>();
    v.forEach((h: unknown, i) => {
      if (!isId(h)) fail(joinPath(field, i), `must be ${what ? `a ${what} id` : 'an id'}`);
      if (seen.has(h)) fail(joinPath(field, i), `"${h}" is listed twice`);
      seen.add(h);
    });
    return v.slice() as string[];
  }
}

function fail(field: string, message: string): never {
  throw new InvalidCommandError([{ field, message }]);
}

const ENVELOPE_FIELDS = ['v', 'clientId', 'requestId', 'at', 'cmd'] as const;

/**
 * Validates a decoded value (msgpackr output) as an envelope and returns it typed,
 * with a submitted job's spec normalized. Throws InvalidCommandError otherwise.
 */
export function decodeEnvelope(value: unknown): Envelope {
  if (isPlainObject(value) && value.v !== COMMAND_VERSION && value.v !== undefined) {
    fail('v', `unsupported command version ${String(value.v)} (this node reads version ${COMMAND_VERSION})`);
  }
  const f = Fields.of(value, '', ENVELOPE_FIELDS);
  if (f.raw('v') !== COMMAND_VERSION) fail('v', `must be ${COMMAND_VERSION}`);
  return {
    v: COMMAND_VERSION,
    clientId: f.id('clientId'),
    requestId: f.int('requestId', 1),
    at: f.int('at', 0),
    cmd: decodeCommand(f.raw('cmd')),
  };
}

const COMMAND_FIELDS: { readonly [T in CommandType]: readonly string[] } = {
  submitJob: ['type', 'job', 'maxPending'],
  cancelJob: ['type', 'jobId'],
  assignJob: ['type', 'jobId', 'node', 'epoch', 'fromCheckpoint', 'reason'],
  jobStarted: ['type', 'jobId', 'epoch', 'node', 'restoreError'],
  jobExited: ['type', 'jobId', 'epoch', 'node', 'exitCode', 'resultBlob', 'failure'],
  checkpointCommitted: ['type', 'jobId', 'epoch', 'node', 'seq', 'blob', 'bytes', 'durationMs', 'frozenMs', 'ranMs', 'logOffset', 'holders'],
  setPolicy: ['type', 'jobId', 'policy'],
  nodeJoined: ['type', 'node'],
  nodeAlive: ['type', 'node'],
  nodeSuspect: ['type', 'node'],
  nodeLost: ['type', 'node'],
  nodeLeft: ['type', 'node'],
  setRole: ['type', 'node', 'role'],
  blobAdded: ['type', 'id', 'kind', 'bytes', 'holders', 'name', 'replace'],
  blobHolders: ['type', 'id', 'holders'],
  forgetJobs: ['type', 'jobIds', 'finishedBefore'],
  forgetBlobs: ['type', 'ids', 'addedBefore'],
  aclBootstrap: ['type', 'token'],
  tokenCreated: ['type', 'token'],
  tokenRevoked: ['type', 'id'],
};

function isCommandType(value: unknown): value is CommandType {
  return typeof value === 'string' && Object.hasOwn(COMMAND_FIELDS, value);
}

/** Exit codes as a process reports them; a negative one means "never ran" (e.g. -1 from a failed start). */
const EXIT_CODE_MIN = -(2 ** 31);
const EXIT_CODE_MAX = 2 ** 31 - 1;

function decodeCommand(value: unknown): Command {
  if (!isPlainObject(value)) fail('cmd', 'must be an object');
  const type = value.type;
  if (!isCommandType(type)) fail('cmd.type', `unknown command type ${JSON.stringify(type)}`);
  const f = Fields.of(value, 'cmd', COMMAND_FIELDS[type]);
  switch (type) {
    case 'submitJob': {
      const cmd: Command = { type, job: decodeNewJob(f.raw('job')) };
      if (f.has('maxPending')) cmd.maxPending = f.int('maxPending', 1);
      return cmd;
    }
    case 'cancelJob':
      return { type, jobId: f.id('jobId') };
    case 'assignJob':
      return {
        type,
        jobId: f.id('jobId'),
        node: f.id('node'),
        epoch: f.int('epoch', 1),
        fromCheckpoint: f.has('fromCheckpoint') ? decodeCheckpointRef(f.raw('fromCheckpoint'), f.at('fromCheckpoint')) : null,
        reason: f.text('reason', COMMAND_LIMITS.reasonBytes),
      };
    case 'jobStarted': {
      const cmd: Command = { type, jobId: f.id('jobId'), epoch: f.int('epoch', 1), node: f.id('node') };
      if (f.has('restoreError')) cmd.restoreError = f.text('restoreError', COMMAND_LIMITS.reasonBytes);
      return cmd;
    }
    case 'jobExited': {
      const cmd: Command = { type, jobId: f.id('jobId'), epoch: f.int('epoch', 1), node: f.id('node'), exitCode: f.int('exitCode', EXIT_CODE_MIN, EXIT_CODE_MAX) };
      if (f.has('resultBlob')) cmd.resultBlob = f.id('resultBlob');
      if (f.has('failure')) cmd.failure = f.text('failure', COMMAND_LIMITS.reasonBytes);
      return cmd;
    }
    case 'checkpointCommitted':
      return {
        type,
        jobId: f.id('jobId'),
        epoch: f.int('epoch', 1),
        node: f.id('node'),
        seq: f.int('seq', 1),
        blob: f.id('blob'),
        bytes: f.int('bytes', 0),
        durationMs: f.nonNegative('durationMs'),
        ...(f.has('frozenMs') ? { frozenMs: f.nonNegative('frozenMs') } : {}),
        ...(f.has('ranMs') ? { ranMs: f.nonNegative('ranMs') } : {}),
        logOffset: f.int('logOffset', 0),
        holders: f.holders('holders', 1),
      };
    case 'setPolicy':
      return { type, jobId: f.id('jobId'), policy: decodePolicy(f.raw('policy')) };
    case 'nodeJoined':
      return { type, node: decodeNodeInfo(f.raw('node')) };
    case 'nodeAlive':
    case 'nodeSuspect':
    case 'nodeLost':
    case 'nodeLeft':
      return { type, node: f.id('node') };
    case 'setRole':
      return { type, node: f.id('node'), role: f.oneOf('role', ['voter', 'learner'] as const) };
    case 'blobAdded': {
      const cmd: Command = { type, id: f.id('id'), kind: f.oneOf('kind', BLOB_KINDS), bytes: f.int('bytes', 0), holders: f.holders('holders', 1) };
      if (f.has('name')) cmd.name = f.text('name', COMMAND_LIMITS.nameBytes);
      if (f.has('replace')) cmd.replace = f.bool('replace');
      return cmd;
    }
    case 'blobHolders':
      return { type, id: f.id('id'), holders: f.holders('holders', 0) };
    case 'forgetJobs':
      return { type, jobIds: f.ids('jobIds', 1, COMMAND_LIMITS.forgetBatch), finishedBefore: f.int('finishedBefore', 0) };
    case 'forgetBlobs':
      return { type, ids: f.ids('ids', 1, COMMAND_LIMITS.forgetBatch), addedBefore: f.int('addedBefore', 0) };
    case 'aclBootstrap':
    case 'tokenCreated':
      return { type, token: decodeTokenInfo(f.raw('token')) };
    case 'tokenRevoked':
      return { type, id: f.pattern('id', TOKEN_ID, 'a token id (16 hex digits)') };
  }
}

const TOKEN_ID = /^[0-9a-f]{16}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const CERT_SERIAL = /^[0-9a-f]{1,40}$/;

function decodeTokenInfo(value: unknown): TokenInfo {
  const f = Fields.of(value, 'cmd.token', ['id', 'name', 'role', 'hash', 'createdAt', 'expiresAt']);
  const createdAt = f.int('createdAt', 0);
  const expiresAt = f.has('expiresAt') ? f.int('expiresAt', createdAt + 1) : null;
  return {
    id: f.pattern('id', TOKEN_ID, 'a token id (16 hex digits)'),
    name: f.text('name', COMMAND_LIMITS.tokenNameBytes),
    role: f.oneOf('role', TOKEN_ROLES),
    hash: f.pattern('hash', SHA256_HEX, 'a SHA-256 in hex'),
    createdAt,
    expiresAt,
  };
}

function decodeCheckpointRef(value: unknown, path: string): CheckpointRef {
  const f = Fields.of(value, path, ['seq', 'epoch']);
  return { seq: f.int('seq', 1), epoch: f.int('epoch', 1) };
}

function decodeNewJob(value: unknown): NewJob {
  const f = Fields.of(value, 'cmd.job', ['id', 'spec', 'createdAt', 'inputs']);
  const id = f.id('id');
  const createdAt = f.int('createdAt', 0);
  const checked = validateJobSpec(f.raw('spec'));
  if (!checked.ok) throw new InvalidCommandError(checked.errors.map((e) => ({ field: joinPath('cmd.job.spec', e.field), message: e.message })));
  const spec = checked.spec;
  const inputs = new Map<string, string>();
  if (f.has('inputs')) {
    const raw = f.raw('inputs');
    if (!isPlainObject(raw)) fail('cmd.job.inputs', 'must be an object of file name → blob id');
    for (const [name, blob] of Object.entries(raw)) {
      if (!spec.files.includes(name)) fail(joinPath('cmd.job.inputs', name), 'is not one of spec.files');
      if (!isId(blob)) fail(joinPath('cmd.job.inputs', name), 'must be a blob id');
      inputs.set(name, blob);
    }
  }
  const missing = spec.files.filter((name) => !inputs.has(name));
  if (missing.length > 0) fail('cmd.job.inputs', `has no blob for ${missing.map((m) => `"${m}"`).join(', ')}: every file in spec.files needs one`);
  // Order inputs as spec.files, so equal jobs encode to equal bytes.
  return { id, spec, createdAt, inputs: Object.fromEntries(spec.files.map((name) => [name, inputs.get(name)!])) };
}

function decodePolicy(value: unknown): CheckpointPolicy {
  const f = Fields.of(value, 'cmd.policy', ['mode', 'intervalSeconds', 'reason']);
  const mode = f.oneOf('mode', ['auto', 'off', 'interval'] as const);
  let intervalSeconds: number | null = null;
  if (f.has('intervalSeconds')) {
    const v = f.raw('intervalSeconds');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(f.at('intervalSeconds'), 'must be a number of seconds > 0, or null');
    intervalSeconds = v;
  }
  if (mode === 'off' && intervalSeconds !== null) fail(f.at('intervalSeconds'), 'must be null when mode is off');
  if (mode === 'interval' && intervalSeconds === null) fail(f.at('intervalSeconds'), 'is required when mode is interval');
  return { mode, intervalSeconds, reason: f.text('reason', COMMAND_LIMITS.reasonBytes) };
}

function decodeNodeInfo(value: unknown): NodeInfo {
  const f = Fields.of(value, 'cmd.node', ['id', 'api', 'peer', 'slots', 'memoryMB', 'versions', 'role', 'cert']);
  const v = Fields.of(f.raw('versions'), 'cmd.node.versions', ['docker', 'criu', 'kernel']);
  const node: NodeInfo = {
    id: f.id('id'),
    api: f.text('api', COMMAND_LIMITS.addressBytes),
    peer: f.text('peer', COMMAND_LIMITS.addressBytes),
    slots: f.int('slots', 0, COMMAND_LIMITS.maxSlots),
    memoryMB: f.int('memoryMB', 0, COMMAND_LIMITS.maxMemoryMB),
    versions: {
      docker: v.text('docker', COMMAND_LIMITS.versionBytes),
      criu: v.text('criu', COMMAND_LIMITS.versionBytes),
      kernel: v.text('kernel', COMMAND_LIMITS.versionBytes),
    },
  };
  if (f.has('role')) node.role = f.oneOf('role', ['voter', 'learner'] as const);
  if (f.has('cert')) node.cert = f.pattern('cert', CERT_SERIAL, 'a certificate serial in lower-case hex');
  return node;
}

// ---------------------------------------------------------------------------
// Bytes. One codec for proposers and appliers: plain maps and arrays, no shared
// structures, so an entry decodes the same in every future version of the program.

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

export function encodeEnvelope(env: Envelope): Uint8Array {
  return packr.pack(env);
}

/** decodeEnvelope on the bytes of a log entry; bytes that are not msgpack are an InvalidCommandError too. */
export function decodeEnvelopeBytes(data: Uint8Array): Envelope {
  let value: unknown;
  try {
    value = packr.unpack(data);
  } catch (err) {
    throw new InvalidCommandError([{ field: '', message: 'entry is not msgpack' }], { cause: err });
  }
  return decodeEnvelope(value);
}
