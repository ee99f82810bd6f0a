import { sortedIds } from './ids.js';
import { committedIndex, hasMajority, voteResult, type VoteResult } from './quorum.js';
import type { NodeId, ProgressStatus } from './types.js';

/** Appends in flight to one follower: the last index and the bytes of each. */
export class Inflights {
  private readonly items: Array<{ index: number; bytes: number }> = [];
  private totalBytes = 0;

  add(index: number, bytes: number): void {
    this.items.push({ index, bytes });
    this.totalBytes += bytes;
  }

  /** Frees every append up to and including `index` (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.items.length && (this.items[n]?.index ?? Infinity) <= index) {
      this.totalBytes -= this.items[n]?.bytes ?? 0;
      n++;
    }
    this.items.splice(0, n);
  }

  full(maxMsgs: number, maxBytes: number): boolean {
    return this.items.length >= maxMsgs || (maxBytes > 0 && this.totalBytes >= maxBytes);
  }

  count(): number {
    return this.items.length;
  }

  reset(): void {
    this.items.length = 0;
    this.totalBytes = 0;
  }
}

/**
 * The leader's view of one follower (etcd-io/raft's tracker.Progress).
 * - probe: the leader does not know where the follower's log matches; one append at
 *   a time, then wait for its answer.
 * - replicate: the follower is keeping up; appends are pipelined, `next` advances
 *   optimistically, bounded by the in-flight window.
 * - snapshot: the follower needs InstallSnapshot; no appends until it is done.
 */
export class Progress {
  match = 0;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot' = 'probe';
  /** In probe state: an append was sent and not yet answered. */
  probeSent = false;
  /** In snapshot state: the snapshot index being sent and the next chunk's offset. */
  pendingSnapshot = 0;
  snapshotOffset = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  learner: boolean;
  /** `match` when the previous heartbeat answer arrived: unchanged twice in a row while behind means a lost append. */
  matchAtLastHeartbeat = -1;
  /** The highest commit index sent to the follower, in an append or a heartbeat (RaftConfig.deferCommitNotice). */
  commitSent = 0;
  readonly inflights = new Inflights();

  constructor(next: number, learner: boolean) {
    this.next = next;
    this.learner = learner;
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = 'probe';
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotOffset = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** An acknowledgement up to `index`: returns whether `match` moved. */
  maybeUpdate(index: number): boolean {
    const updated = this.match < index;
    if (updated) {
      this.match = index;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of the append whose previous index was `rejected`; `matchHint` is the
   * highest index that may match. Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(maxInflightMsgs: number, maxInflightBytes: number): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full(maxInflightMsgs, maxInflightBytes);
      case 'snapshot':
        return true;
    }
  }

  /** Records an append of entries up to `lastIndex` (entries.length > 0) of `bytes`. */
  sentEntries(lastIndex: number, bytes: number): void {
    if (this.state === 'replicate') {
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex, bytes);
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  status(): ProgressStatus {
    return { match: this.match, next: this.next, state: this.state, recentActive: this.recentActive, learner: this.learner };
  }
}

/**
 * What a leader knows of every member's log, and what a candidate knows of the votes
 * it asked for (etcd-io/raft's tracker.ProgressTracker). Who counts as a voter is
 * raft/membership.ts's business; the voters are passed in.
 */
export class ProgressTracker {
  /** Leader only: one per voter and learner, including this node. */
  private readonly prs = new Map<NodeId, Progress>();
  /** Candidates and pre-candidates: granted (true) or rejected (false) per voter. */
  private readonly votes = new Map<NodeId, boolean>();

  get(id: NodeId): Progress | undefined {
    return this.prs.get(id);
  }

  /** Every tracked node but `self`, in the core's id order (the order messages go out in). */
  peers(self: NodeId): NodeId[] {
    return sortedIds(this.prs.keys()).filter((id) => id !== self);
  }

  /** Forgets every progress and vote: a new term or role. */
  reset(): void {
    this.prs.clear();
    this.votes.clear();
  }

  /** A new leader: it knows nothing of the members' logs and expects each at `next`. */
  startLeading(voters: Iterable<NodeId>, learners: Iterable<NodeId>, next: number): void {
    for (const id of voters) this.prs.set(id, new Progress(next, false));
    for (const id of learners) this.prs.set(id, new Progress(next, true));
  }

  /**
   * The membership changed under a leader: drop who left, mark promotions and
   * demotions, track newcomers from `next`. The leader (`self`) keeps its progress
   * even when it removed or demoted itself: it leads on until that change is applied.
   */
  syncMembers(voters: ReadonlySet<NodeId>, learners: ReadonlySet<NodeId>, self: NodeId, next: number): void {
    const known = new Set([...voters, ...learners, self]);
    for (const id of [...this.prs.keys()]) if (!known.has(id)) this.prs.delete(id);
    for (const id of known) {
      const pr = this.prs.get(id);
      if (pr) pr.learner = !voters.has(id);
      else this.prs.set(id, new Progress(next, !voters.has(id)));
    }
  }

  /** The largest index a majority of `voters` hold. */
  committedIndex(voters: ReadonlySet<NodeId>): number {
    return committedIndex(voters, (id) => this.prs.get(id)?.match ?? 0);
  }

  /** Whether a majority of `voters` (counting `self`) was heard from since the last round. */
  quorumActive(voters: ReadonlySet<NodeId>, self: NodeId): boolean {
    return hasMajority(voters, (id) => id === self || this.prs.get(id)?.recentActive === true);
  }

  /** Starts a new check-quorum round: only `self` counts as heard from. */
  resetRecentActive(self: NodeId): void {
    for (const [id, pr] of this.prs) pr.recentActive = id === self;
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a voter's first answer (later ones change nothing) and returns the election's outcome so far. */
  recordVote(voters: ReadonlySet<NodeId>, from: NodeId, granted: boolean): VoteResult {
    if (voters.has(from) && !this.votes.has(from)) this.votes.set(from, granted);
    return voteResult(voters, this.votes);
  }

  status(): Record<NodeId, ProgressStatus> {
    const out: Record<NodeId, ProgressStatus> = {};
    for (const [id, pr] of this.prs) out[id] = pr.status();
    return out;
  }
}
