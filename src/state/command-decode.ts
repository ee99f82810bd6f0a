// Decoding a command envelope from what msgpackr gives for a log entry: the boundary
// between bytes and types. Every node decodes each committed entry the same way.
import { isPlainObject, joinPath } from '../util/parse.js';
import {
  BLOB_KINDS,
  COMMAND_LIMITS,
  COMMAND_VERSION,
  type CheckpointPolicy,
  type CheckpointRef,
  type Command,
  type CommandType,
  type Envelope,
  InvalidCommandError,
  type NewJob,
  UnknownCommandError,
  type NodeInfo,
  TOKEN_ROLES,
  type TokenInfo,
} from './command-types.js';
import { fail, Fields } from './fields.js';
import { isId } from './parse.js';
import { validateJobSpec } from './spec.js';
import { COMMAND_SINCE, knownCommand } from './versions.js';

const ENVELOPE_FIELDS = ['v', 'clientId', 'requestId', 'at', 'cmd'] as const;

/**
 * Validates a decoded value (msgpackr output) as an envelope and returns it typed,
 * with a submitted job's spec normalized. Throws UnknownCommandError for what this
 * build does not know (a newer envelope version, command type or field: docs/upgrading.md),
 * InvalidCommandError for anything else that is not a valid envelope.
 */
export function decodeEnvelope(value: unknown): Envelope {
  if (isPlainObject(value) && typeof value.v === 'number' && value.v > COMMAND_VERSION) {
    throw new UnknownCommandError(`command envelope version ${value.v} (this build reads version ${COMMAND_VERSION})`);
  }
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
  setDraining: ['type', 'node', 'draining'],
  jobDrained: ['type', 'jobId', 'epoch', 'node'],
  blobAdded: ['type', 'id', 'kind', 'bytes', 'holders', 'name', 'replace'],
  blobHolders: ['type', 'id', 'holders'],
  forgetJobs: ['type', 'jobIds', 'finishedBefore'],
  forgetBlobs: ['type', 'ids', 'addedBefore'],
  aclBootstrap: ['type', 'token'],
  tokenCreated: ['type', 'token'],
  tokenRevoked: ['type', 'id'],
  setClusterVersion: ['type', 'version'],
  checkState: ['type'],
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
  if (typeof type !== 'string') fail('cmd.type', 'must be a string');
  // A command type this build does not know can only come from a newer build: refusing
  // it as invalid (a no-op) would leave this node's state behind its peers'.
  if (!isCommandType(type)) throw new UnknownCommandError(`command type ${JSON.stringify(type)}`);
  if (!knownCommand(type)) throw new UnknownCommandError(`command type "${type}" of protocol version ${COMMAND_SINCE[type]}`);
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
    case 'setDraining':
      return { type, node: f.id('node'), draining: f.bool('draining') };
    case 'jobDrained':
      return { type, jobId: f.id('jobId'), epoch: f.int('epoch', 1), node: f.id('node') };
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
    case 'setClusterVersion':
      return { type, version: f.int('version', 2, COMMAND_LIMITS.maxProtocolVersion) };
    case 'checkState':
      return { type };
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
