// Linearizable reads on the leader (ReadIndex, Raft thesis §6.4; etcd-io/raft's
// read_only.go). A read records the commit index when it arrives; it may be served once
// a majority of voters has confirmed, after it arrived, that this node still leads (a
// heartbeat round carrying the read's ctx). A confirmation covers every older read too.
import { hasMajority } from './quorum.js';
import type { NodeId } from './types.js';

export interface PendingRead {
  ctx: string;
  /** The commit index when the read arrived: the read may be served once applied ≥ it. */
  index: number;
  /** Who asked: this node or a follower that forwarded its client's read. */
  from: NodeId;
  /** Who confirmed leadership for this read. */
  acks: Set<NodeId>;
}

export class PendingReads {
  /** Reads waiting for the first commit of this term (the leader's commit index may lag before it). */
  private heldForCommit: Array<{ ctx: string; from: NodeId }> = [];
  /** Reads waiting for a majority of acknowledgements, oldest first. */
  private queue: PendingRead[] = [];

  /** Drops every read: this node no longer leads, and the askers retry. */
  reset(): void {
    this.heldForCommit = [];
    this.queue = [];
  }

  /** Holds a read until this leader commits an entry of its term. */
  holdForCommit(ctx: string, from: NodeId): void {
    this.heldForCommit.push({ ctx, from });
  }

  /** The reads held for the first commit, now that it happened; they are handled afresh. */
  takeHeldForCommit(): Array<{ ctx: string; from: NodeId }> {
    const held = this.heldForCommit;
    this.heldForCommit = [];
    return held;
  }

  /** Queues a read at commit index `index`; the leader (`self`) confirms it at once. */
  add(ctx: string, index: number, from: NodeId, self: NodeId): PendingRead {
    const read: PendingRead = { ctx, index, from, acks: new Set([self]) };
    this.queue.push(read);
    return read;
  }

  /**
   * A heartbeat answer from `from` carrying `ctx`. Returns the reads a majority of
   * `voters` has now confirmed (the read and every older one), oldest first, or none.
   */
  ack(from: NodeId, ctx: string, voters: ReadonlySet<NodeId>): PendingRead[] {
    const read = this.queue.find((r) => r.ctx === ctx);
    if (!read || !voters.has(from)) return [];
    read.acks.add(from);
    if (!hasMajority(voters, (id) => read.acks.has(id))) return [];
    return this.release(read);
  }

  /** Removes and returns `read` and every read queued before it, oldest first. */
  release(read: PendingRead): PendingRead[] {
    const upTo = this.queue.indexOf(read);
    return this.queue.splice(0, upTo + 1);
  }
}
