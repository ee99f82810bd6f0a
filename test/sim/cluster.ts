import { Raft } from '../../raft/raft.js';
import { RaftInvariantError } from '../../raft/assert.js';
import type { ConfChange, Entry, InitialState, Message, NodeId, ProposeResult, RaftConfig, RaftStatus, ReadState, Ready } from '../../raft/types.js';
import { Application, type ApplyOutcome } from './app.js';
import { InvariantViolation, type Checker } from './checker.js';
import type { InFlight, Network } from './network.js';
import { NodeStorage } from './storage.js';
import type { Trace } from './trace.js';

/**
 * The driver of every node's core, the way src/node drives it in production, with a
 * simulated disk, network and application. Each call on a core is one node action:
 *   flush what the send-before-persist mutant deferred → compact if due → call the
 *   core → drain ready() (persist, send, apply, advance) → check the invariants
 *   that concern this node.
 */

export interface ClusterOptions {
  /** false is the send-before-persist mutant: a ready is persisted only at the node's next action. */
  persistBeforeSend: boolean;
  /** The driver snapshots the application and compacts the log every this many applied entries. */
  compactEveryEntries: number;
}

export interface ClusterHooks {
  onApplied(node: NodeId, e: Entry, outcome: ApplyOutcome): void;
  onReadServed(node: NodeId, ctx: string, index: number): void;
  /** After every action on a node, with the node's status (role, term, commit). */
  onStatus(status: RaftStatus): void;
}

export class SimNode {
  raft: Raft | null = null;
  app = new Application();
  /** The node's current term as of its last ready (the observer term the checker needs). */
  term = 0;
  /** Readies handed out but not yet persisted (send-before-persist mutant only). */
  unpersisted: Ready[] = [];
  /** Read states waiting for the application to reach their index. */
  reads: ReadState[] = [];
  /**
   * A paused process (a long GC or VM pause) neither ticks nor handles messages or
   * clients until this tick; it resumes with its state as it was.
   */
  pausedUntilTick = 0;

  constructor(
    readonly id: NodeId,
    readonly config: RaftConfig,
    readonly storage: NodeStorage,
  ) {}

  get live(): boolean {
    return this.raft !== null;
  }

  responsive(nowTick: number): boolean {
    return this.raft !== null && nowTick >= this.pausedUntilTick;
  }
}

function describe(m: Message): string {
  const base = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'app':
      return `${base} i${m.index}/${m.logTerm} n${m.entries.length} c${m.commit}`;
    case 'appResp':
      return `${base} i${m.index}${m.reject ? ` reject hint${m.rejectHint}/${m.logTerm}` : ''}`;
    case 'vote':
    case 'preVote':
      return `${base} last${m.index}/${m.logTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResp':
    case 'preVoteResp':
      return `${base}${m.reject ? ' reject' : ' grant'}`;
    case 'heartbeat':
      return `${base} c${m.commit}${m.ctx ? ` ${m.ctx}` : ''}`;
    case 'heartbeatResp':
      return `${base}${m.ctx ? ` ${m.ctx}` : ''}`;
    case 'snap':
      return `${base} s${m.meta.index}/${m.meta.term} @${m.offset}+${m.data.length}/${m.totalBytes}`;
    case 'snapResp':
      return `${base} s${m.snapIndex} next@${m.nextOffset}`;
    case 'readIndex':
      return `${base} ${m.ctx}`;
    case 'readIndexResp':
      return `${base} ${m.ctx} i${m.index}`;
    case 'timeoutNow':
      return base;
  }
}

export class Cluster {
  nowTick = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  /** strangersRefused: messages a core set aside because their sender was outside its configuration. */
  readonly counters = { compactions: 0, snapshotsInstalled: 0, strangersRefused: 0 };

  constructor(
    private readonly network: Network,
    private readonly checker: Checker,
    private readonly trace: Trace,
    private readonly options: ClusterOptions,
    private readonly hooks: ClusterHooks,
  ) {}

  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  liveIds(): NodeId[] {
    return this.ids().filter((id) => this.node(id).live);
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Adds a node with `initial` on its disk and starts it. */
  addNode(config: RaftConfig, initial: InitialState): void {
    const node = new SimNode(config.id, config, new NodeStorage(config.id, initial));
    this.nodes.set(config.id, node);
    this.start(config.id);
  }

  /** Starts (or restarts) a node from what its disk holds. */
  start(id: NodeId): void {
    const node = this.node(id);
    if (node.live) throw new Error(`node ${id} is already running`);
    const initial = node.storage.initialState();
    node.app = initial.snapshot ? Application.fromSnapshot(initial.snapshot) : new Application();
    node.term = initial.hardState.term;
    node.unpersisted = [];
    node.reads = [];
    node.pausedUntilTick = 0;
    this.checker.loadLog(id, initial.snapshot?.meta ?? null, initial.entries);
    this.checker.restartApplication(id, node.app.appliedIndex, node.app.chain);
    this.trace.add(`start ${id} term${initial.hardState.term} commit${initial.hardState.commit} snap${initial.applied} last${node.storage.lastIndex()}`);
    node.raft = this.core(id, () => new Raft(node.config, initial));
    this.drain(node);
  }

  /** The process dies: the core and everything not persisted vanish; in-flight messages from it may still arrive. */
  crash(id: NodeId): void {
    const node = this.node(id);
    const lost = node.unpersisted.length;
    node.raft = null;
    node.unpersisted = [];
    node.reads = [];
    this.checker.dropLog(id);
    this.trace.add(`crash ${id}${lost > 0 ? ` losing ${lost} unpersisted readies` : ''}`);
  }

  /** Ends every pause now (messages held for a paused node stay due at the tick its pause would have ended). */
  resumeAll(): void {
    for (const node of this.nodes.values()) {
      if (node.pausedUntilTick > this.nowTick) {
        node.pausedUntilTick = this.nowTick;
        this.trace.add(`resume ${node.id}`);
      }
    }
  }

  pause(id: NodeId, untilTick: number): void {
    this.node(id).pausedUntilTick = untilTick;
    this.trace.add(`pause ${id} until tick ${untilTick}`);
  }

  /** One tick of simulated time: every live node ticks, except those whose clock `lags` this time. */
  tick(lags: (id: NodeId) => boolean = () => false): void {
    this.nowTick += 1;
    this.network.advanceTo(this.nowTick);
    const lagging: NodeId[] = [];
    for (const id of this.ids()) {
      const node = this.node(id);
      if (!node.responsive(this.nowTick)) continue;
      if (lags(id)) lagging.push(id);
      else this.act(node, (raft) => raft.tick());
    }
    this.trace.add(`tick ${this.nowTick}${lagging.length > 0 ? ` (lagging ${lagging.join(',')})` : ''}`);
  }

  /** Delivers one due message (or loses it to a partition or a dead receiver). */
  deliver(item: InFlight): void {
    const m = item.msg;
    if (this.network.blocked(m.from, m.to)) {
      this.trace.add(`drop(partition) ${describe(m)}`);
      return;
    }
    const node = this.nodes.get(m.to);
    if (!node?.live) {
      this.trace.add(`drop(down) ${describe(m)}`);
      return;
    }
    if (!node.responsive(this.nowTick)) {
      this.network.deliverLater(item, node.pausedUntilTick);
      this.trace.add(`hold(paused) ${describe(m)}`);
      return;
    }
    this.trace.add(`deliver ${describe(m)}`);
    const refused = this.act(node, (raft) => raft.step(m));
    if (refused === null) return;
    this.trace.add(`refused(${refused}) ${describe(m)}`);
    // Every message here comes from a correct core: only the stranger rule may set one aside.
    if (refused !== 'stranger') throw new InvariantViolation('core assertion', `node ${m.to} refused a correct message as ${refused}: ${describe(m)}`);
    this.counters.strangersRefused += 1;
  }

  propose(id: NodeId, data: Uint8Array): ProposeResult | null {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.act(node, (raft) => raft.propose(data)) : null;
  }

  proposeConfChange(id: NodeId, change: ConfChange): ProposeResult | null {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.act(node, (raft) => raft.proposeConfChange(change)) : null;
  }

  readIndex(id: NodeId, ctx: string): boolean {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.act(node, (raft) => raft.readIndex(ctx)) : false;
  }

  transferLeadership(id: NodeId, to: NodeId): boolean {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.act(node, (raft) => raft.transferLeadership(to)) : false;
  }

  status(id: NodeId): RaftStatus | null {
    const raft = this.node(id).raft;
    return raft ? this.core(id, () => raft.status()) : null;
  }

  /** The live leader of the highest term, if any. */
  leader(): RaftStatus | null {
    let best: RaftStatus | null = null;
    for (const id of this.ids()) {
      const s = this.status(id);
      if (s?.role === 'leader' && (best === null || s.term > best.term)) best = s;
    }
    return best;
  }

  // ------------------------------------------------------------------ the driver

  private act<T>(node: SimNode, call: (raft: Raft) => T): T {
    const raft = node.raft;
    if (!raft) throw new Error(`node ${node.id} is down (harness bug)`);
    this.flushUnpersisted(node);
    this.maybeCompact(node, raft);
    const result = this.core(node.id, () => call(raft));
    this.drain(node);
    const s = this.core(node.id, () => raft.status());
    this.checker.observeRole(node.id, s.role, s.term);
    this.checker.checkLastIndex(node.id, s.lastIndex);
    this.hooks.onStatus(s);
    return result;
  }

  /** Runs ready → persist → send → apply → advance until the core has nothing more. */
  private drain(node: SimNode): void {
    const raft = node.raft;
    if (!raft) return;
    while (this.core(node.id, () => raft.hasReady())) {
      const rd = this.core(node.id, () => raft.ready());
      if (rd.hardState) node.term = rd.hardState.term;
      // The core's log (persisted or not) now holds the ready's snapshot and entries.
      if (rd.snapshot) this.checker.installSnapshot(node.id, rd.snapshot.meta.index, rd.snapshot.meta.term);
      this.checker.appendEntries(node.id, rd.entries);
      if (this.options.persistBeforeSend) node.storage.persist(rd);
      else node.unpersisted.push(rd);
      for (const m of rd.messages) this.send(m);
      if (rd.snapshot) this.applySnapshot(node, rd);
      for (const e of rd.committedEntries) this.applyEntry(node, e);
      for (const rs of rd.readStates) node.reads.push(rs);
      this.serveReads(node);
      this.core(node.id, () => raft.advance(rd));
    }
  }

  private send(m: Message): void {
    const copies = this.network.send(m, this.nowTick);
    if (copies === 0) this.trace.add(`drop(send) ${describe(m)}`);
    else if (copies === 2) this.trace.add(`duplicate ${describe(m)}`);
  }

  private applySnapshot(node: SimNode, rd: Ready): void {
    const snap = rd.snapshot;
    if (!snap) return;
    try {
      node.app.restore(snap);
    } catch (err) {
      throw new InvariantViolation('state machine safety', `node ${node.id} could not load snapshot ${snap.meta.index}: ${(err as Error).message}`);
    }
    this.trace.add(`apply-snapshot ${node.id} s${snap.meta.index}/${snap.meta.term} voters=${snap.meta.conf.voters.join(',')} learners=${snap.meta.conf.learners.join(',')}`);
    this.checker.applySnapshot(node.id, snap.meta.index, snap.meta.term, node.app.chain);
    this.counters.snapshotsInstalled += 1;
  }

  private applyEntry(node: SimNode, e: Entry): void {
    this.checker.applyEntry(node.id, e, node.term);
    let outcome: ApplyOutcome;
    try {
      outcome = node.app.apply(e);
    } catch (err) {
      throw new InvariantViolation('state machine safety', `node ${node.id} could not apply entry ${e.index}: ${(err as Error).message}`);
    }
    if (e.type === 'confChange') this.trace.add(`apply ${node.id} i${e.index}/${e.term} ${e.change.type} ${e.change.node}`);
    if (outcome.command) {
      const c = outcome.command;
      this.checker.applyCommand(node.id, c.clientId, c.requestId, e.index, outcome.isNew);
    }
    this.hooks.onApplied(node.id, e, outcome);
  }

  private serveReads(node: SimNode): void {
    if (node.reads.length === 0) return;
    const waiting: ReadState[] = [];
    for (const rs of node.reads) {
      if (rs.index <= node.app.appliedIndex) {
        this.trace.add(`read-served ${node.id} ${rs.ctx} i${rs.index} applied${node.app.appliedIndex}`);
        this.checker.readServed(node.id, rs.ctx, rs.index);
        this.hooks.onReadServed(node.id, rs.ctx, rs.index);
      } else {
        waiting.push(rs);
      }
    }
    node.reads = waiting;
  }

  private flushUnpersisted(node: SimNode): void {
    if (node.unpersisted.length === 0) return;
    for (const rd of node.unpersisted) node.storage.persist(rd);
    node.unpersisted = [];
  }

  private maybeCompact(node: SimNode, raft: Raft): void {
    const applied = node.app.appliedIndex;
    if (applied - node.storage.snapshotIndex() < this.options.compactEveryEntries) return;
    const snap = this.core(node.id, () => raft.compact(node.app.snapshotData()));
    if (snap.meta.index !== applied) {
      throw new InvariantViolation('ready contract', `node ${node.id} compacted at ${snap.meta.index} but its application applied ${applied}`);
    }
    node.storage.compact(snap);
    this.checker.compactLog(node.id, snap.meta.index);
    this.counters.compactions += 1;
    this.trace.add(`compact ${node.id} s${snap.meta.index}/${snap.meta.term} bytes${snap.data.length}`);
  }

  /** Calls into a core; whatever it throws is a broken invariant of the core. */
  private core<T>(id: NodeId, call: () => T): T {
    try {
      return call();
    } catch (err) {
      if (err instanceof InvariantViolation) throw err;
      const what = err instanceof RaftInvariantError ? 'assertion' : (err as Error).name;
      throw new InvariantViolation('core assertion', `node ${id}: ${what}: ${(err as Error).message}`);
    }
  }
}
