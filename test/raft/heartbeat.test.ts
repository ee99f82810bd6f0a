// The leader's periodic heartbeat rounds: with a heartbeatCtx each round is also a
// ReadIndex round of the leader's own (the driver's contact probe, so its answers can
// be credited with the round's send time), and with learnerHeartbeatRounds the
// learners hear only some of them.
import t from 'tap';
import { Cluster } from './cluster.js';

const ids = ['n1', 'n2', 'n3'];

/** A ctx source for each node: `<id>:p1`, `<id>:p2`, … */
function probes(id: string): { heartbeatCtx: () => string } {
  let n = 0;
  return { heartbeatCtx: () => `${id}:p${++n}` };
}

t.test('with a heartbeatCtx, every periodic round of a leader carries a fresh ctx and confirms a read of its own', async (t) => {
  const c = new Cluster(ids, probes);
  c.campaign('n1');
  c.propose('n1', 'a=1');
  c.clearSent();
  c.node('n1').readStates = [];
  c.tick('n1');
  t.same(
    c.conversation(),
    ['heartbeat n1>n2 t2 commit 5 ctx n1:p1', 'heartbeat n1>n3 t2 commit 5 ctx n1:p1', 'heartbeatResp n2>n1 t2 ctx n1:p1', 'heartbeatResp n3>n1 t2 ctx n1:p1'],
    'one round, its ctx echoed by both answers',
  );
  t.same(c.node('n1').readStates, [{ ctx: 'n1:p1', index: 5 }], 'a quorum answered: the round is released as a read at the commit index');
  c.clearSent();
  c.tick('n1');
  t.match(c.conversation()[0], /ctx n1:p2$/, 'the next round carries the next ctx');
});

t.test('before the term commits an entry of its own, a round carries no ctx (a read would have to wait)', async (t) => {
  const c = new Cluster(ids, probes);
  // n1 wins term 2, but its no-op append is never acknowledged: nothing of term 2 commits.
  c.drop((m) => m.type === 'appResp');
  c.campaign('n1');
  t.equal(c.node('n1').raft.status().role, 'leader', 'n1 leads');
  c.clearSent();
  c.tick('n1');
  t.same(
    c.conversation((m) => m.type === 'heartbeat'),
    ['heartbeat n1>n2 t2 commit 0', 'heartbeat n1>n3 t2 commit 0'],
    'a plain round: the followers still hear their leader',
  );
});

t.test('with learnerHeartbeatRounds 2, a learner hears one periodic round in two and the voters hear all', async (t) => {
  const c = new Cluster(ids, () => ({ learnerHeartbeatRounds: 2 }));
  c.campaign('n1');
  c.add('n4', undefined, { learnerHeartbeatRounds: 2 });
  t.match(c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' }), { ok: true }, 'n1 adds learner n4');
  c.clearSent();
  c.tick('n1', 4);
  const to = (id: string): number => c.conversation((m) => m.type === 'heartbeat' && m.to === id).length;
  t.equal(to('n2'), 4, 'voter n2: 4 rounds in 4 ticks');
  t.equal(to('n3'), 4, 'voter n3: 4 rounds in 4 ticks');
  t.equal(to('n4'), 2, 'learner n4: 2 of them');
  t.equal(c.conversation((m) => m.type === 'heartbeatResp' && m.from === 'n4').length, 2, 'and it answered both');
});
