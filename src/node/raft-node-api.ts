// What RaftNode (raft-node.ts) is built from and talks through: its options, the
// application it drives, the peer link, the hooks tests watch it by, and the names a
// proposal's failure travels under between nodes.
import type { Logger } from 'pino';
import type { Entry, InitialState, NodeId, NormalEntry, RaftConfig, Ready, Snapshot } from '../../raft/types.js';
import type { RaftStorage } from '../storage/raft-storage.js';
import type { Clock } from '../util/clock.js';
import { NoLeaderError, ProposalLostError, ProposalTimeoutError } from './errors.js';
import type { FrameDropReason, PeerFrame } from './frames.js';

/** The part of the peer transport the driver needs. */
export interface PeerLink {
  send(to: NodeId, frame: PeerFrame): boolean;
}

/** The replicated application: deterministic apply, snapshot and restore. */
export interface Application {
  /** Applies a committed normal entry (never the empty no-op) of term `term`; the result goes to its proposer. */
  apply(index: number, data: Uint8Array, term: number): unknown;
  /** Sees each committed membership change after the core applied it. */
  applyConfChange(entry: Extract<Entry, { type: 'confChange' }>): void;
  /** Sees each leader's empty no-op entry as it is applied; only an application that digests its whole log needs it. */
  applyNoop?(entry: NormalEntry): void;
  snapshot(): Uint8Array;
  restore(snapshot: Snapshot): void;
}

/** What tests and the simulators watch of the loop; production leaves it out. */
export interface RaftNodeObserver {
  /** Each ready as the core hands it out, before anything is done with it. */
  ready?(rd: Ready): void;
  /** A read's index is applied here: the read may be served (every ReadState, whoever asked). */
  readReleased?(ctx: string, index: number): void;
  /** The log was compacted up to this snapshot, and the snapshot is durable. */
  compacted?(snapshot: Snapshot): void;
}

/**
 * Switches that break the driver's safety rules on purpose, so that the simulator can
 * prove it catches the bug (make sim-mutants). Never set outside tests.
 */
export interface UnsafeDriverKnobs {
  /**
   * Send a ready's messages, apply it and advance before its write: the write is made
   * at the next turn of the loop, so a crash in between loses what the messages
   * already claimed (a vote, an acknowledged append).
   */
  sendBeforePersist?: boolean;
  /**
   * Credit a follower's quorum contact with the ARRIVAL time of any answer (append,
   * heartbeat, snapshot), not the send time of the heartbeat it answers: a delayed
   * answer then stretches the leader's authority, and its node leases, by the delay
   * (quorum-contact.ts). For the test that shows the send time matters.
   */
  creditAnswerArrival?: boolean;
}

export interface RaftNodeOptions {
  /** Frames that are not the driver's own (leases): handed to the node. */
  onOtherFrame?: (from: NodeId, frame: PeerFrame) => void;
  /** Each frame from a peer that was dropped unacted on, and why (a metric). */
  onFrameDropped?: (reason: FrameDropReason) => void;
  /** The leader this node knows changed (null: none known now). */
  onLeaderChange?: (leader: NodeId | null) => void;
  /** A ready's write to storage took `ms` (a synced batch: the fsync latency; metrics). */
  onPersisted?: (ms: number) => void;
  /** A ready's committed entries took `ms` to apply (metrics). */
  onApplied?: (ms: number, entries: number) => void;
  /** A proposal forwarded by peer `from` is proposed only if this returns null; else the reason goes back to it. Default: all are. */
  admitForwarded?: (from: NodeId, data: Uint8Array) => string | null;
  raft: RaftConfig;
  initial: InitialState;
  store: RaftStorage;
  link: PeerLink;
  app: Application;
  logger: Logger;
  /** Ticks, request timeouts, quorum-contact times: the system clock in production. */
  clock: Clock;
  tickMs: number;
  /**
   * Called on every tick of the driver's own ticker, after the core's tick: the node's
   * other periodic work runs on it, so an idle node wakes once a tick, not once per timer.
   */
  onTick?: () => void;
  /** Compact the log once this many entries were applied since the last snapshot. */
  compactEveryEntries: number;
  /** Compact it also once the entries applied since the last snapshot carry this many bytes of data (default: no such bound). */
  compactEveryBytes?: number;
  /** A proposal or read not settled in this time is rejected (the caller may retry). */
  requestTimeoutMs: number;
  /**
   * A failed write or a broken invariant of the core: continuing could lose
   * acknowledged data, so the node stops. Default: the process exits with code 70.
   */
  onFatal?: (err: Error) => void;
  /**
   * Runs the loop later in the same event-loop iteration (production: setImmediate),
   * so that everything that arrives in one iteration (HTTP proposals, peers' answers)
   * goes into one ready: one synced write and one message per peer for all of it.
   * Default: the loop runs at once, which deterministic tests step through.
   */
  deferTurn?: (run: () => void) => void;
  /**
   * With RaftConfig.deferCommitNotice: a commit that no append has carried to a
   * follower this many ms after the loop went idle is sent on its own. Default: at the
   * leader's next tick.
   */
  commitNoticeMs?: number;
  observer?: RaftNodeObserver;
  unsafe?: UnsafeDriverKnobs;
}

/** A proposal's failure as a forwarded proposal's answer names it. */
export function errorName(err: unknown): string {
  if (err instanceof NoLeaderError) return 'noLeader';
  if (err instanceof ProposalLostError) return 'lost';
  if (err instanceof ProposalTimeoutError) return 'timeout';
  return err instanceof Error ? err.message : String(err);
}

export function errorFromName(name: string): Error {
  switch (name) {
    case 'noLeader':
      return new NoLeaderError();
    case 'lost':
      return new ProposalLostError();
    case 'timeout':
      return new ProposalTimeoutError();
    default:
      return new Error(name);
  }
}
