// The cluster's configuration as one node sees it: who votes and who only learns
// (etcd-io/raft's confchange/ and the Config half of tracker/). Changes come one node
// at a time (Raft thesis §4.1) and take effect as soon as they are in the log,
// committed or not, so a node never needs to know a change committed to count votes
// by it; a truncated change is undone by recounting from the log.
import { sortedIds } from './ids.js';
import type { RaftLog } from './log.js';
import type { ConfChange, ConfState, NodeId } from './types.js';

/** Applies one change to a configuration's voter and learner sets. */
export function applyConfChange(voters: Set<NodeId>, learners: Set<NodeId>, change: ConfChange): void {
  const { node } = change;
  switch (change.type) {
    case 'addVoter':
      learners.delete(node);
      voters.add(node);
      break;
    case 'addLearner':
      voters.delete(node);
      learners.add(node);
      break;
    case 'removeNode':
      voters.delete(node);
      learners.delete(node);
      break;
  }
}

export class Membership {
  private readonly voterSet = new Set<NodeId>();
  private readonly learnerSet = new Set<NodeId>();
  /** Membership before the first entry of the log: the snapshot's, or none. */
  private base: ConfState = { voters: [], learners: [] };
  /** Index of the newest membership change in the log; 0 when none follows the snapshot. */
  private lastChangeIndex = 0;
  /** Leader: index of the newest change it proposed (or of its no-op); none may follow until it is applied. */
  private pendingChangeIndex = 0;

  /** `allowConcurrentChanges` breaks one-change-at-a-time on purpose (UnsafeTestingKnobs). */
  constructor(private readonly allowConcurrentChanges: boolean) {}

  /** The voters in effect, in the core's id order. */
  get voters(): ReadonlySet<NodeId> {
    return this.voterSet;
  }

  get learners(): ReadonlySet<NodeId> {
    return this.learnerSet;
  }

  isVoter(id: NodeId): boolean {
    return this.voterSet.has(id);
  }

  isMember(id: NodeId): boolean {
    return this.voterSet.has(id) || this.learnerSet.has(id);
  }

  /** Index of the newest membership change in the log (0: none after the snapshot). */
  get lastIndex(): number {
    return this.lastChangeIndex;
  }

  /** The membership in effect, members sorted. */
  state(): ConfState {
    return { voters: sortedIds(this.voterSet), learners: sortedIds(this.learnerSet) };
  }

  /** The log now starts after a snapshot taken or received with this membership. */
  setBase(conf: ConfState): void {
    this.base = conf;
  }

  /** The membership after the entries up to `index` (at least the snapshot's index). */
  at(log: RaftLog, index: number): ConfState {
    const voters = new Set(this.base.voters);
    const learners = new Set(this.base.learners);
    for (let i = log.firstIndex(); i <= Math.min(index, log.lastIndex()); i++) {
      const e = log.entry(i);
      if (e.type === 'confChange') applyConfChange(voters, learners, e.change);
    }
    return { voters: sortedIds(voters), learners: sortedIds(learners) };
  }

  /**
   * Puts the newest membership in the log in effect: after appending or truncating a
   * change, installing a snapshot, or at start.
   */
  refresh(log: RaftLog): void {
    this.lastChangeIndex = 0;
    for (let i = log.firstIndex(); i <= log.lastIndex(); i++) {
      if (log.entry(i).type === 'confChange') this.lastChangeIndex = i;
    }
    const conf = this.at(log, log.lastIndex());
    this.voterSet.clear();
    this.learnerSet.clear();
    for (const id of conf.voters) this.voterSet.add(id);
    for (const id of conf.learners) this.learnerSet.add(id);
  }

  /**
   * Why a leader must refuse to propose `change` now, or null. One change at a time,
   * and not before the leader applied an entry of its own term (the pending index
   * starts at its no-op's): thesis §4.1 and its known bug fix.
   */
  refusal(change: ConfChange, applied: number): 'confChangePending' | 'invalid' | null {
    if (!this.allowConcurrentChanges && this.pendingChangeIndex > applied) return 'confChangePending';
    return this.isValid(change) ? null : 'invalid';
  }

  /** No change may be proposed until the entry at `index` is applied. */
  holdChangesUntilApplied(index: number): void {
    this.pendingChangeIndex = index;
  }

  /** A new term or role: this node has no change of its own pending. */
  clearPendingChange(): void {
    this.pendingChangeIndex = 0;
  }

  private isValid(change: ConfChange): boolean {
    const { node } = change;
    switch (change.type) {
      case 'addVoter':
        return !this.voterSet.has(node);
      case 'addLearner':
        // Demoting a voter must leave at least one voter.
        return !this.learnerSet.has(node) && !(this.voterSet.has(node) && this.voterSet.size <= 1);
      case 'removeNode':
        return (this.voterSet.has(node) && this.voterSet.size > 1) || this.learnerSet.has(node);
    }
  }
}
