// A scripted cluster for scenario tests, in the style of etcd-io/raft's test
// `network`: every message is delivered in order, synchronously, unless the script
// drops it or cuts a link. Each node persists its ready into an in-memory "disk"
// before sending, applies committed entries, then advances.
import { Raft } from '../../raft/raft.js';
import type { Entry, InitialState, Message, NodeId, RaftConfig, Ready, Snapshot } from '../../raft/types.js';

export interface Disk {
  hardState: InitialState['hardState'];
  snapshot: Snapshot | null;
  entries: Entry[];
}

export interface SimNode {
  id: NodeId;
  raft: Raft;
  disk: Disk;
  /** The application: every applied normal entry's data as text, with its index. */
  applied: Array<{ index: number; term: number; text: string }>;
  readStates: Array<{ ctx: string; index: number }>;
}

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

function persist(disk: Disk, rd: Ready): void {
  if (rd.hardState) disk.hardState = { ...rd.hardState };
  if (rd.snapshot) {
    const snapIndex = rd.snapshot.meta.index;
    disk.snapshot = rd.snapshot;
    // An installed snapshot replaces the whole stored log.
    void snapIndex;
    disk.entries = [];
  }
  const first = rd.entries[0];
  if (first) {
    disk.entries = disk.entries.filter((e) => e.index < first.index).concat(rd.entries);
  }
}

export class Cluster {
  readonly nodes = new Map<NodeId, SimNode>();
  /** Every message sent, in order, for assertions on exact contents. */
  readonly sent: Message[] = [];
  private readonly cut = new Set<string>();
  private dropFilter: ((m: Message) => boolean) | null = null;

  constructor(voters: NodeId[], overrides: (id: NodeId) => Partial<RaftConfig> = () => ({})) {
    const boot = Raft.bootstrap(voters);
    for (const id of voters) this.add(id, structuredClone(boot), overrides(id));
    for (const id of voters) this.process(id);
  }

  /** Adds a node with the given persisted state (a joining node starts from Raft.empty()). */
  add(id: NodeId, initial: InitialState = Raft.empty(), overrides: Partial<RaftConfig> = {}): SimNode {
    const node: SimNode = {
      id,
      raft: new Raft(config(id, overrides), initial),
      disk: { hardState: initial.hardState, snapshot: initial.snapshot, entries: initial.entries.slice() },
      applied: [],
      readStates: [],
    };
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
    const initial: InitialState = { hardState: old.disk.hardState, snapshot: old.disk.snapshot, entries: old.disk.entries.slice(), applied: old.disk.snapshot?.meta.index ?? 0 };
    this.nodes.delete(id);
    return this.add(id, structuredClone(initial), overrides);
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

  heal(): void {
    this.cut.clear();
    this.dropFilter = null;
  }

  /** Drops every message for which `filter` is true until heal(). */
  drop(filter: (m: Message) => boolean): void {
    this.dropFilter = filter;
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      this.node(id).raft.tick();
      this.settle();
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
    this.nodes.get(m.to)?.raft.step(m);
  }

  private process(id: NodeId): Message[] {
    const node = this.node(id);
    const out: Message[] = [];
    while (node.raft.hasReady()) {
      const rd = node.raft.ready();
      persist(node.disk, rd);
      out.push(...rd.messages);
      this.sent.push(...rd.messages);
      if (rd.snapshot) {
        node.applied = JSON.parse(untext(rd.snapshot.data)) as SimNode['applied'];
      }
      for (const e of rd.committedEntries) {
        if (e.type === 'normal' && e.data.length > 0) node.applied.push({ index: e.index, term: e.term, text: untext(e.data) });
      }
      node.readStates.push(...rd.readStates);
      node.raft.advance(rd);
    }
    return out;
  }

  /** Application snapshot + log compaction on `id`. */
  compact(id: NodeId): Snapshot {
    const node = this.node(id);
    const snap = node.raft.compact(text(JSON.stringify(node.applied)));
    node.disk.snapshot = snap;
    node.disk.entries = node.disk.entries.filter((e) => e.index > snap.meta.index);
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
}
