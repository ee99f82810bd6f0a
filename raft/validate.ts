// What a correct node could have sent: the numbers of a message in range and its
// fields consistent with each other. The peer-frame decoder refuses a frame that fails
// here (after checking the shapes of its fields), and step() refuses it again, so no
// value a peer controls can overflow or break an assertion of the core. Only what a
// message says about itself is checked; whether it fits this node's log is the core's
// business (a stale or conflicting message is normal Raft traffic).
import { RAFT_NUMBER_LIMIT, type AppendMessage, type ConfState, type Message, type SnapshotChunkMessage } from './types.js';

/** A term, index or byte count the core can hold and add to: an integer in [0, 2^52). */
export function isRaftNumber(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < RAFT_NUMBER_LIMIT;
}

function num(name: string, n: number): string | null {
  return isRaftNumber(n) ? null : `${name} ${n} is not an integer in [0, 2^52)`;
}

function notAbove(name: string, n: number, boundName: string, bound: number): string | null {
  return n <= bound ? null : `${name} ${n} is above ${boundName} ${bound}`;
}

function first(...problems: Array<string | null>): string | null {
  return problems.find((p) => p !== null) ?? null;
}

/** Why no correct node would send `m`, or null. */
export function messageProblem(m: Message): string | null {
  if (m.from === m.to) return `${m.from} sends to itself`;
  const term = num('term', m.term);
  if (term !== null) return term;
  switch (m.type) {
    case 'app':
      return appendProblem(m);
    case 'appResp':
      // A rejection's hint term is a term of the sender's log: never above its own term.
      return first(num('index', m.index), num('rejectHint', m.rejectHint), num('logTerm', m.logTerm), notAbove('logTerm', m.logTerm, 'term', m.term));
    case 'vote':
    case 'preVote':
      // The candidate's last log term is at most the term it campaigns for.
      return first(num('index', m.index), num('logTerm', m.logTerm), notAbove('logTerm', m.logTerm, 'term', m.term));
    case 'heartbeat':
      return num('commit', m.commit);
    case 'snap':
      return snapshotChunkProblem(m);
    case 'snapResp':
      return first(num('snapIndex', m.snapIndex), num('snapTerm', m.snapTerm), num('nextOffset', m.nextOffset));
    case 'readIndexResp':
      return num('index', m.index);
    case 'voteResp':
    case 'preVoteResp':
    case 'heartbeatResp':
    case 'timeoutNow':
    case 'readIndex':
      return null;
  }
}

/**
 * The entries follow the previous entry (index, logTerm) one index at a time, with
 * terms that never decrease and never exceed the leader's term: a leader's log has
 * that shape, and the follower's append relies on it (a gap or an entry below the
 * previous index would overwrite the wrong entries).
 */
function appendProblem(m: AppendMessage): string | null {
  const head = first(num('index', m.index), num('logTerm', m.logTerm), num('commit', m.commit), notAbove('logTerm', m.logTerm, 'term', m.term));
  if (head !== null) return head;
  let prevTerm = m.logTerm;
  for (const [i, e] of m.entries.entries()) {
    const expected = m.index + 1 + i;
    if (e.index !== expected) return `entry ${i} has index ${e.index}, expected ${expected}`;
    const p = first(num(`entry ${i} index`, e.index), num(`entry ${i} term`, e.term), notAbove(`entry ${i} term`, e.term, 'term', m.term));
    if (p !== null) return p;
    if (e.term < prevTerm) return `entry ${i} has term ${e.term}, below the previous entry's ${prevTerm}`;
    prevTerm = e.term;
  }
  return null;
}

function snapshotChunkProblem(m: SnapshotChunkMessage): string | null {
  const p = first(
    num('snapshot index', m.meta.index),
    num('snapshot term', m.meta.term),
    notAbove('snapshot term', m.meta.term, 'term', m.term),
    num('offset', m.offset),
    num('totalBytes', m.totalBytes),
    notAbove('offset + chunk bytes', m.offset + m.data.length, 'totalBytes', m.totalBytes),
  );
  return p ?? confProblem(m.meta.conf);
}

function confProblem(conf: ConfState): string | null {
  const seen = new Set<string>();
  for (const id of [...conf.voters, ...conf.learners]) {
    if (seen.has(id)) return `the snapshot's configuration lists ${id} twice`;
    seen.add(id);
  }
  return null;
}
