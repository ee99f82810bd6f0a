// A scripted cluster for scenario tests, in the style of etcd-io/raft's test
// `network`: every message is delivered in order, synchronously, unless the script
// drops it or cuts a link. Each node is the production driver (src/node/raft-node.ts)
// on an in-memory disk (MemoryRaftStorage): it persists its ready before sending,
// applies committed entries, then advances. The script steps each core directly and
// lets the driver run its loop when the cluster settles.
import { pino } from 'pino';
import { Raft } from '../../raft/raft.js';
import type { ConfChange, ConfState, Entry, InitialState, Message, NodeId, RaftConfig, Snapshot, StepRefusal } from '../../raft/types.js';
import { RaftNode, type Application } from '../../src/node/raft-node.js';
import { MemoryRaftStorage, type RaftDisk } from '../../src/storage/memory-storage.js';
import { ManualClock } from '../../src/util/manual-clock.js';

/** What a node's disk holds. */
export type Disk = RaftDisk;

export function config(id: NodeId, overrides: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    // Deterministic: every node draws the same "random" election timeout unless a test says otherwise.
    random: () => 0,
    preVote: true,
    checkQuorum: true,
    maxSizePerMsgBytes: 1024 * 1024,
    maxInflightMsgs: 256,
    maxInflightBytes: 0,
    maxUncommittedBytes: 0,
    snapshotChunkBytes: 1024,
    ...overrides,
  };
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const untext = (b: Uint8Array): string => new TextDecoder().decode(b);
const silent = pino({ level: 'silent' });

export class SimNode implements Application {
  /** The node's core, stepped directly by the script; its driver runs the ready loop at settle(). */
  readonly raft: Raft;
  readonly driver: RaftNode;
  /** The application: every applied normal entry's data as text, with its index. */
  applied: Array<{ index: number; term: number; text: string }> = [];
  readStates: Array<{ ctx: string; index: number }> = [];
  /** Messages the driver sent since the node's last turn in settle(). */
  readonly outbox: Message[] = [];

  constructor(
    readonly id: NodeId,
    readonly disk: MemoryRaftStorage,
    raft: RaftConfig,
    initial: InitialState,
  ) {
    this.driver = new RaftNode({
      raft,
      initial,
      store: disk,
      link: {
        send: (_to, frame) => {
          if (frame.k === 'raft') this.outbox.push(frame.m);
          return true;
        },
      },
      app: this,
      logger: silent,
      clock: new ManualClock(),
      tickMs: 1,
      // The script compacts when it says so (Cluster.compact()).
      compactEveryEntries: Infinity,
      requestTimeoutMs: 1000,
      observer: { ready: (rd) => this.readStates.push(...rd.readStates) },
      onFatal: (err) => {
        throw err;
      },
    });
    this.raft = this.driver.withCore((core) => core);
  }

  apply(index: number, data: Uint8Array, term: number): void {
    this.applied.push({ index, term, text: untext(data) });
  }

  applyConfChange(): void {}

  snapshot(): Uint8Array {
    return text(JSON.stringify(this.applied));
  }

  restore(snap: Snapshot): void {
    // Scripts may start a node from a snapshot with no application state in it.
    this.applied = snap.data.length === 0 ? [] : (JSON.parse(untext(snap.data)) as SimNode['applied']);
  }
}

export class Cluster {
  readonly nodes = new Map<NodeId, SimNode>();
  /** Every message sent, in order, for assertions on exact contents. */
  readonly sent: Message[] = [];
  /** Every delivered message a core refused, as `reason: describe(m)`. */
  readonly refused: string[] = [];
  private readonly cut = new Set<string>();
  private dropFilter: ((m: Message) => boolean) | null = null;
  private holdFilter: ((m: Message) => boolean) | null = null;
  private readonly held: Message[] = [];

  /**
   * `voters`: a fresh cluster bootstrapped with these voters. Or, for scenarios that
   * start from a given history (the Raft paper's figures), each node's persisted state.
   */
  constructor(voters: NodeId[] | Record<NodeId, InitialState>, overrides: (id: NodeId) => Partial<RaftConfig> = () => ({})) {
    const initial: Record<NodeId, InitialState> = {};
    if (Array.isArray(voters)) {
      const boot = Raft.bootstrap(voters);
      for (const id of voters) initial[id] = structuredClone(boot);
    } else {
      Object.assign(initial, voters);
    }
    const ids = Object.keys(initial).sort();
    for (const id of ids) this.add(id, structuredClone(initial[id] as InitialState), overrides(id));
    for (const id of ids) this.process(id);
  }

  /** Adds a node with the given persisted state (a joining node starts from Raft.empty()). */
  add(id: NodeId, initial: InitialState = Raft.empty(), overrides: Partial<RaftConfig> = {}): SimNode {
    const node = new SimNode(id, new MemoryRaftStorage(initial), config(id, overrides), initial);
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Crash and restart from the disk: the application state is rebuilt from the log. */
  restart(id: NodeId, overrides: Partial<RaftConfig> = {}): SimNode {
    const old = this.node(id);
    old.disk.crash();
    this.nodes.delete(id);
    return this.add(id, structuredClone(old.disk.initialState()), overrides);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other !== id) {
        this.cut.add(`${id}>${other}`);
        this.cut.add(`${other}>${id}`);
      }
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Cuts every link between nodes of different groups (nodes in no group keep their links). */
  partition(...groups: NodeId[][]): void {
    for (const [i, a] of groups.entries()) {
      for (const [j, b] of groups.entries()) {
        if (i === j) continue;
        for (const from of a) for (const to of b) this.cut.add(`${from}>${to}`);
      }
    }
  }

  /** Restores every link of `id` (the drop filter stays). */
  reconnect(id: NodeId): void {
    for (const link of [...this.cut]) {
      const [from, to] = link.split('>');
      if (from === id || to === id) this.cut.delete(link);
    }
  }

  heal(): void {
    this.cut.clear();
    this.dropFilter = null;
  }

  /** Drops every message for which `filter` is true until heal(). */
  drop(filter: (m: Message) => boolean): void {
    this.dropFilter = filter;
  }

  /** Delays (rather than loses) every message for which `filter` is true, until release(). */
  hold(filter: (m: Message) => boolean): void {
    this.holdFilter = filter;
  }

  /** Stops holding messages back and delivers the held ones, in the order they were sent. */
  release(): void {
    this.holdFilter = null;
    const held = this.held.splice(0);
    for (const m of held) this.deliver(m);
    this.settle();
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.node(id).raft.tick();
      this.settle();
    }
  }

  /** Ticks every node once per round (in id order), as time passing for the whole cluster. */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of [...this.nodes.keys()].sort()) {
        this.node(id).raft.tick();
        this.settle();
      }
    }
  }

  /** Ticks `id` until it campaigns (its randomized election timeout is 2 × electionTicks at most). */
  campaign(id: NodeId): void {
    const raft = this.node(id).raft;
    for (let i = 0; i < 40 && raft.status().role === 'follower'; i++) this.tick(id);
  }

  propose(id: NodeId, s: string) {
    const r = this.node(id).raft.propose(text(s));
    this.settle();
    return r;
  }

  proposeConfChange(id: NodeId, change: ConfChange) {
    const r = this.node(id).raft.proposeConfChange(change);
    this.settle();
    return r;
  }

  readIndex(id: NodeId, ctx: string): boolean {
    const ok = this.node(id).raft.readIndex(ctx);
    this.settle();
    return ok;
  }

  /**
   * Hands `m` to its receiver as if it came off the wire (whatever the links), then
   * settles: what a forger or a broken peer could send. Returns the core's refusal.
   */
  inject(m: Message): StepRefusal | null {
    const refused = this.node(m.to).raft.step(m);
    this.settle();
    return refused;
  }

  /** Runs every node's ready cycle and delivers messages until nothing moves. */
  settle(): void {
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const msgs: Message[] = [];
      for (const id of [...this.nodes.keys()].sort()) msgs.push(...this.process(id));
      if (msgs.length === 0) return;
      for (const m of msgs) this.deliver(m);
    }
    throw new Error('cluster did not settle within 10,000 rounds');
  }

  private deliver(m: Message): void {
    if (this.cut.has(`${m.from}>${m.to}`) || this.dropFilter?.(m)) return;
    if (this.holdFilter?.(m)) {
      this.held.push(m);
      return;
    }
    const refused = this.nodes.get(m.to)?.raft.step(m) ?? null;
    if (refused !== null) this.refused.push(`${refused}: ${describe(m)}`);
  }

  /** Runs `id`'s driver loop (persist → send → apply → advance) and returns what it sent. */
  private process(id: NodeId): Message[] {
    this.node(id).driver.drain();
    const out = this.node(id).outbox.splice(0);
    this.sent.push(...out);
    return out;
  }

  /** Application snapshot + log compaction on `id`. */
  compact(id: NodeId): Snapshot {
    const node = this.node(id);
    const snap = node.raft.compact(text(JSON.stringify(node.applied)));
    void node.disk.saveSnapshot(snap);
    return snap;
  }

  leader(): SimNode | undefined {
    return [...this.nodes.values()].find((n) => n.raft.status().role === 'leader');
  }

  /** term of each entry in `id`'s log after its snapshot, for Figure 7 style assertions. */
  logTerms(id: NodeId): number[] {
    return this.node(id).disk.entries.map((e) => e.term);
  }

  clearSent(): void {
    this.sent.length = 0;
  }

  /** The messages sent so far (optionally only those `filter` keeps), one line each: see describe(). */
  conversation(filter: (m: Message) => boolean = () => true): string[] {
    return this.sent.filter(filter).map(describe);
  }
}

function describeConf(conf: ConfState): string {
  return conf.learners.length === 0 ? `(voters ${conf.voters.join(' ')})` : `(voters ${conf.voters.join(' ')}; learners ${conf.learners.join(' ')})`;
}

function describeEntry(e: Entry): string {
  if (e.type === 'confChange') return `${e.index}/${e.term}{${e.change.type} ${e.change.node}}`;
  return e.data.length === 0 ? `${e.index}/${e.term}` : `${e.index}/${e.term}"${untext(e.data)}"`;
}

/**
 * One line per message with every field, so a test can assert exact contents and still
 * read like a conversation. Entries are `index/term`, with their data in quotes (none:
 * a leader's no-op) or their membership change in braces; `prev i/t` is the append's
 * (index, logTerm); a rejection's `hint i/t` is its (rejectHint, logTerm).
 */
export function describe(m: Message): string {
  const head = `${m.type} ${m.from}>${m.to} t${m.term}`;
  switch (m.type) {
    case 'app':
      return `${head} prev ${m.index}/${m.logTerm} [${m.entries.map(describeEntry).join(' ')}] commit ${m.commit}`;
    case 'appResp':
      return m.reject ? `${head} reject ${m.index} hint ${m.rejectHint}/${m.logTerm}` : `${head} ok ${m.index}`;
    case 'vote':
    case 'preVote':
      return `${head} last ${m.index}/${m.logTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResp':
    case 'preVoteResp':
      return `${head} ${m.reject ? 'rejected' : 'granted'}`;
    case 'heartbeat':
      return `${head} commit ${m.commit}${m.ctx === null ? '' : ` ctx ${m.ctx}`}`;
    case 'heartbeatResp':
      return `${head}${m.ctx === null ? '' : ` ctx ${m.ctx}`}`;
    case 'snap':
      return `${head} snapshot ${m.meta.index}/${m.meta.term} ${describeConf(m.meta.conf)} offset ${m.offset} +${m.data.length} of ${m.totalBytes}`;
    case 'snapResp':
      return `${head} snapshot ${m.snapIndex}/${m.snapTerm} next ${m.nextOffset}`;
    case 'timeoutNow':
      return head;
    case 'readIndex':
      return `${head} ctx ${m.ctx}`;
    case 'readIndexResp':
      return `${head} ctx ${m.ctx} index ${m.index}`;
  }
}
