// Which Raft voters the cluster should have: the target number of voters among
// healthy nodes, no fewer and no more, one membership change at a time. Pure: the
// leader's duties (src/node/leader-duties.ts) gather the input and propose the change.
import type { NodeId } from '../../raft/types.js';

/**
 * A learner counts as caught up when its log is at most this many entries behind the
 * commit index. Promoted while further behind, it would be a voter whose
 * acknowledgements lag: with a voter already lost, every commit would wait for it to
 * catch up. A hundred entries is well under a second of replication, so a learner
 * that keeps up with the leader qualifies at the next round.
 */
export const CAUGHT_UP_ENTRIES = 100;

export interface VoterInput {
  /** The leader (never demoted by itself). */
  self: NodeId;
  voters: readonly NodeId[];
  learners: readonly NodeId[];
  commit: number;
  /** Per member, from the leader's progress tracker. */
  progress: Readonly<Record<NodeId, { match: number; recentActive: boolean } | undefined>>;
  /** How many voters the cluster wants (3 or 5). */
  target: number;
  /** Members whose node record is alive. */
  alive: (id: NodeId) => boolean;
  /** Members counted as lost: their record is lost, or they never registered and went silent. */
  lost: (id: NodeId) => boolean;
  /** Entries a learner may lag and still be promoted (default CAUGHT_UP_ENTRIES). */
  caughtUpEntries?: number;
}

export type VoterChange = { type: 'addVoter'; node: NodeId } | { type: 'addLearner'; node: NodeId };

/**
 * One change or none: promote a caught-up, alive, recently active learner while
 * healthy voters are fewer than the target; otherwise demote a lost voter to learner,
 * but only once the healthy voters reach the target without it. With no spare node
 * the lost voter stays a voter, so the quorum it is part of is whole again the moment
 * it returns; demoted, it can be promoted again when it comes back.
 * Healthy voters above the target (a cluster bootstrapped with more voters) are
 * demoted one per round, as Consul's autopilot and Nomad keep 3 or 5 servers voting:
 * a voter is heartbeated every round and its answers count toward every commit and
 * lease ack, while a learner needs a round now and then; the target already says how
 * many lost voters the cluster must survive. Promotion needs fewer healthy voters than
 * the target and this demotion more, so the two never alternate.
 */
export function planVoterChange(input: VoterInput): VoterChange | null {
  const slack = input.caughtUpEntries ?? CAUGHT_UP_ENTRIES;
  const lostVoters = input.voters.filter((v) => v !== input.self && input.lost(v));
  const healthyVoters = input.voters.length - lostVoters.length;
  if (healthyVoters < input.target) {
    const candidate = input.learners
      .filter((l) => {
        const p = input.progress[l];
        return input.alive(l) && (p?.recentActive ?? false) && (p?.match ?? 0) + slack >= input.commit;
      })
      .sort()[0];
    if (candidate !== undefined) return { type: 'addVoter', node: candidate };
  }
  const lost = lostVoters[0];
  if (lost !== undefined && healthyVoters >= input.target) return { type: 'addLearner', node: lost };
  const surplus = healthyVoters > input.target ? surplusVoter(input) : undefined;
  return surplus === undefined ? null : { type: 'addLearner', node: surplus };
}

/**
 * The healthy voter to demote when there are more than the target: never the leader;
 * first one that is not alive or not recently active (it would answer least), then
 * the highest id, so every leader picks the same one from the same state.
 */
function surplusVoter(input: VoterInput): NodeId | undefined {
  const active = (v: NodeId): boolean => input.alive(v) && (input.progress[v]?.recentActive ?? false);
  const byIdDesc = input.voters.filter((v) => v !== input.self && !input.lost(v)).sort().reverse();
  return byIdDesc.find((v) => !active(v)) ?? byIdDesc[0];
}
