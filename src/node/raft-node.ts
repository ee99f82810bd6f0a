// The driver of one node's Raft core: ticks, the persist → send → apply → advance loop,
// proposals settled when applied (pending-proposals.ts), linearizable reads
// (pending-reads.ts), proposals forwarded to the leader (forwarding.ts), compaction.
// The core is raft/ (pure); this is the imperative shell, the same in production
// (LevelDB, the system clock, TLS) and in tests and simulators (MemoryRaftStorage, a
// ManualClock, a simulated link).
import type { Logger } from 'pino';
import { Raft } from '../../raft/raft.js';
import type { Message, NodeId, RaftStatus, Ready, SoftState, StepRefusal } from '../../raft/types.js';
import type { Clock, Timer } from '../util/clock.js';
import { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { NoLeaderError } from './errors.js';
import { ForwardedProposals } from './forwarding.js';
import { PendingProposals } from './pending-proposals.js';
import { PendingReads } from './pending-reads.js';
import { parsePeerFrame, type FrameDropReason } from './frames.js';
import { QuorumContact } from './quorum-contact.js';
import { errorName, type RaftNodeOptions } from './raft-node-api.js';

export type { Application, PeerLink, RaftNodeObserver, RaftNodeOptions, UnsafeDriverKnobs } from './raft-node-api.js';

export class RaftNode {
  readonly id: NodeId;
  private readonly raft: Raft;
  private readonly opts: RaftNodeOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  /** Work that arrived while a ready was being persisted: run before the next ready(). */
  private inbox: Array<() => void> = [];
  /** The loop is running, or waiting for a write to be durable. */
  private pumping = false;
  /** A deferred run of the loop is scheduled (deferTurn). */
  private turnDeferred = false;
  /** The timer that sends a deferred commit (RaftNodeOptions.commitNoticeMs). */
  private commitNotice: Timer | null = null;
  private readonly whenIdle: Array<() => void> = [];
  /** Readies sent and applied but not yet written (the sendBeforePersist knob only). */
  private readonly unwritten: Ready[] = [];
  private stopped = false;
  private ticker: Timer | null = null;
  /** Local proposals by log index, with the term they were appended in. */
  private readonly proposals: PendingProposals;
  /** Proposals this node forwarded to its leader while a follower. */
  private readonly forwarded: ForwardedProposals;
  private knownLeader: NodeId | null = null;
  /** Reads waiting for their ReadState, then for the applied index to reach it. */
  private readonly reads: PendingReads;
  private appliedSinceSnapshot = 0;
  private appliedBytesSinceSnapshot = 0;
  /** Snapshots received from the leader and applied; and log compactions done here. */
  snapshotsInstalled = 0;
  compactions = 0;
  private applied: number;
  private fatal: Error | null = null;
  private readonly appliedListeners = new Set<(applied: number) => void>();
  /** Which voters answered this node as leader, credited with the send times of what they answered. */
  private readonly contact: QuorumContact;
  /** When (monotonic) this node became leader of its current term; null while it does not lead. */
  private leaderSinceMs: number | null = null;
  /** Frames from peers dropped since start, by reason. */
  readonly framesDropped: Record<FrameDropReason, number> = { malformed: 0, out_of_range: 0, wrong_sender: 0, misaddressed: 0, stranger: 0 };
  /** A peer sending bad frames could otherwise write a warning per frame. */
  private readonly dropWarn: RateLimitedWarn;

  constructor(opts: RaftNodeOptions) {
    this.opts = opts;
    this.id = opts.raft.id;
    this.log = opts.logger.child({ component: 'raft' });
    this.clock = opts.clock;
    this.contact = new QuorumContact(this.id, opts.unsafe?.creditAnswerArrival === true);
    // Once its ticker runs, every heartbeat round of a leader is a contact probe
    // (quorum-contact.ts), at no extra round; a driver stepped by a test never probes
    // (unless the test's config brings a heartbeatCtx of its own).
    const heartbeatCtx = opts.raft.heartbeatCtx ?? ((): string | null => (this.ticker === null ? null : this.contact.nextProbeCtx()));
    this.raft = new Raft({ ...opts.raft, heartbeatCtx }, opts.initial);
    this.dropWarn = new RateLimitedWarn(this.log, undefined, undefined, () => this.clock.now());
    this.proposals = new PendingProposals(this.clock, opts.requestTimeoutMs);
    this.reads = new PendingReads(this.clock, opts.requestTimeoutMs, (ctx, index) => this.opts.observer?.readReleased?.(ctx, index));
    this.forwarded = new ForwardedProposals({
      id: this.id,
      clock: this.clock,
      send: (to, frame) => opts.link.send(to, frame),
      requestTimeoutMs: opts.requestTimeoutMs,
      whenApplied: (index, maxMs) => this.whenApplied(index, maxMs),
    });
    this.applied = opts.initial.applied;
    if (opts.initial.snapshot) opts.app.restore(opts.initial.snapshot);
  }

  start(): void {
    this.ticker = this.clock.every(this.opts.tickMs, () => {
      this.tick();
      this.opts.onTick?.();
    });
    this.drain();
  }

  /** One tick of the core's logical clock: the ticker's, or a simulator's that moves time itself. */
  tick(): void {
    this.act(() => this.raft.tick());
  }

  /** Runs the loop now: persists, sends and applies whatever the core has ready. */
  drain(): void {
    this.act(() => undefined);
  }

  /**
   * Calls the core directly, runs the loop, and returns what the call returned: for
   * scripted tests and the simulators, which step the core themselves. It needs a
   * storage that writes synchronously, so that no write is ever in flight between two
   * calls; production code uses the methods below.
   */
  withCore<T>(call: (core: Raft) => T): T {
    if (this.pumping) throw new Error(`node ${this.id}: withCore() while a write is in flight (it needs a synchronous storage)`);
    const box: { done: boolean; value?: T } = { done: false };
    if (!this.stopped && !this.fatal) {
      this.inbox.push(() => {
        box.value = call(this.raft);
        box.done = true;
      });
      this.pump();
    }
    if (!box.done) throw new Error(`node ${this.id} is stopped`);
    return box.value as T;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ticker?.cancel();
    this.commitNotice?.cancel();
    const err = new Error('node is stopping');
    this.proposals.rejectAll(err);
    this.reads.rejectAll(err);
    this.forwarded.rejectAll(err);
    // Let an in-flight write finish before the store closes.
    if (this.pumping) await new Promise<void>((resolve) => this.whenIdle.push(resolve));
  }

  status(): RaftStatus {
    return this.raft.status();
  }

  appliedIndex(): number {
    return this.applied;
  }

  /** Readies handed out but not yet written: a crash now loses them (the sendBeforePersist knob only). */
  get unwrittenReadies(): number {
    return this.unwritten.length;
  }

  /**
   * Whether this node leads with a quorum of voters (itself included) that answered, in
   * its term, heartbeats it sent within the last `windowMs`: then no leader of a later
   * term was elected more than `windowMs` ago (quorum-contact.ts). Check-quorum steps a
   * leader cut off from its quorum down one to two election timeouts late; what the
   * leader grants meanwhile (node leases) must not outlive its authority, so it asks
   * this instead. Times are the clock's monotonic milliseconds.
   */
  hasQuorumContact(windowMs: number, nowMs = this.clock.monotonic()): boolean {
    return this.contact.has(this.raft.status(), windowMs, nowMs);
  }

  /** When (monotonic ms) this node became leader of its current term, its election over; null when it does not lead. */
  leaderSince(): number | null {
    return this.leaderSinceMs;
  }

  /**
   * How often a leader sends a contact probe: each heartbeat round is one
   * (RaftConfig.heartbeatCtx). A window of three periods still holds while the answers
   * come up to two periods late.
   */
  get contactProbeMs(): number {
    return this.opts.tickMs * this.opts.raft.heartbeatTicks;
  }

  /** A leader confirms it still leads at once, not at its next heartbeat round: a ReadIndex round with a ctx of its own, whose answers hasQuorumContact credits. */
  private probeQuorum(): void {
    this.act(() => {
      if (this.raft.status().role === 'leader') this.raft.readIndex(this.contact.nextProbeCtx());
    });
  }

  /** The link to `peer` closed: if it leads, campaign soon (raft/raft.ts leaderUnreachable). */
  peerUnreachable(peer: NodeId): void {
    this.act(() => this.raft.leaderUnreachable(peer));
  }

  onApplied(listener: (applied: number) => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  /**
   * A frame from a peer (already authenticated by the transport). Anything it says is
   * checked before it is acted on: frames.ts checks shapes and ranges, the core checks
   * the sender is a member; a dropped frame is counted and logged (rate-limited).
   */
  receive(from: NodeId, raw: unknown): void {
    const parsed = parsePeerFrame(raw);
    if (!parsed.ok) {
      this.dropFrame(from, parsed.reason, parsed.detail);
      return;
    }
    const frame = parsed.frame;
    switch (frame.k) {
      case 'raft': {
        const m = frame.m;
        if (m.from !== from) {
          this.dropFrame(from, 'wrong_sender', `a ${m.type} message claims to come from ${m.from}`);
          return;
        }
        this.act(() => {
          const refused = this.raft.step(m);
          if (refused !== null) {
            this.dropFrame(from, DROP_REASON[refused], `${m.type} at term ${m.term} to ${m.to}`);
            return;
          }
          this.contact.noteAnswer(from, m, this.clock.monotonic());
        });
        return;
      }
      case 'prop': {
        // A follower forwards its client's proposal; answer when it is applied here,
        // unless the node's admission rule refuses it from this sender.
        const refusal = this.opts.admitForwarded?.(from, frame.data) ?? null;
        if (refusal !== null) {
          this.log.warn({ from, reason: refusal }, 'refused a forwarded proposal');
          this.opts.link.send(from, { k: 'propResult', id: frame.id, ok: false, error: refusal });
          return;
        }
        this.proposeLocal(frame.data).then(
          ({ value, index }) => this.opts.link.send(from, { k: 'propResult', id: frame.id, ok: true, value, index }),
          (err: unknown) => this.opts.link.send(from, { k: 'propResult', id: frame.id, ok: false, error: errorName(err) }),
        );
        return;
      }
      case 'propResult':
        this.forwarded.answer(frame);
        return;
      default:
        this.opts.onOtherFrame?.(from, frame);
        return;
    }
  }

  private dropFrame(from: NodeId, reason: FrameDropReason, detail: string): void {
    this.framesDropped[reason]++;
    this.opts.onFrameDropped?.(reason);
    this.dropWarn.warn(`${reason}:${from}`, { from, reason, detail }, 'dropped a peer frame');
  }

  /**
   * Proposes `data` and resolves with the application's result once it is applied.
   * On a follower the proposal is forwarded to the leader. Rejects with NoLeaderError,
   * ProposalLostError (a leader change dropped it: safe to retry the same command,
   * the state machine dedupes) or ProposalTimeoutError (fate unknown: retry the same command).
   */
  propose(data: Uint8Array): Promise<unknown> {
    const st = this.raft.status();
    if (st.role === 'leader') return this.proposeLocal(data).then((r) => r.value);
    if (st.leader === null) return Promise.reject(new NoLeaderError());
    return this.forwarded.propose(st.leader, data);
  }

  /** Resolves once this node has applied everything committed when the read was asked (linearizable). */
  readBarrier(): Promise<void> {
    const ctx = this.reads.nextCtx(this.id);
    const read = this.reads.wait(ctx);
    this.act(() => {
      if (!this.raft.readIndex(ctx)) this.reads.refuse(ctx, new NoLeaderError());
    });
    return read;
  }

  /** Membership changes go through the core's one-at-a-time rule; resolves when applied. */
  proposeConfChange(change: Parameters<Raft['proposeConfChange']>[0]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.act(() => {
        const r = this.raft.proposeConfChange(change);
        if (!r.ok) {
          reject(new Error(`membership change refused: ${r.reason}`));
          return;
        }
        this.proposals.wait(r.index, r.term).then(() => resolve(), reject);
      });
    });
  }

  transferLeadership(to: NodeId): void {
    this.act(() => this.raft.transferLeadership(to));
  }

  /** The leader changed: proposals forwarded to the old one are lost (forwarding.ts). */
  private noticeLeaderChange(soft: SoftState): void {
    if (soft.leader === this.knownLeader) return;
    this.knownLeader = soft.leader;
    this.leaderSinceMs = soft.leader === this.id ? this.clock.monotonic() : null;
    // A new leader proves its contact at once: its lease acks need not wait for a heartbeat round.
    if (soft.leader === this.id && this.ticker !== null) this.probeQuorum();
    this.forwarded.leaderChanged(soft.leader);
    this.opts.onLeaderChange?.(soft.leader);
  }

  private proposeLocal(data: Uint8Array): Promise<{ value: unknown; index: number }> {
    return new Promise((resolve, reject) => {
      this.act(() => {
        const r = this.raft.propose(data);
        if (!r.ok) {
          reject(r.reason === 'notLeader' ? new NoLeaderError() : new Error(`proposal refused: ${r.reason}`));
          return;
        }
        this.proposals.wait(r.index, r.term).then((value) => resolve({ value, index: r.index }), reject);
      });
    });
  }

  /** Resolves once this node has applied `index`, or after `maxMs` (the entry is committed either way: a lagging follower must not fail the write). */
  private whenApplied(index: number, maxMs: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        timer.cancel();
        stop();
        resolve();
      };
      const timer = this.clock.after(maxMs, done);
      const stop = this.onApplied((applied) => {
        if (applied >= index) done();
      });
    });
  }

  /** Runs `fn` against the core now, or after the ready being persisted has advanced. */
  private act(fn: () => void): void {
    if (this.stopped || this.fatal) return;
    this.inbox.push(fn);
    if (this.pumping || this.turnDeferred) return;
    const defer = this.opts.deferTurn;
    if (!defer) {
      this.pump();
      return;
    }
    this.turnDeferred = true;
    defer(() => {
      this.turnDeferred = false;
      if (!this.pumping && !this.stopped && !this.fatal) this.pump();
    });
  }

  /**
   * The loop: run what arrived, then handle each ready in order. It runs synchronously
   * as long as the storage does; a write that returns a promise suspends it (new work
   * waits in the inbox) until the write is durable.
   */
  private pump(): void {
    this.pumping = true;
    try {
      // The sendBeforePersist knob's late writes are made first, at the next pass.
      let next = andThen(this.writeUnwritten(), () => this.maybeCompact()) ?? this.turn();
      while (next === 'more') next = this.turn();
      if (next instanceof Promise) {
        next.then(
          () => this.pump(),
          (err: unknown) => this.fail(err),
        );
        return;
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.scheduleCommitNotice();
    this.idle();
  }

  /** A commit the last turns did not send goes out a moment later, unless an append carries it first. */
  private scheduleCommitNotice(): void {
    const ms = this.opts.commitNoticeMs;
    if (ms === undefined || this.commitNotice !== null || !this.raft.hasCommitToAnnounce()) return;
    this.commitNotice = this.clock.after(ms, () => {
      this.commitNotice = null;
      this.act(() => this.raft.announceCommit());
    });
  }

  /** One turn: the work that arrived, then at most one ready (persist → send → apply → advance → compact). */
  private turn(): 'idle' | 'more' | Promise<void> {
    if (this.stopped) return 'idle';
    const work = this.inbox;
    this.inbox = [];
    for (const fn of work) fn();
    if (!this.raft.hasReady()) return this.inbox.length > 0 ? 'more' : 'idle';
    const rd = this.raft.ready();
    this.contact.noteSent(rd.messages, this.clock.monotonic());
    this.opts.observer?.ready?.(rd);
    if (rd.softState) this.noticeLeaderChange(rd.softState);
    // A snapshot from the leader is loaded before it is persisted: one that does not
    // load (corrupt, or forged by a peer) stops the node with its disk as it was,
    // rather than again at every restart. It holds committed state only, so acting on
    // it before this node's own write is safe.
    if (rd.snapshot) this.opts.app.restore(rd.snapshot);
    if (this.opts.unsafe?.sendBeforePersist) this.unwritten.push(rd);
    // A leader's appends go out while its own write is under way (thesis §10.2.1): the
    // core counts the leader toward a commit only for entries on its own disk, and the
    // followers' answers wait in the inbox until this write is durable. Everything else
    // (votes, a follower's answers) promises what is on disk, so it waits for the write.
    const early = rd.messages.filter(isReplication);
    for (const m of early) this.opts.link.send(m.to, { k: 'raft', m });
    const late = early.length === 0 ? rd.messages : rd.messages.filter((m) => !isReplication(m));
    const writeStart = this.clock.monotonic();
    let write = this.opts.unsafe?.sendBeforePersist ? undefined : this.opts.store.save(rd);
    const onPersisted = this.opts.onPersisted;
    if (onPersisted && write instanceof Promise) write = write.then(() => onPersisted(this.clock.monotonic() - writeStart));
    // Committed entries are on a quorum's disks already: they are applied while this
    // ready's own entries are written (etcd applies beside its WAL write too), so a
    // batch's answers never wait for the next batch's fsync.
    const applyStart = this.clock.monotonic();
    this.applyReady(rd);
    if (rd.committedEntries.length > 0) this.opts.onApplied?.(this.clock.monotonic() - applyStart, rd.committedEntries.length);
    const rest = andThen(write, () => this.afterWrite(rd, late));
    return rest ?? 'more';
  }

  private afterWrite(rd: Ready, messages: readonly Message[]): void | Promise<void> {
    for (const m of messages) this.opts.link.send(m.to, { k: 'raft', m });
    this.raft.advance(rd);
    return this.maybeCompact();
  }

  /** The sendBeforePersist knob's late writes, oldest first. */
  private writeUnwritten(): void | Promise<void> {
    const rd = this.unwritten.shift();
    return rd && andThen(this.opts.store.save(rd), () => this.writeUnwritten());
  }

  private idle(): void {
    this.pumping = false;
    for (const resolve of this.whenIdle.splice(0)) resolve();
  }

  private fail(err: unknown): void {
    this.fatal = err instanceof Error ? err : new Error(String(err));
    this.idle();
    this.log.fatal({ err: this.fatal }, 'raft loop failed; the node stops');
    (this.opts.onFatal ?? exitOnFatal)(this.fatal);
  }

  private applyReady(rd: Ready): void {
    if (rd.snapshot) {
      this.snapshotsInstalled++;
      this.applied = rd.snapshot.meta.index;
      this.appliedSinceSnapshot = 0;
      this.appliedBytesSinceSnapshot = 0;
      this.proposals.coveredBySnapshot(this.applied);
    }
    for (const e of rd.committedEntries) {
      let result: unknown;
      if (e.type === 'confChange') this.opts.app.applyConfChange(e);
      else if (e.data.length > 0) result = this.opts.app.apply(e.index, e.data, e.term);
      else this.opts.app.applyNoop?.(e);
      this.applied = e.index;
      this.appliedSinceSnapshot++;
      if (e.type === 'normal') this.appliedBytesSinceSnapshot += e.data.length;
      this.proposals.applied(e.index, e.term, result);
    }
    for (const rs of rd.readStates) if (!this.contact.isProbe(rs.ctx)) this.reads.confirmed(rs);
    this.reads.serve(this.applied);
    for (const l of this.appliedListeners) l(this.applied);
  }

  private maybeCompact(): void | Promise<void> {
    // A compaction must not reach past what is on disk: with late writes, it waits for them.
    const due = this.appliedSinceSnapshot >= this.opts.compactEveryEntries || this.appliedBytesSinceSnapshot >= (this.opts.compactEveryBytes ?? Infinity);
    if (!due || this.unwritten.length > 0) return;
    this.appliedSinceSnapshot = 0;
    this.appliedBytesSinceSnapshot = 0;
    const snapshot = this.raft.compact(this.opts.app.snapshot());
    const done = (): void => {
      this.compactions++;
      this.log.debug({ index: snapshot.meta.index, bytes: snapshot.data.length }, 'log compacted');
      this.opts.observer?.compacted?.(snapshot);
    };
    return andThen(this.opts.store.saveSnapshot(snapshot), done);
  }
}

/** What only a leader sends: its log, its heartbeats, its snapshot chunks. */
function isReplication(m: Message): boolean {
  return m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap';
}

/** Runs `next` after `first`: at once when `first` was synchronous, else when its promise resolves. */
function andThen(first: void | Promise<void>, next: () => void | Promise<void>): Promise<void> | undefined {
  return first instanceof Promise ? first.then(next) : (next() ?? undefined);
}

function exitOnFatal(err: Error): void {
  // Also in plain words: the structured log may be quiet or go elsewhere.
  process.stderr.write(`workrs: the node stops: ${err.message}\n`);
  process.exitCode = 70;
  setImmediate(() => process.exit(70));
}

const DROP_REASON: Record<StepRefusal, FrameDropReason> = { invalid: 'out_of_range', misaddressed: 'misaddressed', stranger: 'stranger' };

