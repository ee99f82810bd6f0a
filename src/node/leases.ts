// The lease protocol. Every node renews its lease with the leader every leaseRenewMs;
// the leader records the renewal (the node is alive) and, while it still has its
// quorum, acknowledges it. A node runs its jobs only while its last acknowledgement is
// younger than leaseTimeoutMs; the leader declares a node lost only after
// nodeTimeoutMs without a renewal, which is longer, so a node's jobs have stopped by
// the time they are given to another node.
import type { NodeId } from '../../raft/types.js';
import type { NodeRecord } from '../state/records.js';
import type { Clock } from '../util/clock.js';
import type { PeerFrame } from './frames.js';
import type { RaftNode } from './raft-node.js';

export interface LeaseOptions {
  id: NodeId;
  clock: Clock;
  raft: Pick<RaftNode, 'status' | 'hasQuorumContact'>;
  send: (to: NodeId, frame: PeerFrame) => boolean;
  /** The shortest election timeout: a leader not answered by its quorum for this long may already be replaced. */
  electionTimeoutMs: number;
  /** A node whose last acknowledgement is this old stops running its jobs. */
  leaseTimeoutMs: number;
  /** The leader declares a node lost after this long without a renewal (longer than leaseTimeoutMs). */
  nodeTimeoutMs: number;
  leaseRenewMs: number;
  /**
   * UNSAFE, tests only (the whole-node simulator's mutant): the leader declares a
   * silent node lost after two missed renewals instead of nodeTimeoutMs, while the
   * node's own lease may still be valid, so its jobs can run twice.
   */
  reassignBeforeLeaseBound?: boolean;
  /** Counts renewals the leader did not acknowledge for want of its quorum. */
  onAckWithheld?: () => void;
  /**
   * Brings this node's applied state up to the leader's commit (a read barrier). A
   * lease that starts, or comes back after it lapsed, counts only once this resolved:
   * until then the state this node applied may still assign it attempts the log has
   * already given to another node (it was declared lost meanwhile, or restarted with
   * an old commit index), and starting or thawing those would run a job twice.
   */
  catchUp?: () => Promise<void>;
}

export class Leases {
  /** Leader only: when each node last renewed, on the leader's clock. */
  readonly lastSeen = new Map<NodeId, number>();
  /** When the lease this node holds was last granted, on its own clock. */
  private lastAckMs = 0;
  /** This node caught up with the log (catchUp) since its lease last started; `period` counts the starts. */
  private caughtUp = false;
  private catchingUp = false;
  private period = 0;
  private readonly opts: LeaseOptions;

  constructor(opts: LeaseOptions) {
    this.opts = opts;
  }

  /** A lease frame from a peer (the RaftNode hands over frames that are not its own). */
  onFrame(from: NodeId, frame: PeerFrame): void {
    const { raft, clock } = this.opts;
    if (frame.k === 'lease') {
      if (raft.status().role !== 'leader') return;
      // The renewal is recorded either way (the node is alive); the ack, which lets it
      // run its jobs for another lease, only while this leader still has its quorum.
      this.lastSeen.set(from, clock.now());
      if (!raft.hasQuorumContact(this.opts.electionTimeoutMs)) {
        this.opts.onAckWithheld?.();
        return;
      }
      this.opts.send(from, { k: 'leaseAck', at: frame.at });
    } else if (frame.k === 'leaseAck') {
      // `at` is our own clock's send time: the lease counts from when we asked. Only the
      // leader grants it, and never from the future: an ack with a later `at` would
      // keep this worker's lease valid for good, wherever the leader is.
      if (from !== raft.status().leader) return;
      this.grant(Math.min(frame.at, clock.now()));
    }
  }

  /** One renewal: the leader grants itself a lease while it has its quorum; a follower asks the leader. */
  renew(): void {
    const { raft, clock } = this.opts;
    const st = raft.status();
    if (st.role === 'leader') {
      this.lastSeen.set(this.opts.id, clock.now());
      if (raft.hasQuorumContact(this.opts.electionTimeoutMs)) this.grant(clock.now());
      else this.opts.onAckWithheld?.();
    } else if (st.leader !== null) {
      this.opts.send(st.leader, { k: 'lease', at: clock.now() });
    }
  }

  /** Whether this node may run its jobs: its lease was granted less than leaseTimeoutMs ago. */
  valid(): boolean {
    if (!this.fresh()) return false;
    if (this.caughtUp || !this.opts.catchUp) return true;
    this.startCatchUp();
    return false;
  }

  private fresh(): boolean {
    return this.opts.clock.now() - this.lastAckMs < this.opts.leaseTimeoutMs;
  }

  /** A lease granted from `at` on; one that had lapsed (or never was) must catch up again before it counts. */
  private grant(at: number): void {
    if (!this.fresh()) {
      this.caughtUp = false;
      this.period += 1;
    }
    this.lastAckMs = Math.max(this.lastAckMs, at);
  }

  private startCatchUp(): void {
    const catchUp = this.opts.catchUp;
    if (!catchUp || this.catchingUp) return;
    this.catchingUp = true;
    const period = this.period;
    catchUp().then(
      () => {
        this.catchingUp = false;
        if (period === this.period) this.caughtUp = true;
      },
      () => {
        // No leader to confirm with yet: the next check tries again.
        this.catchingUp = false;
      },
    );
  }

  /**
   * A new leader gives every member still counted up a full node timeout to check in.
   * Not the lost ones: a fresh lease would bring them back as alive (and placeable)
   * until they time out again; one that is really up renews its lease and comes back
   * by itself.
   */
  startTerm(nodes: Iterable<Readonly<NodeRecord>>): void {
    this.lastSeen.clear();
    this.admit(nodes);
  }

  /**
   * A node registered after the term started (a joiner, or a member whose registration
   * applied after the term's first round) gets its node timeout from when this leader
   * first sees its record: without an entry the plan keeps its state as it is, so a
   * node that died before its first renewal reached the leader stayed alive for good.
   * The leader itself is always current.
   */
  admit(nodes: Iterable<Readonly<NodeRecord>>): void {
    const now = this.opts.clock.now();
    for (const n of nodes) if ((n.state === 'alive' || n.state === 'suspect') && !this.lastSeen.has(n.id)) this.lastSeen.set(n.id, now);
    this.lastSeen.set(this.opts.id, now);
  }

  /** How long the leader waits for a renewal before it declares a node lost. */
  lossTimeoutMs(): number {
    return this.opts.reassignBeforeLeaseBound ? Math.min(this.opts.nodeTimeoutMs, 2 * this.opts.leaseRenewMs) : this.opts.nodeTimeoutMs;
  }
}
