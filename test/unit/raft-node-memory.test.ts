// The Raft driver on simulated time and in-memory disks: writes that take time to be
// durable (the driver's asynchronous path), a crash that loses them, forwarding and its
// failure on a leader change, request timeouts, and the unsafe send-before-persist knob.
import t from 'tap';
import { pino } from 'pino';
import { Raft } from '../../raft/raft.js';
import type { Entry, NodeId, Snapshot } from '../../raft/types.js';
import { ProposalLostError, ProposalTimeoutError } from '../../src/node/errors.js';
import type { PeerFrame } from '../../src/node/frames.js';
import { RaftNode, type Application, type RaftNodeOptions } from '../../src/node/raft-node.js';
import { MemoryRaftStorage } from '../../src/storage/memory-storage.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { advance, advanceUntil, flush } from './manual-time.js';

const logger = pino({ level: 'silent' });
const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
const entry = (index: number, term: number): Entry => ({ type: 'normal', index, term, data: encode(`e${index}`) });

class ListApp implements Application {
  items: string[] = [];
  apply(_index: number, data: Uint8Array): unknown {
    this.items.push(new TextDecoder().decode(data));
    return this.items.length;
  }
  applyConfChange(): void {}
  snapshot(): Uint8Array {
    return encode(JSON.stringify(this.items));
  }
  restore(s: Snapshot): void {
    this.items = JSON.parse(new TextDecoder().decode(s.data)) as string[];
  }
}

/** Nodes on one ManualClock, linked with 1 ms of latency; a node in `down` neither sends nor receives. */
class SimCluster {
  readonly clock = new ManualClock();
  readonly nodes = new Map<NodeId, { node: RaftNode; storage: MemoryRaftStorage; app: ListApp }>();
  readonly down = new Set<NodeId>();

  constructor(
    readonly ids: NodeId[],
    private readonly options: Partial<RaftNodeOptions> = {},
  ) {
    const boot = Raft.bootstrap(ids);
    for (const id of ids) this.start(id, new MemoryRaftStorage(structuredClone(boot), { clock: this.clock, syncDelayMs: 2 }));
  }

  start(id: NodeId, storage: MemoryRaftStorage): RaftNode {
    const app = new ListApp();
    const node = new RaftNode({
      // Timeouts differ by node and n1's is shortest, so no election is left to chance.
      raft: { id, electionTicks: 10, heartbeatTicks: 1, random: () => this.ids.indexOf(id) / this.ids.length, preVote: true, checkQuorum: true, maxSizePerMsgBytes: 1 << 20, maxInflightMsgs: 64, maxInflightBytes: 0, maxUncommittedBytes: 0, snapshotChunkBytes: 1 << 16 },
      initial: storage.initialState(),
      store: storage,
      link: { send: (to, frame) => this.send(id, to, frame) },
      app,
      logger,
      clock: this.clock,
      tickMs: 10,
      compactEveryEntries: 20,
      requestTimeoutMs: 60_000,
      ...this.options,
    });
    this.nodes.set(id, { node, storage, app });
    node.start();
    return node;
  }

  get(id: NodeId): { node: RaftNode; storage: MemoryRaftStorage; app: ListApp } {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** The process dies: its timers stop (stop() is how a test drops them) and unsynced writes are lost. */
  async crash(id: NodeId): Promise<MemoryRaftStorage> {
    const { node, storage } = this.get(id);
    this.down.add(id);
    storage.crash();
    void node.stop().catch(() => undefined);
    await flush();
    return storage;
  }

  /** Stops every live node; a stop waits for the write in flight, so simulated time must move meanwhile. */
  async stopAll(): Promise<void> {
    let stopped = false;
    void Promise.all(this.ids.filter((id) => !this.down.has(id)).map((id) => this.get(id).node.stop())).then(() => (stopped = true));
    await advanceUntil(this.clock, 'the nodes to stop', () => (stopped ? true : undefined));
  }

  leader(): NodeId | undefined {
    return this.ids.find((id) => !this.down.has(id) && this.get(id).node.status().role === 'leader');
  }

  private send(from: NodeId, to: NodeId, frame: PeerFrame): boolean {
    if (this.down.has(from) || this.down.has(to)) return true;
    const copy = structuredClone(frame);
    this.clock.after(1, () => {
      if (!this.down.has(from) && !this.down.has(to)) this.get(to).node.receive(from, copy);
    });
    return true;
  }
}

t.test('a write is durable only after its delay; a crash loses what is not, in order', async (t) => {
  const clock = new ManualClock();
  const storage = new MemoryRaftStorage(undefined, { clock, syncDelayMs: 5 });
  let firstDone = false;
  void (storage.save({ hardState: { term: 1, vote: 'n1', commit: 0 }, snapshot: null, entries: [entry(1, 1)] }) as Promise<void>).then(() => {
    firstDone = true;
  });
  await clock.advance(5);
  t.ok(firstDone, 'the first write completed after its delay');
  t.same(storage.durable.entries.map((e) => e.index), [1], 'and is durable');

  void storage.save({ hardState: null, snapshot: null, entries: [entry(2, 1), entry(3, 1)] });
  t.equal(storage.unsynced, 1, 'the second is not durable yet');
  t.throws(() => storage.save({ hardState: null, snapshot: null, entries: [entry(5, 1)] }), /do not fit/, 'a write that leaves a gap is refused at once');
  storage.crash();
  t.equal(storage.lostWrites, 1, 'the crash lost the unsynced write');
  t.same(storage.initialState().entries.map((e) => e.index), [1], 'a restart sees only the durable log');
  t.same(storage.hardState, { term: 1, vote: 'n1', commit: 0 });
  await clock.advance(10);
  t.same(storage.durable.entries.map((e) => e.index), [1], 'the lost write never lands later');

  void storage.save({ hardState: null, snapshot: null, entries: [entry(2, 2)] });
  void storage.saveSnapshot({ meta: { index: 1, term: 1, conf: { voters: ['n1'], learners: [] } }, data: encode('s') });
  storage.sync();
  t.same([storage.snapshotIndex(), storage.lastIndex()], [1, 2], 'sync() completes pending writes in order');
});

t.test('three drivers on simulated time and disks that take time: proposals, forwarding, reads, compaction, crash and restart', async (t) => {
  const c = new SimCluster(['n1', 'n2', 'n3']);
  const leaderId = await advanceUntil(c.clock, 'a leader', () => c.leader());
  t.equal(leaderId, 'n1');
  const leader = c.get('n1');
  const follower = c.get('n2');

  const viaLeader = leader.node.propose(encode('a'));
  const viaFollower = follower.node.propose(encode('b'));
  await advance(c.clock, 100, 5);
  t.equal(await viaLeader, 1, 'the leader settles its own proposal with the result');
  t.equal(await viaFollower, 2, 'a follower forwards and gets the result');
  for (let i = 0; i < 25; i++) {
    const p = leader.node.propose(encode(`x${i}`));
    await advance(c.clock, 20, 5);
    await p;
  }
  t.ok(leader.node.compactions >= 1, `the leader compacted its log (${leader.node.compactions})`);
  const read = follower.node.readBarrier();
  await advance(c.clock, 50, 5);
  await read;
  t.equal(follower.app.items.length, 27, 'after a read barrier the follower has applied every acknowledged write');

  const storage = await c.crash('n3');
  const p = leader.node.propose(encode('while away'));
  await advance(c.clock, 50, 5);
  await p;
  c.down.delete('n3');
  c.start('n3', storage);
  await advanceUntil(c.clock, 'n3 to catch up', () => (c.get('n3').app.items.length === 28 ? true : undefined));
  t.same(c.get('n3').app.items, leader.app.items, 'the restarted node applied the same sequence');
  await c.stopAll();
});

t.test('a proposal forwarded to a leader that loses its leadership fails as lost, not by timeout', async (t) => {
  const c = new SimCluster(['n1', 'n2', 'n3']);
  await advanceUntil(c.clock, 'a leader', () => c.leader());
  // n1 is cut off: the proposal n2 forwards to it gets no answer.
  c.down.add('n1');
  let outcome: unknown = null;
  c.get('n2')
    .node.propose(encode('orphan'))
    .then(
      () => (outcome = 'resolved'),
      (err: unknown) => (outcome = err),
    );
  const newLeader = await advanceUntil(c.clock, 'a new leader', () => c.leader(), 10_000);
  await advanceUntil(c.clock, 'the proposal to settle', () => (outcome === null ? undefined : true), 1_000);
  t.not(newLeader, 'n1');
  t.ok(outcome instanceof ProposalLostError, `rejected as lost when the leader changed (${String(outcome)})`);
  t.ok(c.clock.monotonic() < 60_000, 'long before the request timeout');
  await c.stopAll();
});

t.test('a proposal without a quorum times out on the injected clock', async (t) => {
  const c = new SimCluster(['n1', 'n2', 'n3'], { requestTimeoutMs: 3_000 });
  await advanceUntil(c.clock, 'a leader', () => c.leader());
  c.down.add('n2');
  c.down.add('n3');
  let outcome: unknown = null;
  c.get('n1')
    .node.propose(encode('no quorum'))
    .then(
      () => (outcome = 'resolved'),
      (err: unknown) => (outcome = err),
    );
  await advance(c.clock, 2_900, 100);
  t.equal(outcome, null, 'still pending before the timeout');
  await advance(c.clock, 200, 100);
  t.ok(outcome instanceof ProposalTimeoutError, `rejected by the timeout (${String(outcome)})`);
  await c.stopAll();
});

t.test('the unsafe sendBeforePersist knob writes a ready only at the next pass of the loop', async (t) => {
  const storage = new MemoryRaftStorage(Raft.bootstrap(['n1']));
  const node = new RaftNode({
    raft: { id: 'n1', electionTicks: 10, heartbeatTicks: 1, random: () => 0, preVote: true, checkQuorum: true, maxSizePerMsgBytes: 1 << 20, maxInflightMsgs: 64, maxInflightBytes: 0, maxUncommittedBytes: 0, snapshotChunkBytes: 1 << 16 },
    initial: storage.initialState(),
    store: storage,
    link: { send: () => true },
    app: new ListApp(),
    logger,
    clock: new ManualClock(),
    tickMs: 10,
    compactEveryEntries: 1000,
    requestTimeoutMs: 1000,
    unsafe: { sendBeforePersist: true },
  });
  for (let i = 0; i < 30 && node.status().role !== 'leader'; i++) node.tick();
  t.equal(node.status().role, 'leader');
  const r = node.withCore((core) => core.propose(encode('x')));
  t.ok(r.ok);
  t.ok(node.unwrittenReadies > 0, 'the ready that carried the entry is not written yet');
  t.ok(storage.lastIndex() < node.status().lastIndex, `the disk lags the core (${storage.lastIndex()} < ${node.status().lastIndex})`);
  node.drain();
  t.equal(storage.lastIndex(), node.status().lastIndex, 'the next pass writes it');
});

t.test('compactEveryBytes: the log is compacted once the entries since the snapshot carry that much data, whatever their count', async (t) => {
  const storage = new MemoryRaftStorage(Raft.bootstrap(['n1']));
  const node = new RaftNode({
    raft: { id: 'n1', electionTicks: 10, heartbeatTicks: 1, random: () => 0, preVote: true, checkQuorum: true, maxSizePerMsgBytes: 1 << 20, maxInflightMsgs: 64, maxInflightBytes: 0, maxUncommittedBytes: 0, snapshotChunkBytes: 1 << 16 },
    initial: storage.initialState(),
    store: storage,
    link: { send: () => true },
    app: new ListApp(),
    logger,
    clock: new ManualClock(),
    tickMs: 10,
    compactEveryEntries: 1000,
    compactEveryBytes: 1000,
    requestTimeoutMs: 1000,
  });
  for (let i = 0; i < 30 && node.status().role !== 'leader'; i++) node.tick();
  t.equal(node.status().role, 'leader');
  const propose = (bytes: number): void => {
    t.ok(node.withCore((core) => core.propose(encode('x'.repeat(bytes)))).ok);
    node.drain();
  };
  for (let i = 0; i < 3; i++) propose(300);
  t.equal(node.compactions, 0, '900 bytes in 3 entries: no compaction yet');
  propose(300);
  t.equal(node.compactions, 1, '1,200 bytes: compacted, 4 entries after the last snapshot');
  propose(300);
  t.equal(node.compactions, 1, 'the count starts over with the snapshot');
});
