// Frames on the peer link between nodes, and their validation: a peer is
// authenticated, but a malformed frame (a bug, a version skew) must be dropped, not
// crash the Raft core with a broken assertion.
import type { Entry, Message, SnapshotMeta } from '../../raft/types.js';

export type PeerFrame =
  | { k: 'raft'; m: Message }
  /** A follower forwards a proposal to the leader; `id` matches the answer. */
  | { k: 'prop'; id: string; data: Uint8Array }
  | { k: 'propResult'; id: string; ok: true; value: unknown }
  | { k: 'propResult'; id: string; ok: false; error: string }
  /** A node's lease renewal to the leader (liveness); the leader answers leaseAck with the same `at`. */
  | { k: 'lease'; at: number }
  | { k: 'leaseAck'; at: number };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length <= 256;
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function isConf(v: unknown): boolean {
  return isObj(v) && Array.isArray(v.voters) && v.voters.every(isStr) && Array.isArray(v.learners) && v.learners.every(isStr);
}

function isSnapshotMeta(v: unknown): v is SnapshotMeta {
  return isObj(v) && isNat(v.index) && isNat(v.term) && isConf(v.conf);
}

function isEntry(v: unknown): v is Entry {
  if (!isObj(v) || !isNat(v.index) || !isNat(v.term)) return false;
  if (v.type === 'normal') return isBytes(v.data);
  if (v.type === 'confChange') {
    const c = v.change;
    return isObj(c) && (c.type === 'addVoter' || c.type === 'addLearner' || c.type === 'removeNode') && isStr(c.node);
  }
  return false;
}

function isMessage(v: unknown): v is Message {
  if (!isObj(v) || !isStr(v.from) || !isStr(v.to) || !isNat(v.term)) return false;
  switch (v.type) {
    case 'app':
      return isNat(v.index) && isNat(v.logTerm) && isNat(v.commit) && Array.isArray(v.entries) && v.entries.every(isEntry);
    case 'appResp':
      return isNat(v.index) && typeof v.reject === 'boolean' && isNat(v.rejectHint) && isNat(v.logTerm);
    case 'vote':
    case 'preVote':
      return isNat(v.index) && isNat(v.logTerm) && typeof v.transfer === 'boolean';
    case 'voteResp':
    case 'preVoteResp':
      return typeof v.reject === 'boolean';
    case 'heartbeat':
      return isNat(v.commit) && (v.ctx === null || isStr(v.ctx));
    case 'heartbeatResp':
      return v.ctx === null || isStr(v.ctx);
    case 'snap':
      return isSnapshotMeta(v.meta) && isNat(v.offset) && isNat(v.totalBytes) && isBytes(v.data);
    case 'snapResp':
      return isNat(v.snapIndex) && isNat(v.snapTerm) && isNat(v.nextOffset);
    case 'timeoutNow':
      return true;
    case 'readIndex':
      return isStr(v.ctx);
    case 'readIndexResp':
      return isStr(v.ctx) && isNat(v.index);
    default:
      return false;
  }
}

/** Returns the frame if it is well-formed, else null. */
export function parsePeerFrame(v: unknown): PeerFrame | null {
  if (!isObj(v)) return null;
  switch (v.k) {
    case 'raft':
      return isMessage(v.m) ? (v as PeerFrame) : null;
    case 'prop':
      return isStr(v.id) && isBytes(v.data) ? (v as PeerFrame) : null;
    case 'propResult':
      return isStr(v.id) && typeof v.ok === 'boolean' && (v.ok || isStr(v.error)) ? (v as PeerFrame) : null;
    case 'lease':
    case 'leaseAck':
      return isNat(v.at) ? (v as PeerFrame) : null;
    default:
      return null;
  }
}
