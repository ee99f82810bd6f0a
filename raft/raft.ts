// The Raft consensus core, in the shape of etcd-io/raft: a state machine driven from
// outside. The driver ticks it, steps it with messages, proposes, and collects a
// Ready (what to persist, send and apply). Nothing here waits, reads a clock, draws
// randomness of its own or touches I/O, so the same code runs in production and in
// the deterministic simulator (test/sim/).
import { assert } from './assert.js';
import { RaftLog, entrySizeBytes } from './log.js';
import { Progress } from './progress.js';
import type {
  AppendMessage,
  AppendResponseMessage,
  ConfChange,
  ConfState,
  Entry,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  InitialState,
  Message,
  NodeId,
  ProposeResult,
  RaftConfig,
  RaftStatus,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotChunkMessage,
  SnapshotResponseMessage,
  StepRefusal,
  VoteMessage,
} from './types.js';
import { MAX_TERM_JUMP, RAFT_NUMBER_LIMIT } from './types.js';
import { messageProblem } from './validate.js';

type Outgoing = Message extends infer M ? (M extends Message ? Omit<M, 'from'> : never) : never;

interface PendingRead {
  ctx: string;
  /** The commit index when the read arrived: the read may be served once applied ≥ it. */
  index: number;
  from: NodeId;
  acks: Set<NodeId>;
}

interface SnapshotReceive {
  meta: Snapshot['meta'];
  chunks: Uint8Array[];
  bytes: number;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function concatBytes(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export class Raft {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;

  private term: number;
  private vote: NodeId | null;
  private lead: NodeId | null = null;
  private role: Role = 'follower';
  private readonly log: RaftLog;

  /**
   * Membership in effect: the newest in the log, committed or not (thesis §4.1), so
   * that a node never needs to know a change committed to count votes by it.
   */
  private readonly voters = new Set<NodeId>();
  private readonly learners = new Set<NodeId>();
  /** Membership before the first entry of the log: the snapshot's, or none. */
  private baseConf: ConfState = { voters: [], learners: [] };
  /** Index of the newest membership change in the log; 0 when none follows the snapshot. */
  private lastConfIndex = 0;
  /** Leader only: one per voter and learner, including this node. */
  private readonly prs = new Map<NodeId, Progress>();
  /** Candidates and pre-candidates: granted (true) or rejected (false) per voter. */
  private readonly votes = new Map<NodeId, boolean>();

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  private leadTransferee: NodeId | null = null;
  /** Index of the newest membership change proposed by this leader; none may follow until it is applied. */
  private pendingConfIndex = 0;
  private uncommittedBytes = 0;
  /** Leader: proposals appended since the last ready(); their appends are sent in one batch. */
  private appendPending = false;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  /** Leader: reads waiting for the first commit of this term (the leader's commit index may lag before it). */
  private readsBeforeCommit: Array<{ ctx: string; from: NodeId }> = [];
  /** Leader: reads waiting for a quorum of heartbeat acknowledgements, oldest first. */
  private readQueue: PendingRead[] = [];
  private snapReceive: SnapshotReceive | null = null;

  private persistedHardState: HardState;
  private readyOutstanding = false;

  constructor(config: RaftConfig, initial: InitialState) {
    assert(config.electionTicks > config.heartbeatTicks && config.heartbeatTicks > 0, 'electionTicks must exceed heartbeatTicks > 0');
    assert(config.maxInflightMsgs > 0 && config.snapshotChunkBytes > 0, 'maxInflightMsgs and snapshotChunkBytes must be positive');
    this.id = config.id;
    this.cfg = config;
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.log = new RaftLog(initial.snapshot, initial.entries, initial.hardState.commit, initial.applied);
    this.persistedHardState = { ...initial.hardState };
    if (initial.snapshot) this.baseConf = initial.snapshot.meta.conf;
    // Every membership change in the log is in effect again, applied or not.
    this.refreshConf();
    this.becomeFollower(this.term, null);
  }

  /** The state of a fresh node of a new cluster: one committed addVoter entry per voter, in term 1. */
  static bootstrap(voters: NodeId[]): InitialState {
    assert(voters.length > 0 && new Set(voters).size === voters.length, 'bootstrap needs distinct voters');
    const entries: Entry[] = voters.map((node, i) => ({ type: 'confChange', term: 1, index: i + 1, change: { type: 'addVoter', node } }));
    return { hardState: { term: 1, vote: null, commit: voters.length }, snapshot: null, entries, applied: 0 };
  }

  /** The state of a node that will join a running cluster: it learns everything from the leader. */
  static empty(): InitialState {
    return { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], applied: 0 };
  }

  // ---------------------------------------------------------------- driver API

  tick(): void {
    this.assertNoReadyOutstanding('tick');
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  /**
   * Acts on a message from a peer. Returns why it set the message aside unacted on
   * (out of range, misaddressed, from a stranger), or null: the driver counts refusals.
   */
  step(m: Message): StepRefusal | null {
    this.assertNoReadyOutstanding('step');
    if (m.to !== this.id) return 'misaddressed';
    // The decoder checked this already; a term at 2^52 adopted here could never be campaigned past.
    if (messageProblem(m) !== null) return 'invalid';
    if (m.term - this.term > MAX_TERM_JUMP) return 'invalid';
    if (this.isStranger(m)) return 'stranger';
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        // Leader lease (check-quorum): while we hear from a leader, ignore campaigns,
        // so a node rejoining from a partition cannot depose a healthy leader.
        const inLease = this.cfg.checkQuorum && this.lead !== null && this.electionElapsed < this.cfg.electionTicks;
        if (inLease && !m.transfer) return null;
      }
      if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
        // A pre-vote at a future term changes no one's term; a granted one is counted below.
      } else {
        const lead = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' ? m.from : null;
        this.becomeFollower(m.term, lead);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'app' || m.type === 'heartbeat')) {
        // A stale leader: tell it our term so it steps down. Without this, a node whose
        // term rose while partitioned could never rejoin (its campaigns are ignored in lease).
        this.send({ type: 'appResp', to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', to: m.from, term: this.term, reject: true });
      }
      return null;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return null;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
    return null;
  }

  propose(data: Uint8Array): ProposeResult {
    this.assertNoReadyOutstanding('propose');
    const refused = this.refuseProposal();
    if (refused) return refused;
    const size = data.length + 16;
    if (this.cfg.maxUncommittedBytes > 0 && this.uncommittedBytes > 0 && this.uncommittedBytes + size > this.cfg.maxUncommittedBytes) {
      return { ok: false, reason: 'tooManyUncommittedBytes', leader: this.id };
    }
    return this.appendProposal({ type: 'normal', term: this.term, index: this.log.lastIndex() + 1, data });
  }

  proposeConfChange(change: ConfChange): ProposeResult {
    this.assertNoReadyOutstanding('proposeConfChange');
    const refused = this.refuseProposal();
    if (refused) return refused;
    // One change at a time, and not before this leader applied an entry of its own term
    // (pendingConfIndex starts at the no-op's index): thesis §4.1 and its known bug fix.
    if (!this.cfg.unsafe?.allowConcurrentConfChanges && this.pendingConfIndex > this.log.applied) {
      return { ok: false, reason: 'confChangePending', leader: this.id };
    }
    if (!this.isValidChange(change)) return { ok: false, reason: 'invalid', leader: this.id };
    const result = this.appendProposal({ type: 'confChange', term: this.term, index: this.log.lastIndex() + 1, change });
    if (result.ok) {
      this.pendingConfIndex = result.index;
      this.refreshConf();
    }
    return result;
  }

  /**
   * Asks for a linearizable read. The answer comes as a ReadState with this `ctx` in a
   * later ready(); returns false when no leader is known (retry later).
   */
  readIndex(ctx: string): boolean {
    this.assertNoReadyOutstanding('readIndex');
    if (this.role === 'leader') {
      this.handleReadIndex(this.id, ctx);
      return true;
    }
    if (this.lead === null || this.role !== 'follower') return false;
    this.send({ type: 'readIndex', to: this.lead, term: this.term, ctx });
    return true;
  }

  /** Hands leadership to `to` (a voter): brings its log up to date, then tells it to campaign. */
  transferLeadership(to: NodeId): boolean {
    this.assertNoReadyOutstanding('transferLeadership');
    if (this.role !== 'leader' || to === this.id || !this.voters.has(to)) return false;
    if (this.leadTransferee === to) return true;
    this.leadTransferee = to;
    // The transfer must finish within one election timeout, or it is abandoned.
    this.electionElapsed = 0;
    const pr = this.progress(to);
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to, term: this.term });
    else this.maybeSendAppend(to, true);
    return true;
  }

  hasReady(): boolean {
    return (
      this.appendPending ||
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.pendingSnapshot !== null ||
      this.log.stable < this.log.lastIndex() ||
      this.log.applying < this.log.committed ||
      !sameHardState(this.hardState(), this.persistedHardState)
    );
  }

  ready(): Ready {
    this.assertNoReadyOutstanding('ready');
    if (this.appendPending) {
      this.appendPending = false;
      this.bcastAppend(false);
    }
    const hs = this.hardState();
    const rd: Ready = {
      hardState: sameHardState(hs, this.persistedHardState) ? null : hs,
      snapshot: this.log.pendingSnapshot,
      entries: this.log.unstableEntries(),
      messages: this.msgs,
      committedEntries: this.log.nextCommittedEntries(),
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    const lastCommitted = rd.committedEntries.at(-1);
    if (rd.snapshot) this.log.applying = Math.max(this.log.applying, rd.snapshot.meta.index);
    if (lastCommitted) this.log.applying = lastCommitted.index;
    this.readyOutstanding = true;
    return rd;
  }

  advance(rd: Ready): void {
    assert(this.readyOutstanding, 'advance() without an outstanding ready()');
    this.readyOutstanding = false;
    if (rd.hardState) this.persistedHardState = rd.hardState;
    if (rd.snapshot) {
      if (this.log.pendingSnapshot === rd.snapshot) this.log.pendingSnapshot = null;
      this.log.applied = Math.max(this.log.applied, rd.snapshot.meta.index);
    }
    const lastEntry = rd.entries.at(-1);
    if (lastEntry) this.log.stableTo(lastEntry.index, lastEntry.term);
    for (const e of rd.committedEntries) this.log.applied = e.index;
    this.log.applying = Math.max(this.log.applying, this.log.applied);
    if (this.role === 'leader' && !this.voters.has(this.id) && this.log.applied >= this.lastConfIndex) {
      // Its own removal or demotion is applied: a leader that is no longer a voter
      // led only to commit that change (thesis §4.2.2), and now steps down.
      this.becomeFollower(this.term, null);
    }
    if (this.role === 'leader') {
      // The leader counts itself only for entries on its own disk (thesis §10.2.1).
      const self = this.prs.get(this.id);
      if (self) self.maybeUpdate(this.log.stable);
      if (this.maybeCommit()) this.bcastAppend(true);
    }
  }

  /**
   * Log compaction: the application's snapshot of its state at the applied index.
   * The core drops the entries it covers; the driver persists the returned snapshot
   * and deletes its stored entries up to `meta.index`.
   */
  compact(data: Uint8Array): Snapshot {
    this.assertNoReadyOutstanding('compact');
    const index = this.log.applied;
    const term = this.log.term(index);
    assert(term !== undefined, `no term for applied index ${index}`);
    const snapshot: Snapshot = { meta: { index, term, conf: this.confAt(index) }, data };
    this.log.compact(snapshot);
    this.baseConf = snapshot.meta.conf;
    return snapshot;
  }

  status(): RaftStatus {
    let progress: RaftStatus['progress'] = null;
    if (this.role === 'leader') {
      progress = {};
      for (const [id, pr] of this.prs) progress[id] = pr.status();
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      conf: this.confState(),
      progress,
      leadTransferee: this.leadTransferee,
    };
  }

  // ---------------------------------------------------------------- roles

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + Math.floor(this.cfg.random() * this.cfg.electionTicks);
    this.leadTransferee = null;
    this.votes.clear();
    this.prs.clear();
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.appendPending = false;
    this.readsBeforeCommit = [];
    this.readQueue = [];
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become a pre-candidate');
    // Term and vote stay: a pre-vote must not disturb anyone if it fails.
    this.role = 'preCandidate';
    this.votes.clear();
    this.lead = null;
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become a candidate');
    assert(this.term + 1 < RAFT_NUMBER_LIMIT, `term ${this.term} cannot be campaigned past`);
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', `only a candidate becomes leader (was ${this.role})`);
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    const next = this.log.lastIndex() + 1;
    for (const id of this.voters) this.prs.set(id, new Progress(next, false));
    for (const id of this.learners) this.prs.set(id, new Progress(next, true));
    const self = this.progress(this.id);
    self.becomeReplicate();
    self.match = this.log.stable;
    // No membership change until this leader has applied an entry of its own term.
    this.pendingConfIndex = this.log.lastIndex() + 1;
    // The no-op of the new term: committing it commits every earlier entry (Figure 8).
    this.log.append([{ type: 'normal', term: this.term, index: this.log.lastIndex() + 1, data: new Uint8Array(0) }]);
    this.appendPending = true;
  }

  private promotable(): boolean {
    return this.voters.has(this.id);
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        if (!this.quorumActive()) {
          // Check-quorum: a leader cut off from a majority steps down, so clients look elsewhere.
          this.becomeFollower(this.term, null);
          return;
        }
        for (const [id, pr] of this.prs) pr.recentActive = id === this.id;
      }
      if (this.leadTransferee !== null) this.leadTransferee = null; // transfer timed out
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(null);
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      if (id === this.id || this.prs.get(id)?.recentActive) active++;
    }
    return active >= this.quorum();
  }

  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    // A campaign asks for the next term, and a leader appends its no-op at the next
    // index: never at the bound (no node would accept either).
    if (this.term + 1 >= RAFT_NUMBER_LIMIT || this.log.lastIndex() + 1 >= RAFT_NUMBER_LIMIT) return;
    this.campaign(this.cfg.preVote && !transfer ? 'preVote' : 'vote', transfer);
  }

  private campaign(kind: 'preVote' | 'vote', transfer: boolean): void {
    let voteTerm: number;
    if (kind === 'preVote') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      if (kind === 'preVote') this.campaign('vote', transfer);
      else this.becomeLeader();
      return;
    }
    for (const id of [...this.voters].sort()) {
      if (id === this.id) continue;
      this.send({ type: kind, to: id, term: voteTerm, index: this.log.lastIndex(), logTerm: this.log.lastTerm(), transfer });
    }
  }

  private poll(from: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (this.voters.has(from) && !this.votes.has(from)) this.votes.set(from, granted);
    let yes = 0;
    let no = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) yes++;
      else if (v === false) no++;
    }
    const q = this.quorum();
    if (yes >= q) return 'won';
    if (no > this.voters.size - q) return 'lost';
    return 'pending';
  }

  private quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  // ---------------------------------------------------------------- messages

  /**
   * Whether `m` comes from outside the configuration (voters and learners in the log),
   * at a time this node can tell. It can while it hears from a leader (within an
   * election timeout; a leader itself only with check-quorum): a correct node it does
   * not know has nothing to tell it then, and the sender is a removed node, a node of
   * another cluster, or a forger. The leader it follows is never a stranger (a fresh
   * node knows no configuration at all; a removed leader leads on to commit its removal).
   *
   * While it hears from no leader it acts on every message, as plain Raft does: it may
   * have missed the change that added the sender, and dropping it then could strand it
   * (a voter that missed the addition of the node now leading, or whose vote that node
   * needs, would never follow it; a learner never campaigns, so only that lapse lets
   * it take a new leader it does not know). raft/README.md has the whole argument.
   */
  private isStranger(m: Message): boolean {
    if (m.from === this.lead || this.voters.has(m.from) || this.learners.has(m.from)) return false;
    if (this.lead === null || this.electionElapsed >= this.cfg.electionTicks) return false;
    // A leader without check-quorum cannot tell it still leads: it might be a stale one.
    return this.role !== 'leader' || this.cfg.checkQuorum;
  }

  private handleVoteRequest(m: VoteMessage): void {
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      // A pre-vote for a future term is granted on the log alone: it changes nothing.
      (m.type === 'preVote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // Answer at the request's term so a pre-candidate counts the grant.
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'appResp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'snapResp':
        this.handleSnapshotResponse(m);
        return;
      case 'readIndex':
        this.handleReadIndex(m.from, m.ctx);
        return;
      default:
        return; // votes were handled; other types do not concern a leader at its own term
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshotChunk(m);
        return;
      case 'voteResp':
      case 'preVoteResp': {
        // A candidate counts votes, a pre-candidate pre-votes; stale kinds are ignored.
        if ((m.type === 'voteResp') !== (this.role === 'candidate')) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === 'preCandidate') this.campaign('vote', false);
          else {
            this.becomeLeader();
            this.appendPending = false;
            this.bcastAppend(true);
          }
        } else if (result === 'lost') {
          this.becomeFollower(this.term, null);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshotChunk(m);
        return;
      case 'timeoutNow':
        // Leadership transfer: campaign at once, skipping the pre-vote and the lease.
        this.hup(true);
        return;
      case 'readIndexResp':
        if (m.index > 0) this.readStates.push({ ctx: m.ctx, index: m.index });
        return;
      default:
        return;
    }
  }

  private handleAppend(m: AppendMessage): void {
    if (m.index < this.log.committed) {
      this.sendAppendResponse(m.from, this.log.committed);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      // Appended a membership change, or may have truncated one: recount the membership.
      if (this.lastConfIndex > m.index || m.entries.some((e) => e.type === 'confChange')) this.refreshConf();
      this.sendAppendResponse(m.from, lastNew);
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({ type: 'appResp', to: m.from, term: this.term, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  private sendAppendResponse(to: NodeId, index: number): void {
    this.send({ type: 'appResp', to, term: this.term, index, reject: false, rejectHint: 0, logTerm: 0 });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    // The leader sends min(our match, its commit): never beyond what we hold.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'heartbeatResp', to: m.from, term: this.term, ctx: m.ctx });
  }

  private handleSnapshotChunk(m: SnapshotChunkMessage): void {
    const same = this.snapReceive !== null && this.snapReceive.meta.index === m.meta.index && this.snapReceive.meta.term === m.meta.term;
    if (m.offset === 0) {
      this.snapReceive = { meta: m.meta, chunks: [], bytes: 0 };
    } else if (!same || this.snapReceive?.bytes !== m.offset) {
      const nextOffset = same && this.snapReceive ? this.snapReceive.bytes : 0;
      this.send({ type: 'snapResp', to: m.from, term: this.term, snapIndex: m.meta.index, snapTerm: m.meta.term, nextOffset });
      return;
    }
    const recv = this.snapReceive;
    assert(recv !== null, 'snapshot receive buffer');
    recv.chunks.push(m.data);
    recv.bytes += m.data.length;
    if (recv.bytes < m.totalBytes) {
      this.send({ type: 'snapResp', to: m.from, term: this.term, snapIndex: m.meta.index, snapTerm: m.meta.term, nextOffset: recv.bytes });
      return;
    }
    this.snapReceive = null;
    const snapshot: Snapshot = { meta: m.meta, data: concatBytes(recv.chunks, recv.bytes) };
    if (this.restore(snapshot)) this.sendAppendResponse(m.from, this.log.lastIndex());
    else this.sendAppendResponse(m.from, this.log.committed);
  }

  /** Installs a snapshot from the leader; false when our log already covers it. */
  private restore(snapshot: Snapshot): boolean {
    const { index, term } = snapshot.meta;
    if (index <= this.log.committed) return false;
    // A pending snapshot not yet handed out would be overwritten; one is enough.
    if (this.log.matchTerm(index, term)) {
      // Our log already holds it: just move the commit index forward.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.baseConf = snapshot.meta.conf;
    this.refreshConf();
    return true;
  }

  private handleAppendResponse(m: AppendResponseMessage): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    // An answer to an append of this term names an index of this leader's log, which
    // only grows during its term: anything beyond it was forged, and would send the
    // follower's progress past the log's end.
    if (m.index > this.log.lastIndex()) return;
    pr.recentActive = true;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.maybeSendAppend(m.from, false);
      }
      return;
    }
    const wasPaused = pr.isPaused(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === 'probe')) return;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) this.bcastAppend(true);
    else if (wasPaused) this.maybeSendAppend(m.from, true); // also tells it the commit index
    // Keep the pipeline full.
    while (this.maybeSendAppend(m.from, false)) {
      // each call sends one batch
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send({ type: 'timeoutNow', to: m.from, term: this.term });
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponseMessage): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.probeSent = false;
    // An append lost in the pipeline leaves `next` beyond what the follower has and no
    // new proposal may come to expose the gap: no progress across two heartbeat
    // rounds while behind means probe again from `match`.
    if (pr.state === 'replicate' && pr.match < this.log.lastIndex() && pr.match === pr.matchAtLastHeartbeat) pr.becomeProbe();
    pr.matchAtLastHeartbeat = pr.match;
    if (pr.state === 'snapshot') this.sendSnapshotChunk(m.from, pr); // a chunk may have been lost
    // A follower in probe (e.g. a member just added to an idle cluster, whose `next`
    // is past the last index) gets an append even without entries, to find its match.
    // In replicate, a lost append is caught by the stall check above.
    else if (pr.state === 'probe') this.maybeSendAppend(m.from, true);
    else if (pr.match < this.log.lastIndex()) this.maybeSendAppend(m.from, false);
    if (m.ctx !== null) this.ackRead(m.from, m.ctx);
  }

  private handleSnapshotResponse(m: SnapshotResponseMessage): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (pr.state !== 'snapshot' || pr.pendingSnapshot !== m.snapIndex) return;
    pr.snapshotOffset = m.nextOffset;
    this.sendSnapshotChunk(m.from, pr);
  }

  // ---------------------------------------------------------------- replication

  /** Sends one append (or starts a snapshot) to `to`; returns whether an append with entries went out. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || to === this.id) return false;
    if (pr.isPaused(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes)) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) {
      this.startSnapshot(to, pr);
      return false;
    }
    const entries = pr.next <= this.log.lastIndex() ? this.log.entriesFrom(pr.next, this.cfg.maxSizePerMsgBytes) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'app', to, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    const last = entries.at(-1);
    if (last) pr.sentEntries(last.index, entries.reduce((n, e) => n + entrySizeBytes(e), 0));
    return last !== undefined;
  }

  private bcastAppend(sendIfEmpty: boolean): void {
    for (const id of [...this.prs.keys()].sort()) {
      if (id === this.id) continue;
      if (this.maybeSendAppend(id, sendIfEmpty)) {
        while (this.maybeSendAppend(id, false)) {
          // fill the pipeline
        }
      }
    }
  }

  private bcastHeartbeat(ctx: string | null): void {
    for (const [id, pr] of [...this.prs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to hold.
      this.send({ type: 'heartbeat', to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), ctx });
    }
  }

  private startSnapshot(to: NodeId, pr: Progress): void {
    const snap = this.log.snapshot;
    assert(snap !== null, `follower ${to} needs entries before ${this.log.firstIndex()} but there is no snapshot`);
    pr.becomeSnapshot(snap.meta.index);
    this.sendSnapshotChunk(to, pr);
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = this.log.snapshot;
    if (!snap) return;
    // A newer local snapshot replaces the one being sent: start it over.
    if (snap.meta.index !== pr.pendingSnapshot) pr.becomeSnapshot(snap.meta.index);
    const offset = Math.min(pr.snapshotOffset, snap.data.length);
    const data = snap.data.subarray(offset, offset + this.cfg.snapshotChunkBytes);
    this.send({ type: 'snap', to, term: this.term, meta: snap.meta, offset, totalBytes: snap.data.length, data });
  }

  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.prs.get(id)?.match ?? 0);
    if (matches.length === 0) return false;
    matches.sort((a, b) => b - a);
    const index = matches[this.quorum() - 1] ?? 0;
    if (index <= this.log.committed) return false;
    // Figure 8: only an entry of the current term is committed by counting replicas;
    // earlier entries commit with it.
    if (this.log.term(index) !== this.term && !this.cfg.unsafe?.commitPriorTermEntriesByCount) return false;
    const before = this.log.committed;
    this.log.commitTo(index);
    for (let i = before + 1; i <= index; i++) {
      const e = this.log.entry(i);
      if (e.term === this.term) this.uncommittedBytes = Math.max(0, this.uncommittedBytes - entrySizeBytes(e));
    }
    if (this.log.term(this.log.committed) === this.term) this.releaseReadsBeforeCommit();
    return true;
  }

  private refuseProposal(): ProposeResult | null {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.lead };
    if (this.leadTransferee !== null) return { ok: false, reason: 'transferring', leader: this.id };
    return null;
  }

  private appendProposal(e: Entry): ProposeResult {
    this.log.append([e]);
    this.uncommittedBytes += entrySizeBytes(e);
    this.appendPending = true;
    return { ok: true, index: e.index, term: e.term };
  }

  // ---------------------------------------------------------------- reads

  private handleReadIndex(from: NodeId, ctx: string): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Until it commits an entry of its term, the leader's commit index may be stale.
      this.readsBeforeCommit.push({ ctx, from });
      return;
    }
    const read: PendingRead = { ctx, index: this.log.committed, from, acks: new Set([this.id]) };
    this.readQueue.push(read);
    if (this.quorum() <= 1 || this.cfg.unsafe?.readsWithoutQuorum) this.releaseReads(read);
    else this.bcastHeartbeat(ctx);
  }

  private releaseReadsBeforeCommit(): void {
    const waiting = this.readsBeforeCommit;
    this.readsBeforeCommit = [];
    for (const r of waiting) this.handleReadIndex(r.from, r.ctx);
  }

  private ackRead(from: NodeId, ctx: string): void {
    const read = this.readQueue.find((r) => r.ctx === ctx);
    if (!read || !this.voters.has(from)) return;
    read.acks.add(from);
    let acked = 0;
    for (const id of read.acks) if (this.voters.has(id)) acked++;
    if (acked >= this.quorum()) this.releaseReads(read);
  }

  /** A quorum confirmed leadership after `read` arrived: it and every older read may be served. */
  private releaseReads(read: PendingRead): void {
    const upTo = this.readQueue.indexOf(read);
    const released = this.readQueue.splice(0, upTo + 1);
    for (const r of released) {
      if (r.from === this.id) this.readStates.push({ ctx: r.ctx, index: r.index });
      else this.send({ type: 'readIndexResp', to: r.from, term: this.term, ctx: r.ctx, index: r.index });
    }
  }

  // ---------------------------------------------------------------- membership

  private isValidChange(change: ConfChange): boolean {
    switch (change.type) {
      case 'addVoter':
        return !this.voters.has(change.node);
      case 'addLearner':
        // Demoting a voter must leave at least one voter.
        return !this.learners.has(change.node) && !(this.voters.has(change.node) && this.voters.size <= 1);
      case 'removeNode':
        return (this.voters.has(change.node) && this.voters.size > 1) || this.learners.has(change.node);
    }
  }

  /** The membership after the entries up to `index` (at least the snapshot's index). */
  private confAt(index: number): ConfState {
    const voters = new Set(this.baseConf.voters);
    const learners = new Set(this.baseConf.learners);
    for (let i = this.log.firstIndex(); i <= Math.min(index, this.log.lastIndex()); i++) {
      const e = this.log.entry(i);
      if (e.type === 'confChange') applyChange(voters, learners, e.change);
    }
    return { voters: [...voters].sort(), learners: [...learners].sort() };
  }

  /**
   * Puts the newest membership in the log in effect: after appending or truncating a
   * change, installing a snapshot, or at start. A leader updates its progress table.
   */
  private refreshConf(): void {
    this.lastConfIndex = 0;
    for (let i = this.log.firstIndex(); i <= this.log.lastIndex(); i++) {
      if (this.log.entry(i).type === 'confChange') this.lastConfIndex = i;
    }
    const conf = this.confAt(this.log.lastIndex());
    this.voters.clear();
    this.learners.clear();
    for (const id of conf.voters) this.voters.add(id);
    for (const id of conf.learners) this.learners.add(id);
    if (this.role !== 'leader') return;
    // A leader that removed or demoted itself leads on, not counting itself, until the
    // change is applied (advance() steps it down): it must commit that change first.
    const known = new Set([...this.voters, ...this.learners, this.id]);
    for (const id of [...this.prs.keys()]) if (!known.has(id)) this.prs.delete(id);
    for (const id of known) {
      const pr = this.prs.get(id);
      if (pr) pr.learner = !this.voters.has(id);
      else this.prs.set(id, new Progress(this.log.lastIndex() + 1, !this.voters.has(id)));
    }
    if (this.leadTransferee !== null && !this.voters.has(this.leadTransferee)) this.leadTransferee = null;
    // The quorum changed: the commit index may move, and new members need the log.
    if (this.maybeCommit()) this.bcastAppend(true);
    else this.bcastAppend(false);
  }

  private confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  // ---------------------------------------------------------------- helpers

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private progress(id: NodeId): Progress {
    const pr = this.prs.get(id);
    assert(pr !== undefined, `no progress for ${id}`);
    return pr;
  }

  private send(m: Outgoing): void {
    this.msgs.push({ ...m, from: this.id } as Message);
  }

  private assertNoReadyOutstanding(what: string): void {
    assert(!this.readyOutstanding, `${what}() between ready() and advance()`);
  }
}

function applyChange(voters: Set<NodeId>, learners: Set<NodeId>, change: ConfChange): void {
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
