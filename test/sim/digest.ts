import type { Entry } from '../../raft/types.js';

/**
 * Cheap non-cryptographic hashes for the checker. A chain value digests a whole log
 * prefix (index, term and content of every entry up to an index), so "these two logs
 * are identical up to i" is one comparison. Chains are 52-bit integers held in a
 * double; a collision would hide a violation, not invent one.
 */

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function stringDigest(s: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** 32-bit digest of an entry's content (its type and payload, not its position). */
export function entryDigest(e: Entry): number {
  if (e.type === 'confChange') return stringDigest(`${e.change.type}:${e.change.node}`, 0x2f1a7c3d);
  let h = 0x811c9dc5;
  const data = e.data;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ (data[i] as number), 0x01000193);
  return fmix32(h ^ data.length);
}

const TWO_POW_32 = 4294967296;

/** The chain of a prefix ending at (index, term, digest), given the chain of the prefix before it. */
export function chainNext(prev: number, index: number, term: number, digest: number): number {
  const prevHi = Math.floor(prev / TWO_POW_32);
  const prevLo = prev >>> 0;
  const lo = fmix32(Math.imul(prevLo, 31) ^ fmix32(index ^ Math.imul(term, 0x9e3779b1)) ^ digest);
  const hi = fmix32(prevHi ^ Math.imul(lo, 0x27d4eb2d) ^ Math.imul(digest, 0x165667b1) ^ term) & 0xfffff;
  return hi * TWO_POW_32 + lo;
}

export function chainOfEntry(prev: number, e: Entry): number {
  return chainNext(prev, e.index, e.term, entryDigest(e));
}
