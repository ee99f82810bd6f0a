// Types of the Raft core. The core is pure: no I/O, no timers, no clock, no
// randomness of its own, no imports from node: or src/. See raft/README.md.

export type NodeId = string;

/**
 * Every term, log index and commit index is an integer in [0, RAFT_NUMBER_LIMIT).
 * 2^52 leaves room above it: any such number plus one, or plus an entry count or a
 * byte count below the same bound, is still an exact integer (below 2^53). A message
 * carrying a number at or above it is refused (raft/validate.ts, used by the peer-frame
 * decoder and again by step()), and a node never campaigns to a term at or above it,
 * so no node ever persists a term it could not increment.
 */
export const RAFT_NUMBER_LIMIT = 2 ** 52;

/**
 * The most a message may raise a node's term in one step. Terms grow by one per
 * election, and pre-vote keeps a partitioned node from inflating its own, so no
 * correct peer is ever a million terms ahead; a forged frame that is (one just under
 * RAFT_NUMBER_LIMIT, say) would leave the cluster no terms to campaign with. With this
 * bound, spending the term space takes about 2^32 forged frames instead of one.
 */
export const MAX_TERM_JUMP = 2 ** 20;

/** A change of membership, one node at a time (Raft thesis §4.1, as etcd-io/raft). */
export type ConfChange =
  /** Adds a new voter, or promotes a learner to voter. */
  | { type: 'addVoter'; node: NodeId }
  /** Adds a new learner (receives the log, does not vote), or demotes a voter. */
  | { type: 'addLearner'; node: NodeId }
  | { type: 'removeNode'; node: NodeId };

export interface NormalEntry {
  type: 'normal';
  term: number;
  index: number;
  /** Opaque to the core; empty for the no-op a new leader appends. */
  data: Uint8Array;
}

export interface ConfChangeEntry {
  type: 'confChange';
  term: number;
  index: number;
  change: ConfChange;
}

export type Entry = NormalEntry | ConfChangeEntry;

export interface HardState {
  term: number;
  /** The node voted for in `term`, or null. */
  vote: NodeId | null;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMeta {
  /** Last log index the snapshot covers, and its term. */
  index: number;
  term: number;
  /** Membership as of `index`. */
  conf: ConfState;
}

/** A log-compaction snapshot: the application's state as of `meta.index`. */
export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

interface MessageBase {
  from: NodeId;
  to: NodeId;
  term: number;
}

/** AppendEntries. `index`/`logTerm` name the entry just before `entries`. */
export interface AppendMessage extends MessageBase {
  type: 'app';
  index: number;
  logTerm: number;
  entries: Entry[];
  commit: number;
}

/**
 * Answer to `app` (and the final answer to an installed snapshot). Accepted: `index`
 * is the follower's last index matching the leader. Rejected: `index` is the
 * rejected `app.index`, and (`rejectHint`, `logTerm`) the follower's hint for fast
 * backtracking: its largest index ≤ min(app.index, its last) whose term ≤ app.logTerm.
 */
export interface AppendResponseMessage extends MessageBase {
  type: 'appResp';
  index: number;
  reject: boolean;
  rejectHint: number;
  logTerm: number;
}

/** RequestVote, or a pre-vote (thesis §9.6) that changes no state on either side. */
export interface VoteMessage extends MessageBase {
  type: 'vote' | 'preVote';
  /** The candidate's last log index and term. */
  index: number;
  logTerm: number;
  /** Set when campaigning because of a leadership transfer: bypasses the leader lease. */
  transfer: boolean;
}

export interface VoteResponseMessage extends MessageBase {
  type: 'voteResp' | 'preVoteResp';
  reject: boolean;
}

/** `ctx` carries a ReadIndex round's id; the response echoes it. */
export interface HeartbeatMessage extends MessageBase {
  type: 'heartbeat';
  commit: number;
  ctx: string | null;
}

export interface HeartbeatResponseMessage extends MessageBase {
  type: 'heartbeatResp';
  ctx: string | null;
}

/** One chunk of InstallSnapshot. The last chunk has offset + data.length === totalBytes. */
export interface SnapshotChunkMessage extends MessageBase {
  type: 'snap';
  meta: SnapshotMeta;
  offset: number;
  totalBytes: number;
  data: Uint8Array;
}

/** Acknowledges snapshot chunks: the follower wants the chunk starting at `nextOffset`. */
export interface SnapshotResponseMessage extends MessageBase {
  type: 'snapResp';
  snapIndex: number;
  snapTerm: number;
  nextOffset: number;
}

/** Leadership transfer: the receiver campaigns at once. */
export interface TimeoutNowMessage extends MessageBase {
  type: 'timeoutNow';
}

/** A follower asks the leader for a read index on behalf of its client. */
export interface ReadIndexMessage extends MessageBase {
  type: 'readIndex';
  ctx: string;
}

export interface ReadIndexResponseMessage extends MessageBase {
  type: 'readIndexResp';
  ctx: string;
  index: number;
}

export type Message =
  | AppendMessage
  | AppendResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotChunkMessage
  | SnapshotResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

export type MessageType = Message['type'];

/**
 * Why step() set a message aside without acting on it (null: it acted, or the message
 * was simply stale, as Raft expects some to be). The driver counts these.
 *   - invalid: a number out of range or fields that contradict each other (raft/validate.ts);
 *   - misaddressed: `to` is another node;
 *   - stranger: the sender is outside the configuration this node knows, while it
 *     hears from a leader (see Raft.step).
 */
export type StepRefusal = 'invalid' | 'misaddressed' | 'stranger';

/** A linearizable read may be served once the applied index reaches `index`. */
export interface ReadState {
  ctx: string;
  index: number;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Who this node believes leads, and its own role: volatile, never persisted. */
export interface SoftState {
  leader: NodeId | null;
  role: Role;
}

/**
 * What the driver must do, in this order:
 *   1. persist `hardState`, `snapshot` and `entries` in one atomic, synced write
 *      (`entries` replace every stored entry from `entries[0].index` on; a
 *      `snapshot` replaces the whole stored log up to and including its index,
 *      and stored entries after it are dropped);
 *   2. send `messages` (they may depend on 1: a vote, an append acknowledgement);
 *   3. apply `snapshot` (if any), then `committedEntries`, in order; serve
 *      `readStates` once the applied index reaches theirs;
 *   4. call `advance(ready)`. No other method may be called between ready() and advance().
 * `softState` needs no action: it tells the driver of a new leader or role.
 */
export interface Ready {
  /**
   * The leader and role, when either changed since the previous ready() (the first
   * ready() of a node, fresh or restarted, always carries it); null otherwise.
   */
  softState: SoftState | null;
  hardState: HardState | null;
  snapshot: Snapshot | null;
  entries: Entry[];
  messages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
}

/**
 * Switches that break a safety rule on purpose, so tests can prove the simulator
 * catches the bug (make sim-mutants). Never set outside tests.
 */
export interface UnsafeTestingKnobs {
  /** Commit entries of earlier terms by counting replicas (breaks the Figure 8 rule). */
  commitPriorTermEntriesByCount?: boolean;
  /** Accept a membership change while another is pending (breaks one-change-at-a-time). */
  allowConcurrentConfChanges?: boolean;
  /** Serve ReadIndex reads without a heartbeat round confirming leadership (breaks linearizable reads). */
  readsWithoutQuorum?: boolean;
}

export interface RaftConfig {
  id: NodeId;
  /** Followers campaign after a randomized timeout in [electionTicks, 2·electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  /** Injected randomness in [0, 1): seeded in tests, crypto-backed in production. */
  random: () => number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Upper bound on the entry bytes of one append message (at least one entry is sent). */
  maxSizePerMsgBytes: number;
  /** Appends in flight per follower in the replicate state (pipelining window). */
  maxInflightMsgs: number;
  /** Entry bytes in flight per follower (0: no limit). */
  maxInflightBytes: number;
  /** Proposals are refused while this many uncommitted entry bytes are pending (0: no limit). */
  maxUncommittedBytes: number;
  snapshotChunkBytes: number;
  /**
   * A fresh ctx for each of the leader's heartbeat rounds (the driver's contact probe,
   * src/node/quorum-contact.ts), or null for none: the round is then also a ReadIndex
   * round of the leader's own, so its answers carry the ctx back. Without it, and
   * before the term's first commit (when a read must wait), rounds carry none, as in
   * etcd-io/raft.
   */
  heartbeatCtx?: () => string | null;
  /**
   * Learners get one of every this many periodic heartbeat rounds (default 1: every
   * round, as in etcd-io/raft). A learner never campaigns and appends carry the commit
   * index, so a cluster of many learners is spared most of its heartbeats; the leader
   * still hears each learner often enough for recentActive, which it resets every
   * election timeout, if rounds * heartbeatTicks stays well under electionTicks.
   */
  learnerHeartbeatRounds?: number;
  /**
   * A commit the leader learns of is not broadcast at once in an append of its own
   * (etcd-io/raft's default): the next append or heartbeat to each follower carries it,
   * or announceCommit(), which the driver calls a moment later and the leader's own
   * tick calls at the latest. Under load every round has appends going out anyway, so
   * this spares one message each way per follower and round (default false).
   */
  deferCommitNotice?: boolean;
  unsafe?: UnsafeTestingKnobs;
}

/** What the node had persisted when it (re)starts. */
export interface InitialState {
  hardState: HardState;
  /** The latest persisted snapshot, or null. */
  snapshot: Snapshot | null;
  /** Persisted entries after the snapshot, contiguous. */
  entries: Entry[];
  /** Index the application has already applied (≥ snapshot index); later committed entries are delivered again. */
  applied: number;
}

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | {
      ok: false;
      reason: 'notLeader' | 'transferring' | 'confChangePending' | 'tooManyUncommittedBytes' | 'invalid';
      leader: NodeId | null;
    };

export interface ProgressStatus {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  recentActive: boolean;
  learner: boolean;
}

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId | null;
  leader: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  conf: ConfState;
  /** Only on the leader. */
  progress: Record<NodeId, ProgressStatus> | null;
  leadTransferee: NodeId | null;
}
