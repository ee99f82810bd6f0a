// The driver of one node's Raft core: ticks, the persist → send → apply → advance
// loop, proposals whose promises settle when their entry is applied, linearizable
// reads, forwarding of proposals and reads from followers to the leader over the peer
// link, and log compaction. The core itself is raft/ (pure); this is the imperative shell.
import type { Logger } from 'pino';
import { Raft } from '../../raft/raft.js';
import type { Entry, InitialState, Message, NodeId, RaftConfig, RaftStatus, Ready, Snapshot, StepRefusal } from '../../raft/types.js';
import type { RaftStore } from '../storage/raft-store.js';
import { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { parsePeerFrame, type FrameDropReason, type PeerFrame } from './frames.js';
import { NoLeaderError, ProposalLostError, ProposalTimeoutError } from './errors.js';

/** The part of the peer transport the driver needs. */
export interface PeerLink {
  send(to: NodeId, frame: PeerFrame): boolean;
}

/** The replicated application: deterministic apply, snapshot and restore. */
export interface Application {
  /** Applies a committed normal entry (never the empty no-op); the result goes to its proposer. */
  apply(index: number, data: Uint8Array): unknown;
  /** Sees each committed membership change after the core applied it. */
  applyConfChange(entry: Extract<Entry, { type: 'confChange' }>): void;
  snapshot(): Uint8Array;
  restore(snapshot: Snapshot): void;
}

export interface RaftNodeOptions {
  /** Frames that are not the driver's own (leases): handed to the node. */
  onOtherFrame?: (from: NodeId, frame: PeerFrame) => void;
  /** Each frame from a peer that was dropped unacted on, and why (a metric). */
  onFrameDropped?: (reason: FrameDropReason) => void;
  /** A proposal forwarded by peer `from` is proposed only if this returns null; else the reason goes back to it. Default: all are. */
  admitForwarded?: (from: NodeId, data: Uint8Array) => string | null;
  raft: RaftConfig;
  initial: InitialState;
  store: RaftStore;
  link: PeerLink;
  app: Application;
  logger: Logger;
  tickMs: number;
  /** Compact the log once this many entries were applied since the last snapshot. */
  compactEveryEntries: number;
  /** A proposal or read not settled in this time is rejected (the caller may retry). */
  requestTimeoutMs: number;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** How long a follower waits to apply a write it forwarded before answering anyway. */
const APPLY_WAIT_MS = 5000;

export class RaftNode {
  readonly id: NodeId;
  private readonly raft: Raft;
  private readonly opts: RaftNodeOptions;
  private readonly log: Logger;
  /** Work that arrived while a ready was being persisted: run before the next ready(). */
  private inbox: Array<() => void> = [];
  private pumping = false;
  private stopped = false;
  private ticker: NodeJS.Timeout | null = null;
  /** Local proposals by log index, with the term they were appended in. */
  private readonly proposals = new Map<number, Waiter<unknown> & { term: number }>();
  /** Proposals this follower forwarded to the leader, by request id, with the leader they went to. */
  private readonly forwarded = new Map<string, Waiter<unknown> & { leader: NodeId }>();
  private knownLeader: NodeId | null = null;
  /** Reads waiting for their ReadState, then for the applied index to reach it. */
  private readonly reads = new Map<string, Waiter<void>>();
  private readonly readsAwaitingApply: Array<{ ctx: string; index: number }> = [];
  private appliedSinceSnapshot = 0;
  /** Snapshots received from the leader and applied; and log compactions done here. */
  snapshotsInstalled = 0;
  compactions = 0;
  private applied: number;
  private seq = 0;
  private fatal: Error | null = null;
  private readonly appliedListeners = new Set<(applied: number) => void>();
  /** When each peer last answered this node as leader (an answer of the current term). */
  private readonly answeredAt = new Map<NodeId, { term: number; ms: number }>();
  /** Frames from peers dropped since start, by reason. */
  readonly framesDropped: Record<FrameDropReason, number> = { malformed: 0, out_of_range: 0, wrong_sender: 0, misaddressed: 0, stranger: 0 };
  /** A peer sending bad frames could otherwise write a warning per frame. */
  private readonly dropWarn: RateLimitedWarn;

  constructor(opts: RaftNodeOptions) {
    this.opts = opts;
    this.id = opts.raft.id;
    this.log = opts.logger.child({ component: 'raft' });
    this.raft = new Raft(opts.raft, opts.initial);
    this.dropWarn = new RateLimitedWarn(this.log);
    this.applied = opts.initial.applied;
    if (opts.initial.snapshot) opts.app.restore(opts.initial.snapshot);
  }

  start(): void {
    this.ticker = setInterval(() => this.act(() => {
      this.raft.tick();
      this.noticeLeaderChange();
    }), this.opts.tickMs);
    this.act(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    const err = new Error('node is stopping');
    for (const w of [...this.proposals.values(), ...this.forwarded.values(), ...this.reads.values()]) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.proposals.clear();
    this.forwarded.clear();
    this.reads.clear();
    // Let an in-flight write finish before the store closes.
    while (this.pumping) await new Promise((r) => setTimeout(r, 5));
  }

  status(): RaftStatus {
    return this.raft.status();
  }

  appliedIndex(): number {
    return this.applied;
  }

  /**
   * Whether this node leads with a quorum of voters (itself included) that answered it
   * in its term within the last `windowMs`. Check-quorum steps a leader cut off from
   * its quorum down one to two election timeouts late; what the leader grants meanwhile
   * (node leases) must not outlive its authority, so it asks this instead.
   */
  hasQuorumContact(windowMs: number, nowMs = Date.now()): boolean {
    const st = this.raft.status();
    if (st.role !== 'leader') return false;
    let heard = 0;
    for (const id of st.conf.voters) {
      const a = this.answeredAt.get(id);
      if (id === this.id || (a !== undefined && a.term === st.term && nowMs - a.ms <= windowMs)) heard++;
    }
    return heard >= Math.floor(st.conf.voters.length / 2) + 1;
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
        const receivedMs = Date.now();
        this.act(() => {
          const refused = this.raft.step(m);
          if (refused !== null) {
            this.dropFrame(from, DROP_REASON[refused], `${m.type} at term ${m.term} to ${m.to}`);
            return;
          }
          if (m.type === 'appResp' || m.type === 'heartbeatResp' || m.type === 'snapResp') {
            this.answeredAt.set(from, { term: m.term, ms: receivedMs });
          }
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
      case 'propResult': {
        const w = this.forwarded.get(frame.id);
        if (!w) return;
        this.forwarded.delete(frame.id);
        clearTimeout(w.timer);
        if (!frame.ok) w.reject(errorFromName(frame.error));
        else if (frame.index === undefined) w.resolve(frame.value);
        // Read your writes: the client that wrote through this node reads from it next
        // (a token it just made, a job it just submitted), so answer once applied here.
        else this.whenApplied(frame.index, APPLY_WAIT_MS).then(() => w.resolve(frame.value));
        return;
      }
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
    const leader = st.leader;
    const id = `${this.id}:${++this.seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.forwarded.delete(id);
        reject(new ProposalTimeoutError());
      }, this.opts.requestTimeoutMs);
      this.forwarded.set(id, { resolve, reject, timer, leader });
      if (!this.opts.link.send(leader, { k: 'prop', id, data })) {
        clearTimeout(timer);
        this.forwarded.delete(id);
        reject(new NoLeaderError());
      }
    });
  }

  /** Resolves once this node has applied everything committed when the read was asked (linearizable). */
  readBarrier(): Promise<void> {
    const ctx = `${this.id}:r${++this.seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(ctx);
        reject(new ProposalTimeoutError());
      }, this.opts.requestTimeoutMs);
      this.reads.set(ctx, { resolve, reject, timer });
      this.act(() => {
        if (!this.raft.readIndex(ctx)) {
          clearTimeout(timer);
          this.reads.delete(ctx);
          reject(new NoLeaderError());
        }
      });
    });
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
        this.waitForIndex(r.index, r.term).then(() => resolve(), reject);
      });
    });
  }

  transferLeadership(to: NodeId): void {
    this.act(() => this.raft.transferLeadership(to));
  }

  /**
   * A proposal forwarded to a leader that is no longer the leader (it died, or lost an
   * election) would only time out: fail it now as lost, so the caller retries at once
   * with the new leader (commands are idempotent; see src/node/proposer.ts).
   */
  private noticeLeaderChange(): void {
    const leader = this.raft.status().leader;
    if (leader === this.knownLeader) return;
    this.knownLeader = leader;
    for (const [id, w] of this.forwarded) {
      if (w.leader !== leader) {
        this.forwarded.delete(id);
        clearTimeout(w.timer);
        w.reject(new ProposalLostError());
      }
    }
  }

  private proposeLocal(data: Uint8Array): Promise<{ value: unknown; index: number }> {
    return new Promise((resolve, reject) => {
      this.act(() => {
        const r = this.raft.propose(data);
        if (!r.ok) {
          reject(r.reason === 'notLeader' ? new NoLeaderError() : new Error(`proposal refused: ${r.reason}`));
          return;
        }
        this.waitForIndex(r.index, r.term).then((value) => resolve({ value, index: r.index }), reject);
      });
    });
  }

  /** Resolves once this node has applied `index`, or after `maxMs` (the entry is committed either way: a lagging follower must not fail the write). */
  private whenApplied(index: number, maxMs: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        stop();
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      const stop = this.onApplied((applied) => {
        if (applied >= index) done();
      });
    });
  }

  private waitForIndex(index: number, term: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.proposals.delete(index);
        reject(new ProposalTimeoutError());
      }, this.opts.requestTimeoutMs);
      this.proposals.set(index, { resolve, reject, timer, term });
    });
  }

  /** Runs `fn` against the core now, or after the ready being persisted has advanced. */
  private act(fn: () => void): void {
    if (this.stopped || this.fatal) return;
    this.inbox.push(fn);
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (;;) {
        const work = this.inbox;
        this.inbox = [];
        for (const fn of work) fn();
        if (!this.raft.hasReady()) {
          if (this.inbox.length === 0) break;
          continue;
        }
        const rd = this.raft.ready();
        // A snapshot from the leader is loaded before it is persisted: one that does not
        // load (corrupt, or forged by a peer) stops the node with its disk as it was,
        // rather than again at every restart. It holds committed state only, so acting on
        // it before this node's own write is safe.
        if (rd.snapshot) this.opts.app.restore(rd.snapshot);
        await this.opts.store.save(rd);
        for (const m of rd.messages) this.opts.link.send(m.to, { k: 'raft', m });
        this.applyReady(rd);
        this.raft.advance(rd);
        await this.maybeCompact();
      }
    } catch (err) {
      // A failed disk write or a broken invariant: continuing could lose acknowledged data.
      this.fatal = err instanceof Error ? err : new Error(String(err));
      this.log.fatal({ err: this.fatal }, 'raft loop failed; the node stops');
      process.exitCode = 70;
      setImmediate(() => process.exit(70));
    } finally {
      this.pumping = false;
    }
  }

  private applyReady(rd: Ready): void {
    if (rd.snapshot) {
      this.snapshotsInstalled++;
      this.applied = rd.snapshot.meta.index;
      this.appliedSinceSnapshot = 0;
      for (const [index, w] of this.proposals) {
        if (index <= this.applied) this.settle(index, w, undefined, new ProposalLostError());
      }
    }
    for (const e of rd.committedEntries) {
      let result: unknown;
      if (e.type === 'confChange') this.opts.app.applyConfChange(e);
      else if (e.data.length > 0) result = this.opts.app.apply(e.index, e.data);
      this.applied = e.index;
      this.appliedSinceSnapshot++;
      const w = this.proposals.get(e.index);
      if (w) this.settle(e.index, w, result, w.term === e.term ? null : new ProposalLostError());
    }
    for (const rs of rd.readStates) this.readsAwaitingApply.push(rs);
    this.serveReads();
    for (const l of this.appliedListeners) l(this.applied);
  }

  private settle(index: number, w: Waiter<unknown>, value: unknown, err: Error | null): void {
    this.proposals.delete(index);
    clearTimeout(w.timer);
    if (err) w.reject(err);
    else w.resolve(value);
  }

  private serveReads(): void {
    for (let i = 0; i < this.readsAwaitingApply.length; ) {
      const rs = this.readsAwaitingApply[i];
      if (rs && rs.index <= this.applied) {
        this.readsAwaitingApply.splice(i, 1);
        const w = this.reads.get(rs.ctx);
        if (w) {
          this.reads.delete(rs.ctx);
          clearTimeout(w.timer);
          w.resolve();
        }
      } else {
        i++;
      }
    }
  }

  private async maybeCompact(): Promise<void> {
    if (this.appliedSinceSnapshot < this.opts.compactEveryEntries) return;
    this.appliedSinceSnapshot = 0;
    const snapshot = this.raft.compact(this.opts.app.snapshot());
    await this.opts.store.saveSnapshot(snapshot);
    this.compactions++;
    this.log.debug({ index: snapshot.meta.index, bytes: snapshot.data.length }, 'log compacted');
  }
}

const DROP_REASON: Record<StepRefusal, FrameDropReason> = { invalid: 'out_of_range', misaddressed: 'misaddressed', stranger: 'stranger' };

function errorName(err: unknown): string {
  if (err instanceof NoLeaderError) return 'noLeader';
  if (err instanceof ProposalLostError) return 'lost';
  if (err instanceof ProposalTimeoutError) return 'timeout';
  return err instanceof Error ? err.message : String(err);
}

function errorFromName(name: string): Error {
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

export type { Message };
