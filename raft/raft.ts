// The Raft consensus core, in the shape of etcd-io/raft: a state machine driven from
// outside. The driver ticks it, steps it with messages, proposes, and collects a
// Ready (what to persist, send and apply). Nothing here waits, reads a clock, draws
// randomness of its own or touches I/O, so the same code runs in production and in
// the deterministic simulator (test/sim/).
import { assert } from './assert.js';
import { sortedIds } from './ids.js';
import { RaftLog, entrySizeBytes, normalEntrySizeBytes } from './log.js';
import { Membership } from './membership.js';
import { ProgressTracker, type Progress } from './progress.js';
import { majority, type VoteResult } from './quorum.js';
import { PendingReads, type PendingRead } from './read-only.js';
import { ReadyHandoff } from './ready.js';
import { Replicator } from './replication.js';
import { SnapshotAssembler } from './snapshot-receive.js';
import {
  MAX_TERM_JUMP, RAFT_NUMBER_LIMIT, type AppendMessage, type AppendResponseMessage, type ConfChange, type Entry, type HardState,
  type HeartbeatMessage, type HeartbeatResponseMessage, type InitialState, type Message, type NodeId, type ProposeResult, type RaftConfig,
  type RaftStatus, type ReadState, type Ready, type Role, type Snapshot, type SnapshotChunkMessage, type SoftState, type StepRefusal,
  type VoteMessage,
} from './types.js';
import { messageProblem } from './validate.js';

type Outgoing = Message extends infer M ? (M extends Message ? Omit<M, 'from'> : never) : never;

export class Raft {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;

  private term: number;
  private vote: NodeId | null;
  private lead: NodeId | null = null;
  private role: Role = 'follower';
  private readonly log: RaftLog;

  /** Membership in effect: the newest in the log, committed or not. */
  private readonly membership: Membership;
  /** Leader: every member's progress; candidates: the votes. */
  private readonly tracker = new ProgressTracker();
  /** Leader: what to send each follower. */
  private readonly replication: Replicator;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  /** Periodic heartbeat rounds sent as leader (cfg.learnerHeartbeatRounds picks the learners' ones). */
  private heartbeatRounds = 0;
  private randomizedElectionTimeout = 0;

  private leadTransferee: NodeId | null = null;
  private uncommittedBytes = 0;
  /** Leader: proposals appended since the last ready(); their appends are sent in one batch. */
  private appendPending = false;
  /** A commit not yet sent to the followers (RaftConfig.deferCommitNotice). */
  private commitUnannounced = false;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  /** Leader: ReadIndex requests waiting for leadership to be confirmed. */
  private readonly reads = new PendingReads();
  /** Follower: the snapshot arriving in chunks from the leader. */
  private readonly snapshotChunks = new SnapshotAssembler();

  /** What the driver holds of the hard and soft states, and whether a ready() is out. */
  private readonly handoff: ReadyHandoff;

  constructor(config: RaftConfig, initial: InitialState) {
    assert(config.electionTicks > config.heartbeatTicks && config.heartbeatTicks > 0, 'electionTicks must exceed heartbeatTicks > 0');
    assert(config.learnerHeartbeatRounds === undefined || (Number.isInteger(config.learnerHeartbeatRounds) && config.learnerHeartbeatRounds >= 1), 'learnerHeartbeatRounds must be an integer >= 1');
    assert(config.maxInflightMsgs > 0 && config.snapshotChunkBytes > 0, 'maxInflightMsgs and snapshotChunkBytes must be positive');
    this.id = config.id;
    this.cfg = config;
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.log = new RaftLog(initial.snapshot, initial.entries, initial.hardState.commit, initial.applied);
    this.handoff = new ReadyHandoff(initial.hardState);
    this.membership = new Membership(config.unsafe?.allowConcurrentConfChanges ?? false);
    this.replication = new Replicator(this.id, config, this.log, this.tracker, () => this.term, (m) => this.msgs.push(m));
    if (initial.snapshot) this.membership.setBase(initial.snapshot.meta.conf);
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

  /**
   * The driver lost its connection to `peer` (its socket closed: the process died, or
   * the link broke). If that is this follower's leader, its lease is treated as lapsed
   * and this node campaigns within 1–3 ticks instead of a whole election timeout.
   * Only a hint: the campaign starts with a pre-vote, which a node that still hears
   * from the leader refuses, so a link that broke on one side alone changes nothing;
   * and a heartbeat from the leader cancels it.
   */
  leaderUnreachable(peer: NodeId): void {
    this.handoff.assertIdle('leaderUnreachable');
    if (this.role !== 'follower' || this.lead !== peer || !this.promotable()) return;
    this.electionElapsed = Math.max(this.electionElapsed, this.cfg.electionTicks);
    this.randomizedElectionTimeout = this.electionElapsed + 1 + Math.floor(this.cfg.random() * 3);
  }

  tick(): void {
    this.handoff.assertIdle('tick');
    if (this.role === 'leader') {
      this.flushCommitNotice(); // a deferred commit waits a tick at most
      this.tickHeartbeat();
    } else this.tickElection();
  }

  /** Whether the leader holds a commit its followers have not been sent yet (RaftConfig.deferCommitNotice). */
  hasCommitToAnnounce(): boolean {
    return this.commitUnannounced;
  }

  /** Sends a deferred commit to the followers that have not had it (RaftConfig.deferCommitNotice). */
  announceCommit(): void {
    this.handoff.assertIdle('announceCommit');
    this.flushCommitNotice();
  }

  private flushCommitNotice(): void {
    if (!this.commitUnannounced) return;
    this.commitUnannounced = false;
    if (this.role === 'leader') this.replication.announceCommit();
  }

  /** The commit index moved: tell the followers now, or leave it to the next message (deferCommitNotice). */
  private noticeCommit(): void {
    if (this.cfg.deferCommitNotice) this.commitUnannounced = true;
    else this.replication.broadcastAppend(true);
  }

  /**
   * Acts on a message from a peer. Returns why it set the message aside unacted on
   * (out of range, misaddressed, from a stranger), or null: the driver counts refusals.
   */
  step(m: Message): StepRefusal | null {
    this.handoff.assertIdle('step');
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
    this.handoff.assertIdle('propose');
    const refused = this.refuseProposal();
    if (refused) return refused;
    const size = normalEntrySizeBytes(data.length);
    if (this.cfg.maxUncommittedBytes > 0 && this.uncommittedBytes > 0 && this.uncommittedBytes + size > this.cfg.maxUncommittedBytes) {
      return { ok: false, reason: 'tooManyUncommittedBytes', leader: this.id };
    }
    return this.appendProposal({ type: 'normal', term: this.term, index: this.log.lastIndex() + 1, data });
  }

  proposeConfChange(change: ConfChange): ProposeResult {
    this.handoff.assertIdle('proposeConfChange');
    const refused = this.refuseProposal();
    if (refused) return refused;
    const refusal = this.membership.refusal(change, this.log.applied);
    if (refusal !== null) return { ok: false, reason: refusal, leader: this.id };
    const result = this.appendProposal({ type: 'confChange', term: this.term, index: this.log.lastIndex() + 1, change });
    if (result.ok) {
      this.membership.holdChangesUntilApplied(result.index);
      this.refreshConf();
    }
    return result;
  }

  /**
   * Asks for a linearizable read. The answer comes as a ReadState with this `ctx` in a
   * later ready(); returns false when no leader is known (retry later).
   */
  readIndex(ctx: string): boolean {
    this.handoff.assertIdle('readIndex');
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
    this.handoff.assertIdle('transferLeadership');
    if (this.role !== 'leader' || to === this.id || !this.membership.isVoter(to)) return false;
    if (this.leadTransferee === to) return true;
    this.leadTransferee = to;
    // The transfer must finish within one election timeout, or it is abandoned.
    this.electionElapsed = 0;
    const pr = this.progress(to);
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to, term: this.term });
    else this.replication.sendAppend(to, true);
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
      this.handoff.changed(this.hardState(), this.softState())
    );
  }

  ready(): Ready {
    this.handoff.assertIdle('ready');
    if (this.appendPending) {
      this.appendPending = false;
      this.replication.broadcastAppend(false);
    }
    const rd: Ready = {
      ...this.handoff.handOut(this.hardState(), this.softState()),
      snapshot: this.log.pendingSnapshot,
      entries: this.log.unstableEntries(),
      messages: this.msgs,
      committedEntries: this.log.nextCommittedEntries(),
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    this.log.markApplying(rd.snapshot, rd.committedEntries);
    return rd;
  }

  advance(rd: Ready): void {
    this.handoff.confirm(rd);
    const lastEntry = rd.entries.at(-1);
    if (lastEntry) this.log.stableTo(lastEntry.index, lastEntry.term);
    this.log.markApplied(rd.snapshot, rd.committedEntries);
    if (this.role === 'leader' && !this.membership.isVoter(this.id) && this.log.applied >= this.membership.lastIndex) {
      // Its own removal or demotion is applied: a leader that is no longer a voter
      // led only to commit that change (thesis §4.2.2), and now steps down.
      this.becomeFollower(this.term, null);
    }
    if (this.role === 'leader') {
      // The leader counts itself only for entries on its own disk (thesis §10.2.1).
      const self = this.tracker.get(this.id);
      if (self) self.maybeUpdate(this.log.stable);
      if (this.maybeCommit()) this.noticeCommit();
    }
  }

  /**
   * Log compaction: the application's snapshot of its state at the applied index.
   * The core drops the entries it covers; the driver persists the returned snapshot
   * and deletes its stored entries up to `meta.index`.
   */
  compact(data: Uint8Array): Snapshot {
    this.handoff.assertIdle('compact');
    const index = this.log.applied;
    const term = this.log.term(index);
    assert(term !== undefined, `no term for applied index ${index}`);
    const snapshot: Snapshot = { meta: { index, term, conf: this.membership.at(this.log, index) }, data };
    this.log.compact(snapshot);
    this.membership.setBase(snapshot.meta.conf);
    return snapshot;
  }

  status(): RaftStatus {
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
      conf: this.membership.state(),
      progress: this.role === 'leader' ? this.tracker.status() : null,
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
    this.tracker.reset();
    this.membership.clearPendingChange();
    this.uncommittedBytes = 0;
    this.appendPending = false;
    this.commitUnannounced = false;
    this.reads.reset();
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
    this.tracker.resetVotes();
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
    this.tracker.startLeading(this.membership.voters, this.membership.learners, this.log.lastIndex() + 1);
    const self = this.progress(this.id);
    self.becomeReplicate();
    self.match = this.log.stable;
    // No membership change until this leader has applied an entry of its own term.
    this.membership.holdChangesUntilApplied(this.log.lastIndex() + 1);
    // The no-op of the new term: committing it commits every earlier entry (Figure 8).
    this.log.append([{ type: 'normal', term: this.term, index: this.log.lastIndex() + 1, data: new Uint8Array(0) }]);
    this.appendPending = true;
  }

  private promotable(): boolean {
    return this.membership.isVoter(this.id);
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
        if (!this.tracker.quorumActive(this.membership.voters, this.id)) {
          // Check-quorum: a leader cut off from a majority steps down, so clients look elsewhere.
          this.becomeFollower(this.term, null);
          return;
        }
        this.tracker.resetRecentActive(this.id);
      }
      if (this.leadTransferee !== null) this.leadTransferee = null; // transfer timed out
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.heartbeatRound();
    }
  }

  /**
   * One periodic heartbeat round, to the voters and, one round in
   * cfg.learnerHeartbeatRounds, to the learners; with cfg.heartbeatCtx it is a
   * ReadIndex round of the leader's own as well.
   */
  private heartbeatRound(): void {
    this.heartbeatRounds++;
    const learners = this.heartbeatRounds % (this.cfg.learnerHeartbeatRounds ?? 1) === 0;
    const ctx = this.cfg.heartbeatCtx && this.log.term(this.log.committed) === this.term ? this.cfg.heartbeatCtx() : null;
    if (ctx !== null) {
      const read = this.reads.add(ctx, this.log.committed, this.id, this.id);
      // A quorum of one confirms at once; the others still hear from their leader.
      if (majority(this.membership.voters.size) <= 1) this.serveReads(this.reads.release(read));
    }
    this.replication.broadcastHeartbeat(ctx, learners);
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
    for (const id of sortedIds(this.membership.voters)) {
      if (id === this.id) continue;
      this.send({ type: kind, to: id, term: voteTerm, index: this.log.lastIndex(), logTerm: this.log.lastTerm(), transfer });
    }
  }

  private poll(from: NodeId, granted: boolean): VoteResult {
    return this.tracker.recordVote(this.membership.voters, from, granted);
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
    if (m.from === this.lead || this.membership.isMember(m.from)) return false;
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
        this.replication.onSnapshotResponse(m);
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
      case 'heartbeat':
      case 'snap':
        // A leader of this term exists: follow it, and take its message as a follower.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
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
            this.replication.broadcastAppend(true);
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
      if (this.membership.lastIndex > m.index || m.entries.some((e) => e.type === 'confChange')) this.refreshConf();
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
    const outcome = this.snapshotChunks.add(m);
    if ('nextOffset' in outcome) {
      const { nextOffset } = outcome;
      this.send({ type: 'snapResp', to: m.from, term: this.term, snapIndex: m.meta.index, snapTerm: m.meta.term, nextOffset });
    } else if (this.restore(outcome.snapshot)) this.sendAppendResponse(m.from, this.log.lastIndex());
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
    this.membership.setBase(snapshot.meta.conf);
    this.refreshConf();
    return true;
  }

  private handleAppendResponse(m: AppendResponseMessage): void {
    const accepted = this.replication.onAppendResponse(m);
    if (accepted === null) return;
    if (this.maybeCommit()) this.noticeCommit();
    else if (accepted.wasPaused) this.replication.sendAppend(m.from, true); // also tells it the commit index
    this.replication.fillPipeline(m.from);
    if (m.from === this.leadTransferee && this.progress(m.from).match === this.log.lastIndex()) {
      this.send({ type: 'timeoutNow', to: m.from, term: this.term });
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponseMessage): void {
    if (!this.replication.onHeartbeatResponse(m)) return;
    if (m.ctx !== null) this.serveReads(this.reads.ack(m.from, m.ctx, this.membership.voters));
  }

  // ---------------------------------------------------------------- commit and proposals

  private maybeCommit(): boolean {
    const index = this.tracker.committedIndex(this.membership.voters);
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
      this.reads.holdForCommit(ctx, from);
      return;
    }
    const read = this.reads.add(ctx, this.log.committed, from, this.id);
    if (majority(this.membership.voters.size) <= 1 || this.cfg.unsafe?.readsWithoutQuorum) this.serveReads(this.reads.release(read));
    else this.replication.broadcastHeartbeat(ctx);
  }

  private releaseReadsBeforeCommit(): void {
    for (const r of this.reads.takeHeldForCommit()) this.handleReadIndex(r.from, r.ctx);
  }

  /** A majority confirmed leadership after these reads arrived: each may be served at its index. */
  private serveReads(reads: PendingRead[]): void {
    for (const r of reads) {
      if (r.from === this.id) this.readStates.push({ ctx: r.ctx, index: r.index });
      else this.send({ type: 'readIndexResp', to: r.from, term: this.term, ctx: r.ctx, index: r.index });
    }
  }

  // ---------------------------------------------------------------- membership

  /**
   * Puts the newest membership in the log in effect: after appending or truncating a
   * change, installing a snapshot, or at start. A leader updates its progress table.
   */
  private refreshConf(): void {
    this.membership.refresh(this.log);
    if (this.role !== 'leader') return;
    // A leader that removed or demoted itself leads on, not counting itself, until the
    // change is applied (advance() steps it down): it must commit that change first.
    const { voters, learners } = this.membership;
    this.tracker.syncMembers(voters, learners, this.id, this.log.lastIndex() + 1);
    if (this.leadTransferee !== null && !voters.has(this.leadTransferee)) this.leadTransferee = null;
    // The quorum changed: the commit index may move (every follower hears of it), and new members need the log.
    this.replication.broadcastAppend(this.maybeCommit());
  }

  // ---------------------------------------------------------------- helpers

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  private progress(id: NodeId): Progress {
    const pr = this.tracker.get(id);
    assert(pr !== undefined, `no progress for ${id}`);
    return pr;
  }

  private send(m: Outgoing): void {
    this.msgs.push({ ...m, from: this.id } as Message);
  }
}
