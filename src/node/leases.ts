// The lease protocol. Every node renews its lease with the leader every leaseRenewMs;
// the leader records the renewal (the node is alive) and, while it still has its
// quorum, acknowledges it. A node runs its jobs only while its last acknowledgement is
// younger than leaseTimeoutMs, counted from when it sent the renewal. The leader
// declares a node lost only once every lease the node may hold has ended, plus the
// time its worker needs to freeze its jobs (the fence margin), so a node's jobs have
// stopped executing by the time they are given to another node.
//
// Which leases a node may hold, as the leader sees it (docs/design.md, "The lease bound"):
//   - the leader's own: granted for a renewal sent before the leader received it, so
//     ending at most leaseTimeoutMs after that receipt;
//   - an earlier leader's: such a leader acknowledges a renewal only while a quorum
//     answered heartbeats it sent within quorumContactMs (quorum-contact.ts), so it
//     grants nothing later than quorumContactMs after this leader's election, and
//     every lease it granted ends by election + quorumContactMs + leaseTimeoutMs.
// So a node's last possible lease starts at the later of its last renewal here and
// the term floor (election + quorumContactMs), and the node is lost once
// leaseTimeoutMs + fenceMarginMs have passed since. Intervals are measured on each
// node's monotonic clock; the margin also covers clock rates that differ a little.
//
// Lease frames ride with Raft's heartbeats (holdAcksMs, heartbeatAnswered): a follower
// renews when it answers a heartbeat of its leader and the renewal is nearly due, and
// the leader acknowledges at its next heartbeat to that node, each in the same peer
// message as the Raft frame. An idle leader's cost is per message, one per peer and
// heartbeat round, not one more per renewal and ack. Holding an ack only shortens the
// lease (it still counts from the follower's `at`), and the quorum-contact check is
// made when the ack is sent, so the bounds above hold as they are.
import type { NodeId } from '../../raft/types.js';
import type { PlanInput } from '../scheduler/plan.js';
import type { NodeRecord } from '../state/records.js';
import type { Clock, Timer } from '../util/clock.js';
import type { PeerFrame } from './frames.js';
import type { RaftNode } from './raft-node.js';

export interface LeaseOptions {
  id: NodeId;
  clock: Clock;
  raft: Pick<RaftNode, 'status' | 'hasQuorumContact'>;
  send: (to: NodeId, frame: PeerFrame) => boolean;
  /** The leader grants a lease only while a quorum of voters answered heartbeats it sent this recently (RaftNode.hasQuorumContact). */
  quorumContactMs: number;
  /** A node whose last acknowledgement is this old stops running its jobs. */
  leaseTimeoutMs: number;
  leaseRenewMs: number;
  /**
   * How long the leader still waits once the last lease a node may hold has ended,
   * before it declares the node lost: the worker's time to freeze its jobs after its
   * lease ends (it is told at that instant, onLapse), with room for clock rates.
   */
  fenceMarginMs: number;
  /**
   * UNSAFE, tests only (the whole-node simulator's mutant): the leader declares a
   * silent node lost after two missed renewals, and takes no account of leases an
   * earlier leader may have granted, while the node's own lease may still be valid,
   * so its jobs can run twice.
   */
  reassignBeforeLeaseBound?: boolean;
  /**
   * Leader: a renewal's ack waits for the next heartbeat to its sender (heartbeatSent)
   * to leave in the same message, at most this long (flushHeldAcks). Absent: acked at once.
   */
  holdAcksMs?: number;
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
  /** What a renewal carries besides its time: this node's build and newest state check (cluster-versions.ts). */
  renewalExtras?: () => Pick<Extract<PeerFrame, { k: 'lease' }>, 'build' | 'check'>;
  /**
   * Leader: a renewal arrived with what it carries. False refuses it: the node is not
   * seen and its lease not granted (its build cannot run at the cluster's version).
   */
  onRenewal?: (from: NodeId, frame: Extract<PeerFrame, { k: 'lease' }>) => boolean;
  /** Called at the instant this node's lease ends (unless renewed): the worker fences now, not at its next look. */
  onLapse?: () => void;
  /** Leader only: called at the instant a node's loss bound passes (unless it renewed), so a round declares it lost now, not at its next tick. */
  onBoundPassed?: () => void;
}

export class Leases {
  /** Leader only: when each node last renewed (or the term began), on the leader's wall clock: what GET /v1/cluster shows. */
  readonly lastSeen = new Map<NodeId, number>();
  /** Leader only: per node, the latest moment (monotonic) a lease it may hold can have started. */
  private readonly leaseFrom = new Map<NodeId, number>();
  /** Leader only: no lease an earlier leader granted started later than this (monotonic). */
  private termFloorMs = 0;
  /** Leader only: per node, the newest renewal not yet acknowledged (holdAcksMs), the term it came in, and since when one is held. */
  private readonly heldAcks = new Map<NodeId, { at: number; term: number; sinceMs: number }>();
  /** When this node last renewed (asked its leader, or as leader granted itself a lease), monotonic. */
  private lastRenewMs = Number.NEGATIVE_INFINITY;
  /** Follower: when it last answered a heartbeat of its leader, monotonic. */
  private lastHeartbeatMs = Number.NEGATIVE_INFINITY;
  /** When the lease this node holds was last granted, on its own monotonic clock. */
  private lastAckMs = Number.NEGATIVE_INFINITY;
  /** This node caught up with the log (catchUp) since its lease last started; `period` counts the starts. */
  private caughtUp = false;
  private catchingUp = false;
  private period = 0;
  private lapseTimer: Timer | null = null;
  /** Leader only: fires at the next loss bound still ahead. */
  private boundTimer: Timer | null = null;
  private readonly opts: LeaseOptions;

  constructor(opts: LeaseOptions) {
    this.opts = opts;
  }

  /** A lease frame from a peer (the RaftNode hands over frames that are not its own). */
  onFrame(from: NodeId, frame: PeerFrame): void {
    const { raft, clock } = this.opts;
    if (frame.k === 'lease') {
      const st = raft.status();
      if (st.role !== 'leader') return;
      if (this.opts.onRenewal?.(from, frame) === false) return;
      // The renewal is recorded either way (the node is alive); the ack, which lets it
      // run its jobs for another lease, only while this leader still has its quorum.
      this.seen(from);
      if (this.opts.holdAcksMs === undefined) {
        this.ack(from, frame.at);
        return;
      }
      const held = this.heldAcks.get(from);
      this.heldAcks.set(from, { at: Math.max(held?.at ?? frame.at, frame.at), term: st.term, sinceMs: held?.sinceMs ?? clock.monotonic() });
    } else if (frame.k === 'leaseAck') {
      // `at` is our own clock's send time: the lease counts from when we asked. Only the
      // leader grants it, and never from the future: an ack with a later `at` would
      // keep this worker's lease valid for good, wherever the leader is.
      if (from !== raft.status().leader) return;
      this.grant(Math.min(frame.at, clock.monotonic()));
    }
  }

  /** Acknowledges a renewal sent at `at` (the follower's clock), if this node has its quorum now. */
  private ack(to: NodeId, at: number): void {
    if (!this.opts.raft.hasQuorumContact(this.opts.quorumContactMs)) {
      this.opts.onAckWithheld?.();
      return;
    }
    this.opts.send(to, { k: 'leaseAck', at });
  }

  /** Leader: a heartbeat to `to` is being sent; a held ack for it joins the same message. */
  heartbeatSent(to: NodeId): void {
    const held = this.heldAcks.get(to);
    if (!held) return;
    this.heldAcks.delete(to);
    this.ackHeld(to, held);
  }

  /** Leader: sends the acks held for holdAcksMs or longer (no heartbeat went to their nodes meanwhile); forgets them all once it no longer leads. */
  flushHeldAcks(): void {
    if (this.heldAcks.size === 0) return;
    const now = this.opts.clock.monotonic();
    const leading = this.opts.raft.status().role === 'leader';
    for (const [to, held] of this.heldAcks) {
      if (leading && now - held.sinceMs < (this.opts.holdAcksMs ?? 0)) continue;
      this.heldAcks.delete(to);
      this.ackHeld(to, held);
    }
  }

  /** A held renewal is acknowledged only by the leader of the term it arrived in (a later term's floor already covers it). */
  private ackHeld(to: NodeId, held: { at: number; term: number }): void {
    const st = this.opts.raft.status();
    if (st.role === 'leader' && st.term === held.term) this.ack(to, held.at);
  }

  /**
   * Follower: it is answering a heartbeat from `from`. If that is its leader and the
   * next heartbeat, as far apart as the last two, would come after a renewal is due,
   * the renewal goes with this answer: every heartbeat gap (a voter's, or a learner's
   * longer one) then carries one, early by less than a gap, with no timer jitter making
   * it miss and leave alone (renewIfDue) a moment later.
   */
  heartbeatAnswered(from: NodeId): void {
    const st = this.opts.raft.status();
    if (st.role === 'leader' || st.leader !== from) return;
    const now = this.opts.clock.monotonic();
    const gapMs = now - this.lastHeartbeatMs;
    this.lastHeartbeatMs = now;
    if (now - this.lastRenewMs + gapMs > this.opts.leaseRenewMs) this.renew();
  }

  /** A renewal if none was made for leaseRenewMs (heartbeat answers usually carry them first). */
  renewIfDue(): void {
    if (this.opts.clock.monotonic() - this.lastRenewMs >= this.opts.leaseRenewMs) this.renew();
  }

  /** One renewal: the leader grants itself a lease while it has its quorum; a follower asks the leader. */
  renew(): void {
    const { raft, clock } = this.opts;
    const st = raft.status();
    if (st.role === 'leader') {
      this.lastRenewMs = clock.monotonic();
      this.seen(this.opts.id);
      if (raft.hasQuorumContact(this.opts.quorumContactMs)) this.grant(clock.monotonic());
      else this.opts.onAckWithheld?.();
    } else if (st.leader !== null) {
      this.lastRenewMs = clock.monotonic();
      // Whole milliseconds (the frame carries an integer), rounded down: the lease counts from no later than the ask.
      this.opts.send(st.leader, { k: 'lease', at: Math.floor(clock.monotonic()), ...this.opts.renewalExtras?.() });
    }
  }

  /** Whether this node may run its jobs: its lease was granted less than leaseTimeoutMs ago. */
  valid(): boolean {
    if (!this.fresh()) return false;
    if (this.caughtUp || !this.opts.catchUp) return true;
    this.startCatchUp();
    return false;
  }

  /** Cancels the timers (the node stops). */
  stop(): void {
    this.lapseTimer?.cancel();
    this.lapseTimer = null;
    this.boundTimer?.cancel();
    this.boundTimer = null;
  }

  private fresh(): boolean {
    return this.opts.clock.monotonic() - this.lastAckMs < this.opts.leaseTimeoutMs;
  }

  /** A lease granted from `at` on; one that had lapsed (or never was) must catch up again before it counts. */
  private grant(at: number): void {
    if (!this.fresh()) {
      this.caughtUp = false;
      this.period += 1;
    }
    this.lastAckMs = Math.max(this.lastAckMs, at);
    this.armLapse();
  }

  /** One timer at a time, re-armed at each expiry the lease outlived: onLapse fires when it really ends. */
  private armLapse(): void {
    const onLapse = this.opts.onLapse;
    if (!onLapse || this.lapseTimer !== null) return;
    const dueMs = this.lastAckMs + this.opts.leaseTimeoutMs - this.opts.clock.monotonic();
    this.lapseTimer = this.opts.clock.after(Math.max(0, dueMs), () => {
      this.lapseTimer = null;
      if (this.fresh()) this.armLapse();
      else onLapse();
    });
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

  /** Leader only: a renewal from `id` arrived now (the lease it asked for started before), or its bound starts now. */
  private seen(id: NodeId): void {
    this.lastSeen.set(id, this.opts.clock.now());
    this.leaseFrom.set(id, Math.max(this.opts.clock.monotonic(), this.termFloorMs));
  }

  /**
   * This node leads a new term since `leaderSinceMs` (monotonic; it became leader then,
   * so the election was over by then). Every member still counted up may hold a lease
   * an earlier leader granted up to quorumContactMs later: that is where its lease
   * bound starts. Not the lost ones: a lease bound would bring them back as alive (and
   * placeable) until they time out again; one that is really up renews its lease and
   * comes back by itself.
   */
  startTerm(nodes: Iterable<Readonly<NodeRecord>>, leaderSinceMs: number): void {
    this.lastSeen.clear();
    this.leaseFrom.clear();
    this.termFloorMs = this.opts.reassignBeforeLeaseBound ? leaderSinceMs : leaderSinceMs + this.opts.quorumContactMs;
    this.admit(nodes);
    this.armBound();
  }

  /**
   * A node registered after the term started (a joiner, or a member whose registration
   * applied after the term's first round) gets its bound from when this leader first
   * sees its record: without an entry the plan keeps its state as it is, so a node
   * that died before its first renewal reached the leader stayed alive for good.
   * The leader itself is always current.
   */
  admit(nodes: Iterable<Readonly<NodeRecord>>): void {
    let added = false;
    for (const n of nodes) {
      if ((n.state !== 'alive' && n.state !== 'suspect') || this.leaseFrom.has(n.id)) continue;
      this.seen(n.id);
      added = true;
    }
    this.seen(this.opts.id);
    if (added) this.armBound();
  }

  /**
   * Arms one timer just past the earliest loss bound still ahead. Renewals only move
   * bounds later, so it may fire with none passed: it then re-arms. It stops once this
   * node no longer leads (startTerm re-arms).
   */
  private armBound(): void {
    const onBoundPassed = this.opts.onBoundPassed;
    if (!onBoundPassed) return;
    this.boundTimer?.cancel();
    this.boundTimer = null;
    const armedAt = this.opts.clock.monotonic();
    const bounds = [...this.leaseFrom.values()].map((from) => from + this.lossTimeoutMs());
    const next = Math.min(...bounds.filter((b) => b >= armedAt));
    if (next === Number.POSITIVE_INFINITY) return;
    // 1 ms past it: the plan declares a node lost once it is silent for longer than the loss timeout.
    this.boundTimer = this.opts.clock.after(next - armedAt + 1, () => {
      this.boundTimer = null;
      if (this.opts.raft.status().role !== 'leader') return;
      const now = this.opts.clock.monotonic();
      const passed = [...this.leaseFrom.values()].some((from) => from + this.lossTimeoutMs() >= armedAt && from + this.lossTimeoutMs() < now);
      this.armBound();
      if (passed) onBoundPassed();
    });
  }

  /**
   * How long the leader waits, from the start of the last lease a node may hold, before
   * it declares the node lost: the lease, then the fence margin.
   */
  lossTimeoutMs(): number {
    return this.opts.reassignBeforeLeaseBound ? 2 * this.opts.leaseRenewMs : this.opts.leaseTimeoutMs + this.opts.fenceMarginMs;
  }

  /** The plan's liveness input (scheduler/plan.ts): now and the lease starts on this node's monotonic clock. */
  liveness(): Pick<PlanInput, 'now' | 'lastSeenMs' | 'nodeTimeoutMs' | 'suspectAfterMs'> {
    const lossMs = this.lossTimeoutMs();
    return { now: this.opts.clock.monotonic(), lastSeenMs: this.leaseFrom, nodeTimeoutMs: lossMs, suspectAfterMs: Math.floor(lossMs / 2) };
  }
}
