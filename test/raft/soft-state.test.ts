// Ready.softState: the driver learns of a new leader or role from the Ready itself, so
// it need not poll status(). Driven here by hand, without a driver, to see every Ready.
import t from 'tap';
import { Raft } from '../../raft/raft.js';
import type { Message, NodeId, RaftConfig, Ready, SoftState } from '../../raft/types.js';

function config(id: NodeId): RaftConfig {
  return {
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    random: () => 0,
    preVote: true,
    checkQuorum: true,
    maxSizePerMsgBytes: 1 << 20,
    maxInflightMsgs: 16,
    maxInflightBytes: 0,
    maxUncommittedBytes: 0,
    snapshotChunkBytes: 1 << 16,
  };
}

/** Three cores on a lossless network; persisting is instant. Records every Ready's softState. */
class Nodes {
  readonly cores = new Map<NodeId, Raft>();
  readonly soft = new Map<NodeId, Array<SoftState | null>>();
  private readonly inbox: Message[] = [];

  constructor(ids: NodeId[]) {
    for (const id of ids) {
      this.cores.set(id, new Raft(config(id), Raft.bootstrap(ids)));
      this.soft.set(id, []);
    }
  }

  core(id: NodeId): Raft {
    const r = this.cores.get(id);
    if (!r) throw new Error(`no node ${id}`);
    return r;
  }

  /** Drains every node's Ready and delivers messages until nothing moves. */
  settle(): void {
    for (let moved = true; moved; ) {
      moved = false;
      for (const [id, raft] of this.cores) {
        while (raft.hasReady()) {
          const rd: Ready = raft.ready();
          this.soft.get(id)?.push(rd.softState);
          this.inbox.push(...rd.messages);
          raft.advance(rd);
          moved = true;
        }
      }
      for (const m of this.inbox.splice(0)) {
        this.core(m.to).step(m);
        moved = true;
      }
    }
  }

  /** The softStates the node's Readies carried since the last call, nulls left out. */
  changes(id: NodeId): SoftState[] {
    const all = this.soft.get(id) ?? [];
    const out = all.filter((s): s is SoftState => s !== null);
    all.length = 0;
    return out;
  }
}

t.test('the first Ready of a node carries its soft state, later ones only when leader or role changed', async (t) => {
  const n = new Nodes(['n1', 'n2', 'n3']);
  t.ok(n.core('n1').hasReady(), 'a node just built has a Ready: its soft state');
  n.settle();
  for (const id of ['n1', 'n2', 'n3']) t.same(n.changes(id), [{ leader: null, role: 'follower' }], `${id}: the first Ready`);
  t.notOk(n.core('n1').hasReady(), 'nothing changed since');

  for (let i = 0; i < 10; i++) n.core('n1').tick();
  n.settle();
  t.same(
    n.changes('n1'),
    [
      { leader: null, role: 'preCandidate' },
      { leader: null, role: 'candidate' },
      { leader: 'n1', role: 'leader' },
    ],
    'n1: pre-candidate, candidate, leader: one Ready each (each sends its messages)',
  );
  t.same(n.changes('n2'), [{ leader: 'n1', role: 'follower' }], 'n2 learns the leader from the Ready');
  t.same(n.changes('n3'), [{ leader: 'n1', role: 'follower' }], 'n3 too');

  n.core('n1').tick();
  n.settle();
  t.same(n.changes('n1'), [], 'heartbeats change no soft state');
  t.same(n.changes('n2'), []);
});

t.test('a leader stepping down alone (check-quorum) has a Ready for it, though nothing else changed', async (t) => {
  const n = new Nodes(['n1', 'n2', 'n3']);
  n.settle();
  for (let i = 0; i < 10; i++) n.core('n1').tick();
  n.settle();
  n.changes('n1');
  // Cut n1 off: tick it through two election timeouts and throw its messages away.
  const n1 = n.core('n1');
  let stepDown: SoftState | null = null;
  for (let i = 0; i < 20 && stepDown === null; i++) {
    n1.tick();
    while (n1.hasReady()) {
      const rd = n1.ready();
      if (rd.softState) stepDown = rd.softState;
      n1.advance(rd);
    }
  }
  t.same(stepDown, { leader: null, role: 'follower' }, 'the step-down comes in a Ready');
  t.equal(n1.status().role, 'follower', 'status() agrees');
  t.notOk(n1.hasReady(), 'and is reported once');
});

t.test('a restarted node reports its soft state again in its first Ready', async (t) => {
  const n = new Nodes(['n1', 'n2', 'n3']);
  n.settle();
  for (let i = 0; i < 10; i++) n.core('n1').tick();
  n.settle();
  t.equal(n.core('n2').status().leader, 'n1');
  // What n2 has persisted: its term and vote, and the log (all committed and applied here).
  const st = n.core('n2').status();
  const entries = Array.from({ length: st.lastIndex }, (_, i) => i + 1).map((index) =>
    index <= 3 ? { type: 'confChange' as const, term: 1, index, change: { type: 'addVoter' as const, node: `n${index}` } } : { type: 'normal' as const, term: 2, index, data: new Uint8Array(0) },
  );
  const restarted = new Raft(config('n2'), { hardState: { term: st.term, vote: st.vote, commit: st.commit }, snapshot: null, entries, applied: st.applied });
  t.ok(restarted.hasReady(), 'nothing to persist or apply, yet a Ready: the soft state');
  const rd = restarted.ready();
  t.same(rd.softState, { leader: null, role: 'follower' }, 'it knows no leader until it hears from one');
  t.same([rd.hardState, rd.entries, rd.committedEntries, rd.messages], [null, [], [], []], 'and nothing else');
  restarted.advance(rd);
  t.notOk(restarted.hasReady());
});
