// Quorum arithmetic over one set of voters (etcd-io/raft's quorum/majority.go).
// Membership changes one node at a time (raft/membership.ts), so any two majorities of
// the old and the new configuration overlap and a single majority is always the
// quorum: there is no joint configuration to count.
import type { NodeId } from './types.js';

/** How many of `voterCount` voters make a majority. */
export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest index a majority of `voters` hold: `match(id)` is the last index known
 * to be on voter `id`'s disk. 0 with no voters, so nothing commits.
 */
export function committedIndex(voters: Iterable<NodeId>, match: (id: NodeId) => number): number {
  const matches: number[] = [];
  for (const id of voters) matches.push(match(id));
  if (matches.length === 0) return 0;
  matches.sort((a, b) => b - a);
  return matches[majority(matches.length) - 1] ?? 0;
}

/** Whether the voters for which `agrees(id)` holds are a majority of `voters`. */
export function hasMajority(voters: ReadonlySet<NodeId>, agrees: (id: NodeId) => boolean): boolean {
  let count = 0;
  for (const id of voters) if (agrees(id)) count++;
  return count >= majority(voters.size);
}

export type VoteResult = 'won' | 'lost' | 'pending';

/**
 * The outcome of an election so far: `votes` holds each answer, granted (true) or
 * rejected (false); answers from non-voters do not count. Lost once too many voters
 * rejected for the rest to make a majority.
 */
export function voteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const q = majority(voters.size);
  if (granted >= q) return 'won';
  if (rejected > voters.size - q) return 'lost';
  return 'pending';
}
