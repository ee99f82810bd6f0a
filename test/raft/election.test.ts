import t from 'tap';
import { Cluster } from './cluster.js';

t.test('a node campaigns after its election timeout, wins with pre-vote then vote, and replicates a no-op', async (t) => {
  const c = new Cluster(['n1', 'n2', 'n3']);
  c.campaign('n1');
  const n1 = c.node('n1').raft.status();
  t.equal(n1.role, 'leader');
  t.equal(n1.term, 2, 'one term increment: the pre-vote changed no term');
  const kinds = c.sent.map((m) => `${m.type} ${m.from}>${m.to} t${m.term}`);
  t.same(kinds.slice(0, 4), ['preVote n1>n2 t2', 'preVote n1>n3 t2', 'preVoteResp n2>n1 t2', 'preVoteResp n3>n1 t2']);
  t.same(kinds.slice(4, 8), ['vote n1>n2 t2', 'vote n1>n3 t2', 'voteResp n2>n1 t2', 'voteResp n3>n1 t2']);
  for (const id of ['n1', 'n2', 'n3']) {
    t.same(c.logTerms(id), [1, 1, 1, 2], `${id}: the bootstrap entries and the no-op of term 2`);
    t.equal(c.node(id).raft.status().commit, 4, `${id} committed the no-op`);
  }
});

t.test('a proposal on the leader commits on all nodes and is applied once', async (t) => {
  const c = new Cluster(['n1', 'n2', 'n3']);
  c.campaign('n1');
  const r = c.propose('n1', 'x=1');
  t.match(r, { ok: true, index: 5, term: 2 });
  c.tick('n1'); // heartbeat carries the commit index to followers
  for (const id of ['n1', 'n2', 'n3']) t.same(c.node(id).applied, [{ index: 5, term: 2, text: 'x=1' }], id);
  t.match(c.node('n2').raft.propose(new Uint8Array([1])), { ok: false, reason: 'notLeader', leader: 'n1' });
});
