import type { ProgressStatus } from './types.js';

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
