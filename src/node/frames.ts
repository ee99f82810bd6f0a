// Frames on the peer link between nodes, and their validation. A peer is authenticated,
// but what it sends is still data to check: a bug, a version skew or anyone holding the
// cluster token could send a frame no correct node would. parsePeerFrame rebuilds each
// frame from the fields it knows, checked for shape and range, so that nothing a peer
// controls can crash the Raft core with a broken assertion, overflow a term, or be
// persisted with fields the code does not know.
import { constants as bufferConstants } from 'node:buffer';
import type { ConfChange, ConfState, Entry, Message, SnapshotMeta } from '../../raft/types.js';
import { messageProblem } from '../../raft/validate.js';
import { isNodeId } from '../config/node-options.js';
import type { StateCheck } from '../state/live-tables.js';
import { isId } from '../state/parse.js';
import type { BuildInfo } from '../version.js';

export type PeerFrame =
  | { k: 'raft'; m: Message }
  /** A follower forwards a proposal to the leader; `id` matches the answer. */
  | { k: 'prop'; id: string; data: Uint8Array }
  /** `index`: the entry's log index, so the follower answers once it has applied it too (absent from older leaders). */
  | { k: 'propResult'; id: string; ok: true; value: unknown; index?: number }
  | { k: 'propResult'; id: string; ok: false; error: string }
  /**
   * A node's lease renewal to the leader (liveness); the leader answers leaseAck with the
   * same `at`. `build` and `check` (cluster-versions.ts) are absent from older builds,
   * which also ignore them: a frame is rebuilt from the fields a node knows.
   */
  | { k: 'lease'; at: number; build?: BuildInfo; check?: StateCheck }
  | { k: 'leaseAck'; at: number };

/**
 * Why a frame from a peer was dropped (the `reason` label of
 * workrs_peer_frames_dropped_total). The first two come from parsePeerFrame, the others
 * from the driver and the Raft core.
 *   - malformed: not the shape of any frame (a missing or mistyped field, an unknown kind);
 *   - out_of_range: a Raft number at or above 2^52 or negative, fields that contradict
 *     each other (raft/validate.ts), or a snapshot larger than a process can hold;
 *   - wrong_sender: a Raft message whose `from` is not the authenticated link peer;
 *   - misaddressed: a Raft message for another node;
 *   - stranger: from a node outside the configuration, while a leader is heard from.
 */
export type FrameDropReason = 'malformed' | 'out_of_range' | 'wrong_sender' | 'misaddressed' | 'stranger';

export type ParsedFrame = { ok: true; frame: PeerFrame } | { ok: false; reason: 'malformed' | 'out_of_range'; detail: string };

/**
 * The largest snapshot a receiver could assemble (one buffer): a chunk claiming a
 * larger total is refused before any of it is buffered. A leader cannot hold a larger
 * one either, so the bound never refuses a correct snapshot.
 */
export const MAX_SNAPSHOT_BYTES = bufferConstants.MAX_LENGTH;

/** Strings a frame carries besides ids: read contexts, proposal ids, error names. */
const MAX_TEXT_CHARS = 256;

class Malformed extends Error {}

function malformed(what: string): never {
  throw new Malformed(what);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function obj(v: unknown, what: string): Obj {
  return isObj(v) ? v : malformed(`${what} is not a map`);
}

/** A number; whether it is an integer in range is raft/validate.ts's question. */
function num(o: Obj, key: string): number {
  const v = o[key];
  return typeof v === 'number' ? v : malformed(`${key} is not a number`);
}

/** A non-negative safe integer (lease times). */
function nat(o: Obj, key: string): number {
  const v = o[key];
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : malformed(`${key} is not a non-negative integer`);
}

function bool(o: Obj, key: string): boolean {
  const v = o[key];
  return typeof v === 'boolean' ? v : malformed(`${key} is not a boolean`);
}

function text(o: Obj, key: string): string {
  const v = o[key];
  return typeof v === 'string' && v.length <= MAX_TEXT_CHARS ? v : malformed(`${key} is not a string of at most ${MAX_TEXT_CHARS} characters`);
}

function textOrNull(o: Obj, key: string): string | null {
  return o[key] === null ? null : text(o, key);
}

function bytes(o: Obj, key: string): Uint8Array {
  const v = o[key];
  return v instanceof Uint8Array ? v : malformed(`${key} is not binary`);
}

/** The sender or receiver of a Raft message: a running node, so an id as --id accepts it. */
function nodeId(o: Obj, key: string): string {
  const v = o[key];
  return isNodeId(v) ? v : malformed(`${key} is not a node id`);
}

/**
 * A member named in the log (a membership change, a snapshot's configuration): any id
 * the replicated state admits (a node registered through the API), so a frame never
 * fails on an id the leader's log legitimately holds.
 */
function memberId(v: unknown, what: string): string {
  return isId(v) ? v : malformed(`${what} is not an id`);
}

function memberList(v: unknown, what: string): string[] {
  return Array.isArray(v) ? v.map((id, i) => memberId(id, `${what}[${i}]`)) : malformed(`${what} is not a list`);
}

function confState(v: unknown): ConfState {
  const o = obj(v, 'conf');
  return { voters: memberList(o.voters, 'conf.voters'), learners: memberList(o.learners, 'conf.learners') };
}

function snapshotMeta(v: unknown): SnapshotMeta {
  const o = obj(v, 'meta');
  return { index: num(o, 'index'), term: num(o, 'term'), conf: confState(o.conf) };
}

function confChange(v: unknown): ConfChange {
  const o = obj(v, 'change');
  const node = memberId(o.node, 'change.node');
  switch (o.type) {
    case 'addVoter':
    case 'addLearner':
    case 'removeNode':
      return { type: o.type, node };
    default:
      return malformed('change.type is unknown');
  }
}

function entry(v: unknown, i: number): Entry {
  const o = obj(v, `entries[${i}]`);
  const term = num(o, 'term');
  const index = num(o, 'index');
  switch (o.type) {
    case 'normal':
      return { type: 'normal', term, index, data: bytes(o, 'data') };
    case 'confChange':
      return { type: 'confChange', term, index, change: confChange(o.change) };
    default:
      return malformed(`entries[${i}].type is unknown`);
  }
}

function message(v: unknown): Message {
  const o = obj(v, 'm');
  const base = { from: nodeId(o, 'from'), to: nodeId(o, 'to'), term: num(o, 'term') };
  switch (o.type) {
    case 'app': {
      const entries = Array.isArray(o.entries) ? o.entries.map(entry) : malformed('entries is not a list');
      return { ...base, type: 'app', index: num(o, 'index'), logTerm: num(o, 'logTerm'), entries, commit: num(o, 'commit') };
    }
    case 'appResp':
      return { ...base, type: 'appResp', index: num(o, 'index'), reject: bool(o, 'reject'), rejectHint: num(o, 'rejectHint'), logTerm: num(o, 'logTerm') };
    case 'vote':
    case 'preVote':
      return { ...base, type: o.type, index: num(o, 'index'), logTerm: num(o, 'logTerm'), transfer: bool(o, 'transfer') };
    case 'voteResp':
    case 'preVoteResp':
      return { ...base, type: o.type, reject: bool(o, 'reject') };
    case 'heartbeat':
      return { ...base, type: 'heartbeat', commit: num(o, 'commit'), ctx: textOrNull(o, 'ctx') };
    case 'heartbeatResp':
      return { ...base, type: 'heartbeatResp', ctx: textOrNull(o, 'ctx') };
    case 'snap':
      return { ...base, type: 'snap', meta: snapshotMeta(o.meta), offset: num(o, 'offset'), totalBytes: num(o, 'totalBytes'), data: bytes(o, 'data') };
    case 'snapResp':
      return { ...base, type: 'snapResp', snapIndex: num(o, 'snapIndex'), snapTerm: num(o, 'snapTerm'), nextOffset: num(o, 'nextOffset') };
    case 'timeoutNow':
      return { ...base, type: 'timeoutNow' };
    case 'readIndex':
      return { ...base, type: 'readIndex', ctx: text(o, 'ctx') };
    case 'readIndexResp':
      return { ...base, type: 'readIndexResp', ctx: text(o, 'ctx'), index: num(o, 'index') };
    default:
      return malformed('m.type is unknown');
  }
}

function frame(v: unknown): PeerFrame {
  const o = obj(v, 'frame');
  switch (o.k) {
    case 'raft':
      return { k: 'raft', m: message(o.m) };
    case 'prop':
      return { k: 'prop', id: text(o, 'id'), data: bytes(o, 'data') };
    case 'propResult':
      if (!bool(o, 'ok')) return { k: 'propResult', id: text(o, 'id'), ok: false, error: text(o, 'error') };
      return { k: 'propResult', id: text(o, 'id'), ok: true, value: o.value, ...(o.index === undefined ? {} : { index: nat(o, 'index') }) };
    case 'lease':
      return { k: 'lease', at: nat(o, 'at'), ...(o.build === undefined ? {} : { build: buildInfo(o.build) }), ...(o.check === undefined ? {} : { check: stateCheck(o.check) }) };
    case 'leaseAck':
      return { k: o.k, at: nat(o, 'at') };
    default:
      return malformed('k is unknown');
  }
}

function buildInfo(v: unknown): BuildInfo {
  const o = obj(v, 'build');
  const p = obj(o.protocol, 'build.protocol');
  const min = nat(p, 'min');
  const max = nat(p, 'max');
  if (min < 1 || max < min) malformed('build.protocol is not a range of versions');
  return { version: text(o, 'version'), commit: text(o, 'commit'), protocol: { min, max } };
}

/** A build as a node announces it (the lease frame's, a join's header); null when `v` is not one. */
export function parseBuild(v: unknown): BuildInfo | null {
  try {
    return buildInfo(v);
  } catch (err) {
    if (err instanceof Malformed) return null;
    throw err;
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function stateCheck(v: unknown): StateCheck {
  const o = obj(v, 'check');
  const hash = o.hash;
  if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) malformed('check.hash is not a SHA-256 in hex');
  return { index: nat(o, 'index'), hash };
}

/** Why no correct node would send this Raft message, or null (raft/validate.ts, plus the snapshot size). */
function rangeProblem(m: Message): string | null {
  if (m.type === 'snap' && m.totalBytes > MAX_SNAPSHOT_BYTES) return `totalBytes ${m.totalBytes} is above ${MAX_SNAPSHOT_BYTES}`;
  return messageProblem(m);
}

/**
 * The frame a peer sent, rebuilt from its known fields and checked; or why it must be
 * dropped. Never throws: any value a decoder can produce gets an answer.
 */
export function parsePeerFrame(v: unknown): ParsedFrame {
  let parsed: PeerFrame;
  try {
    parsed = frame(v);
  } catch (err) {
    if (err instanceof Malformed) return { ok: false, reason: 'malformed', detail: err.message };
    throw err;
  }
  if (parsed.k === 'raft') {
    const problem = rangeProblem(parsed.m);
    if (problem !== null) return { ok: false, reason: 'out_of_range', detail: `${parsed.m.type}: ${problem}` };
  }
  return { ok: true, frame: parsed };
}
