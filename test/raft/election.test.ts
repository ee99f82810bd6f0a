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

t.test("a leader's closed link (leaderUnreachable) lets the followers elect a new leader within 3 ticks, not an election timeout", async (t) => {
  const c = new Cluster(['n1', 'n2', 'n3']);
  c.campaign('n1');
  c.isolate('n1'); // its process died: nothing more from it
  c.node('n2').raft.leaderUnreachable('n1');
  c.node('n3').raft.leaderUnreachable('n1');
  let ticks = 0;
  while (ticks < 3 && !['n2', 'n3'].some((id) => c.node(id).raft.status().role === 'leader')) {
    c.tickAll();
    ticks++;
  }
  const leader = ['n2', 'n3'].find((id) => c.node(id).raft.status().role === 'leader');
  t.ok(leader, `a new leader after ${ticks} ticks (the election timeout is 10 to 20)`);
  t.equal(c.node(leader ?? 'n2').raft.status().term, 3);
});

t.test('leaderUnreachable on one follower alone deposes no healthy leader: the other still hears it and refuses the pre-vote', async (t) => {
  const c = new Cluster(['n1', 'n2', 'n3']);
  c.campaign('n1');
  c.clearSent();
  c.cutLink('n1', 'n2');
  c.cutLink('n2', 'n1');
  c.node('n2').raft.leaderUnreachable('n1');
  // n1 heartbeats every tick; n3 hears every one.
  for (let i = 0; i < 5; i++) c.tickAll();
  t.equal(c.node('n1').raft.status().role, 'leader');
  t.equal(c.node('n1').raft.status().term, 2, 'no new term');
  t.equal(c.node('n3').raft.status().leader, 'n1');
  t.ok(c.conversation((m) => m.type === 'preVote' && m.from === 'n2').length > 0, 'n2 asked for pre-votes');
  t.equal(c.conversation((m) => m.type === 'vote').length, 0, 'and got none: no real election');
});

t.test('leaderUnreachable is ignored for a peer that is not the leader, and on the leader itself', async (t) => {
  const c = new Cluster(['n1', 'n2', 'n3']);
  c.campaign('n1');
  c.node('n2').raft.leaderUnreachable('n3');
  c.node('n1').raft.leaderUnreachable('n2');
  c.clearSent();
  for (let i = 0; i < 5; i++) c.tickAll();
  t.equal(c.conversation((m) => m.type === 'preVote' || m.type === 'vote').length, 0, 'no campaign');
  t.equal(c.node('n1').raft.status().role, 'leader');
});
