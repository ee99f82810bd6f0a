import { pino } from 'pino';
import type { Raft } from '../../raft/raft.js';
import { RaftInvariantError } from '../../raft/assert.js';
import type { ConfChange, Entry, InitialState, Message, NodeId, ProposeResult, RaftConfig, RaftStatus, Ready, Snapshot } from '../../raft/types.js';
import { RaftNode, type Application as DriverApplication } from '../../src/node/raft-node.js';
import { MemoryRaftStorage } from '../../src/storage/memory-storage.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { Application, type ApplyOutcome } from './app.js';
import { InvariantViolation, type Checker } from './checker.js';
import type { InFlight, Network } from './network.js';
import type { Trace } from './trace.js';

/**
 * Every node is the production driver (src/node/raft-node.ts) on an in-memory disk
 * (MemoryRaftStorage, which writes synchronously), with a simulated network and
 * application. Each call on a node is one node action: the driver runs the core call,
 * then its whole ready loop (late writes of the send-before-persist mutant → persist →
 * send → apply → advance → compact if due), and the harness checks the invariants
 * that concern this node. The harness ticks each node itself (a lagging clock misses
 * ticks), so the drivers' tickers are never started.
 */

export interface ClusterOptions {
  /** false is the send-before-persist mutant (the driver's unsafe sendBeforePersist): a ready is written only at the node's next action. */
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
  driver: RaftNode | null = null;
  app = new Application();
  /** The node's current term as of its last ready (the observer term the checker needs). */
  term = 0;
  /** While the driver is built: a snapshot it restores is the one the node restarts from. */
  starting = false;
  /**
   * A paused process (a long GC or VM pause) neither ticks nor handles messages or
   * clients until this tick; it resumes with its state as it was.
   */
  pausedUntilTick = 0;

  constructor(
    readonly id: NodeId,
    readonly config: RaftConfig,
    readonly storage: MemoryRaftStorage,
  ) {}

  get live(): boolean {
    return this.driver !== null;
  }

  responsive(nowTick: number): boolean {
    return this.driver !== null && nowTick >= this.pausedUntilTick;
  }
}

const silent = pino({ level: 'silent' });

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
    const node = new SimNode(config.id, config, new MemoryRaftStorage(initial));
    this.nodes.set(config.id, node);
    this.start(config.id);
  }

  /** Starts (or restarts) a node from what its disk holds. */
  start(id: NodeId): void {
    const node = this.node(id);
    if (node.live) throw new Error(`node ${id} is already running`);
    const initial = node.storage.initialState();
    node.app = new Application();
    node.term = initial.hardState.term;
    node.pausedUntilTick = 0;
    this.checker.loadLog(id, initial.snapshot?.meta ?? null, initial.entries);
    this.trace.add(`start ${id} term${initial.hardState.term} commit${initial.hardState.commit} snap${initial.applied} last${node.storage.lastIndex()}`);
    node.starting = true;
    const driver = this.core(id, () => this.driver(node, initial));
    node.starting = false;
    this.checker.restartApplication(id, node.app.appliedIndex, node.app.chain);
    node.driver = driver;
    this.core(id, () => driver.drain());
  }

  /** The process dies: the driver and everything not written vanish; in-flight messages from it may still arrive. */
  crash(id: NodeId): void {
    const node = this.node(id);
    const lost = node.driver?.unwrittenReadies ?? 0;
    node.driver = null;
    node.storage.crash();
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
      else this.act(node, (driver) => driver.tick());
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
    const refused = this.onCore(node, (raft) => raft.step(m));
    if (refused === null) return;
    this.trace.add(`refused(${refused}) ${describe(m)}`);
    // Every message here comes from a correct core: only the stranger rule may set one aside.
    if (refused !== 'stranger') throw new InvariantViolation('core assertion', `node ${m.to} refused a correct message as ${refused}: ${describe(m)}`);
    this.counters.strangersRefused += 1;
  }

  propose(id: NodeId, data: Uint8Array): ProposeResult | null {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.onCore(node, (raft) => raft.propose(data)) : null;
  }

  proposeConfChange(id: NodeId, change: ConfChange): ProposeResult | null {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.onCore(node, (raft) => raft.proposeConfChange(change)) : null;
  }

  readIndex(id: NodeId, ctx: string): boolean {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.onCore(node, (raft) => raft.readIndex(ctx)) : false;
  }

  transferLeadership(id: NodeId, to: NodeId): boolean {
    const node = this.node(id);
    return node.responsive(this.nowTick) ? this.onCore(node, (raft) => raft.transferLeadership(to)) : false;
  }

  status(id: NodeId): RaftStatus | null {
    const driver = this.node(id).driver;
    return driver ? this.core(id, () => driver.status()) : null;
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

  // ------------------------------------------------------------------ the driver and what it drives

  private driver(node: SimNode, initial: InitialState): RaftNode {
    return new RaftNode({
      raft: node.config,
      initial,
      store: node.storage,
      link: {
        send: (_to, frame) => {
          if (frame.k === 'raft') this.send(frame.m);
          return true;
        },
      },
      app: this.application(node),
      logger: silent,
      clock: new ManualClock(),
      tickMs: 1,
      compactEveryEntries: this.options.compactEveryEntries,
      requestTimeoutMs: 1000,
      observer: {
        ready: (rd) => this.onReady(node, rd),
        readReleased: (ctx, index) => this.serveRead(node, ctx, index),
        compacted: (snap) => this.onCompacted(node, snap),
      },
      onFatal: (err) => {
        throw err;
      },
      unsafe: { sendBeforePersist: !this.options.persistBeforeSend },
    });
  }

  /** The simulated application behind the driver's Application interface, checked at every entry. */
  private application(node: SimNode): DriverApplication {
    return {
      apply: (index, data, term) => this.applyEntry(node, { type: 'normal', index, term, data }),
      applyNoop: (e) => void this.applyEntry(node, e),
      applyConfChange: (e) => void this.applyEntry(node, e),
      snapshot: () => node.app.snapshotData(),
      restore: (snap) => (node.starting ? node.app.restore(snap) : this.applySnapshot(node, snap)),
    };
  }

  /** One action on a live node through its driver, then the checks that concern the node. */
  private act<T>(node: SimNode, call: (driver: RaftNode) => T): T {
    const driver = node.driver;
    if (!driver) throw new Error(`node ${node.id} is down (harness bug)`);
    const result = this.core(node.id, () => call(driver));
    const s = this.core(node.id, () => driver.status());
    this.checker.observeRole(node.id, s.role, s.term);
    this.checker.checkLastIndex(node.id, s.lastIndex);
    this.hooks.onStatus(s);
    return result;
  }

  /** A call on the node's core, through its driver (which then runs its ready loop). */
  private onCore<T>(node: SimNode, call: (raft: Raft) => T): T {
    return this.act(node, (driver) => driver.withCore(call));
  }

  /** Each ready as the core hands it out: the core's log (persisted or not) now holds its snapshot and entries. */
  private onReady(node: SimNode, rd: Ready): void {
    if (rd.hardState) node.term = rd.hardState.term;
    if (rd.snapshot) this.checker.installSnapshot(node.id, rd.snapshot.meta.index, rd.snapshot.meta.term);
    this.checker.appendEntries(node.id, rd.entries);
  }

  private send(m: Message): void {
    const copies = this.network.send(m, this.nowTick);
    if (copies === 0) this.trace.add(`drop(send) ${describe(m)}`);
    else if (copies === 2) this.trace.add(`duplicate ${describe(m)}`);
  }

  private applySnapshot(node: SimNode, snap: Snapshot): void {
    try {
      node.app.restore(snap);
    } catch (err) {
      throw new InvariantViolation('state machine safety', `node ${node.id} could not load snapshot ${snap.meta.index}: ${(err as Error).message}`);
    }
    this.trace.add(`apply-snapshot ${node.id} s${snap.meta.index}/${snap.meta.term} voters=${snap.meta.conf.voters.join(',')} learners=${snap.meta.conf.learners.join(',')}`);
    this.checker.applySnapshot(node.id, snap.meta.index, snap.meta.term, node.app.chain);
    this.counters.snapshotsInstalled += 1;
  }

  private applyEntry(node: SimNode, e: Entry): ApplyOutcome {
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
    return outcome;
  }

  private serveRead(node: SimNode, ctx: string, index: number): void {
    this.trace.add(`read-served ${node.id} ${ctx} i${index} applied${node.app.appliedIndex}`);
    this.checker.readServed(node.id, ctx, index);
    this.hooks.onReadServed(node.id, ctx, index);
  }

  private onCompacted(node: SimNode, snap: Snapshot): void {
    const applied = node.app.appliedIndex;
    if (snap.meta.index !== applied) {
      throw new InvariantViolation('ready contract', `node ${node.id} compacted at ${snap.meta.index} but its application applied ${applied}`);
    }
    this.checker.compactLog(node.id, snap.meta.index);
    this.counters.compactions += 1;
    this.trace.add(`compact ${node.id} s${snap.meta.index}/${snap.meta.term} bytes${snap.data.length}`);
  }

  /** Calls into a node's driver and core; whatever they throw is a broken invariant of the core. */
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
