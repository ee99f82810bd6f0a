// Arbitraries for the peer-frame fuzz targets: frames a correct node could send (every
// Raft number in [0, 2^52), entries contiguous, chunks inside their snapshot), the
// values an attacker would put in their place, and a check of what an accepted frame
// must satisfy, written from the contract (docs and raft/types.ts), not from the parser.
import fc from 'fast-check';
import { RAFT_NUMBER_LIMIT, type ConfState, type Entry, type Message } from '../../raft/types.js';
import type { PeerFrame } from '../../src/node/frames.js';

export const MEMBERS = ['n1', 'n2', 'n3'] as const;
/** Ids a configuration may hold besides the members: a joined node, and any id the state admits. */
const OTHER_IDS = ['n4', 'node-5.b_c', 'a!b'];

/** An integer in [lo, hi] over the whole range, ends included often. */
export function natIn(lo: number, hi: number): fc.Arbitrary<number> {
  if (lo >= hi) return fc.constant(lo);
  return fc.oneof(fc.constant(lo), fc.constant(hi), fc.integer({ min: lo, max: Math.min(hi, lo + 20) }), fc.bigInt({ min: BigInt(lo), max: BigInt(hi) }).map(Number));
}

const TOP = RAFT_NUMBER_LIMIT - 1;
const raftNat = natIn(0, TOP);
const pair = fc.tuple(fc.constantFrom(...MEMBERS), fc.constantFrom(...MEMBERS)).filter(([a, b]) => a !== b);
const bytes = fc.uint8Array({ maxLength: 24 });
const ctx = fc.string({ maxLength: 24 });

const confState: fc.Arbitrary<ConfState> = fc.shuffledSubarray([...MEMBERS, ...OTHER_IDS]).chain((ids) =>
  natIn(0, ids.length).map((cut) => ({ voters: ids.slice(0, cut), learners: ids.slice(cut) })),
);

const change = fc.record({
  type: fc.constantFrom('addVoter' as const, 'addLearner' as const, 'removeNode' as const),
  node: fc.constantFrom(...MEMBERS, ...OTHER_IDS),
});

/** An append: entries follow (index, logTerm) one by one, terms between logTerm and the message's. */
const append: fc.Arbitrary<Message> = fc.tuple(pair, raftNat, fc.nat(4)).chain(([[from, to], term, count]) =>
  fc.tuple(natIn(0, term), natIn(0, TOP - count), raftNat).chain(([logTerm, index, commit]) =>
    fc
      .tuple(
        fc.array(natIn(logTerm, term), { minLength: count, maxLength: count }).map((ts) => ts.sort((a, b) => a - b)),
        fc.array(fc.oneof(bytes.map((data) => ({ data })), change.map((c) => ({ change: c }))), { minLength: count, maxLength: count }),
      )
      .map(([terms, bodies]): Message => {
        const entries: Entry[] = bodies.map((b, i) => {
          const at = { term: terms[i] ?? term, index: index + 1 + i };
          return 'data' in b ? { type: 'normal', ...at, data: b.data } : { type: 'confChange', ...at, change: b.change };
        });
        return { type: 'app', from, to, term, index, logTerm, entries, commit };
      }),
  ),
);

const snapChunk: fc.Arbitrary<Message> = fc.tuple(pair, raftNat, bytes, natIn(0, 64), natIn(0, 64)).chain(([[from, to], term, data, offset, extra]) =>
  fc.tuple(natIn(0, term), raftNat, confState).map(([snapTerm, snapIndex, conf]): Message => ({
    type: 'snap',
    from,
    to,
    term,
    meta: { index: snapIndex, term: snapTerm, conf },
    offset,
    totalBytes: offset + data.length + extra,
    data,
  })),
);

/** A Raft message a correct node could send. */
export const validMessage: fc.Arbitrary<Message> = fc.oneof(
  { arbitrary: append, weight: 3 },
  { arbitrary: snapChunk, weight: 2 },
  fc.tuple(pair, raftNat).chain(([[from, to], term]) =>
    fc.oneof(
      fc.tuple(raftNat, fc.boolean(), raftNat, natIn(0, term)).map(([index, reject, rejectHint, logTerm]): Message => ({ type: 'appResp', from, to, term, index, reject, rejectHint, logTerm })),
      fc.tuple(fc.constantFrom('vote' as const, 'preVote' as const), raftNat, natIn(0, term), fc.boolean()).map(([type, index, logTerm, transfer]): Message => ({ type, from, to, term, index, logTerm, transfer })),
      fc.tuple(fc.constantFrom('voteResp' as const, 'preVoteResp' as const), fc.boolean()).map(([type, reject]): Message => ({ type, from, to, term, reject })),
      fc.tuple(raftNat, fc.option(ctx)).map(([commit, c]): Message => ({ type: 'heartbeat', from, to, term, commit, ctx: c })),
      fc.option(ctx).map((c): Message => ({ type: 'heartbeatResp', from, to, term, ctx: c })),
      fc.tuple(raftNat, raftNat, raftNat).map(([snapIndex, snapTerm, nextOffset]): Message => ({ type: 'snapResp', from, to, term, snapIndex, snapTerm, nextOffset })),
      fc.constant<Message>({ type: 'timeoutNow', from, to, term }),
      ctx.map((c): Message => ({ type: 'readIndex', from, to, term, ctx: c })),
      fc.tuple(ctx, raftNat).map(([c, index]): Message => ({ type: 'readIndexResp', from, to, term, ctx: c, index })),
    ),
  ),
);

/** A frame a correct node could send. */
export const validFrame: fc.Arbitrary<PeerFrame> = fc.oneof(
  { arbitrary: validMessage.map((m): PeerFrame => ({ k: 'raft', m })), weight: 6 },
  fc.tuple(ctx, bytes).map(([id, data]): PeerFrame => ({ k: 'prop', id, data })),
  fc.tuple(ctx, fc.oneof(fc.constant(null), fc.integer(), fc.string({ maxLength: 16 }), fc.array(fc.integer(), { maxLength: 4 }))).map(([id, value]): PeerFrame => ({ k: 'propResult', id, ok: true, value })),
  fc.tuple(ctx, ctx).map(([id, error]): PeerFrame => ({ k: 'propResult', id, ok: false, error })),
  fc.tuple(fc.constantFrom('lease' as const, 'leaseAck' as const), fc.nat()).map(([k, at]): PeerFrame => ({ k, at })),
);

/** What an attacker puts where a Raft number belongs. */
export const badNumber = fc.constantFrom<unknown>(RAFT_NUMBER_LIMIT, Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 64, -1, 0.5, 1e300, Infinity, -Infinity, NaN, '1', null, true, 2n ** 70n);

/** Keys whose value is a Raft number or a byte count (raft/types.ts). */
export const RAFT_NUMBER_KEYS = new Set(['term', 'index', 'logTerm', 'commit', 'rejectHint', 'snapIndex', 'snapTerm', 'nextOffset', 'offset', 'totalBytes']);

/** Every path (inside `m`) to a Raft number: fields, entries' index and term, the snapshot meta's. */
export function raftNumberPaths(value: unknown, path: Array<string | number> = []): Array<Array<string | number>> {
  if (Array.isArray(value)) return value.flatMap((v, i) => raftNumberPaths(v, [...path, i]));
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return [];
  const out: Array<Array<string | number>> = [];
  for (const [k, v] of Object.entries(value)) {
    if (RAFT_NUMBER_KEYS.has(k) && typeof v === 'number') out.push([...path, k]);
    else out.push(...raftNumberPaths(v, [...path, k]));
  }
  return out;
}

/** A deep copy of `value` with the leaf at `path` replaced. */
export function withLeaf(value: unknown, path: Array<string | number>, leaf: unknown): unknown {
  if (path.length === 0) return leaf;
  const [head, ...rest] = path;
  if (Array.isArray(value)) return value.map((v, i) => (i === head ? withLeaf(v, rest, leaf) : v));
  const o = value as Record<string, unknown>;
  return { ...o, [String(head)]: withLeaf(o[String(head)], rest, leaf) };
}

/**
 * Why an accepted frame breaks the contract, or null: every Raft number an integer in
 * [0, 2^52), an append's entries contiguous after its index, a chunk inside its
 * snapshot, ids of the node-id shape on a message's ends.
 */
export function contractBreach(frame: PeerFrame): string | null {
  if (frame.k !== 'raft') return null;
  const m = frame.m;
  for (const path of raftNumberPaths(m)) {
    let v: unknown = m;
    for (const p of path) v = (v as Record<string | number, unknown>)[p];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= RAFT_NUMBER_LIMIT) return `${path.join('.')} = ${String(v)}`;
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/.test(m.from) || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/.test(m.to)) return `ids ${m.from} → ${m.to}`;
  if (m.type === 'app') {
    for (const [i, e] of m.entries.entries()) {
      if (e.index !== m.index + 1 + i) return `entry ${i} at ${e.index} after ${m.index}`;
      if (e.term > m.term) return `entry ${i} term ${e.term} above ${m.term}`;
    }
  }
  if (m.type === 'snap' && m.offset + m.data.length > m.totalBytes) return `chunk ${m.offset}+${m.data.length} beyond ${m.totalBytes}`;
  return null;
}

/** A canonical form for comparing frames: bytes as hex whatever their class, keys sorted. */
export function canonical(value: unknown): unknown {
  if (value instanceof Uint8Array) return `bytes:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}
