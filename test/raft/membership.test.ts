// Membership changes, one node at a time (Raft thesis §4.1): a change takes effect on
// every node as soon as it is in its log, committed or not; a leader accepts no change
// while the previous one is not applied, nor before it has applied an entry of its own
// term (the fix for the bug in single-server changes the thesis' errata describes); a
// removed leader leads until its removal is applied, then steps down.
import t from 'tap';
import { Raft } from '../../raft/raft.js';
import { Cluster } from './cluster.js';

const ids = ['n1', 'n2', 'n3'];

t.test('a second change while the first is not yet applied is refused with confChangePending', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  c.add('n4', Raft.empty());
  c.add('n5', Raft.empty());
  const n1 = c.node('n1').raft;
  t.same(n1.proposeConfChange({ type: 'addLearner', node: 'n4' }), { ok: true, index: 5, term: 2 }, 'the first change is appended at 5');
  t.same(
    n1.proposeConfChange({ type: 'addLearner', node: 'n5' }),
    { ok: false, reason: 'confChangePending', leader: 'n1' },
    'a second change before the first is applied is refused',
  );
  t.same(n1.status().conf, { voters: ids, learners: ['n4'] }, 'the first is in effect on the leader once appended');
  t.same(c.node('n2').raft.status().conf, { voters: ids, learners: [] }, 'not yet on a follower that has not received it');
  c.settle();
  t.same(c.node('n2').raft.status().conf, { voters: ids, learners: ['n4'] }, 'received, it is in effect there too');
  t.match(n1.status(), { commit: 5, applied: 5 }, 'committed and applied');
  t.same(c.proposeConfChange('n1', { type: 'addLearner', node: 'n5' }), { ok: true, index: 6, term: 2 }, 'and the next change is accepted');
});

t.test('with unsafe.allowConcurrentConfChanges, the second change is accepted (the knob exists to prove the simulator catches it)', async (t) => {
  const c = new Cluster(ids, () => ({ unsafe: { allowConcurrentConfChanges: true } }));
  c.campaign('n1');
  const n1 = c.node('n1').raft;
  t.match(n1.proposeConfChange({ type: 'addLearner', node: 'n4' }), { ok: true, index: 5 }, 'the first change is appended');
  t.match(n1.proposeConfChange({ type: 'addLearner', node: 'n5' }), { ok: true, index: 6 }, 'the second is appended too');
});

t.test('a new leader refuses a change until it has applied its no-op', async (t) => {
  const c = new Cluster(ids);
  c.drop((m) => m.type === 'app'); // the no-op of term 2 reaches nobody
  c.campaign('n1');
  t.match(c.node('n1').raft.status(), { role: 'leader', term: 2, commit: 3, applied: 3 }, 'n1 leads term 2; its no-op 4/2 is not committed');
  t.same(
    c.proposeConfChange('n1', { type: 'removeNode', node: 'n3' }),
    { ok: false, reason: 'confChangePending', leader: 'n1' },
    'a change is refused: a change of an earlier leader may still be uncommitted',
  );
  c.heal();
  c.tick('n1'); // the heartbeat answers make n1 send the no-op again
  t.match(c.node('n1').raft.status(), { commit: 4, applied: 4 }, 'the no-op 4/2 is committed and applied');
  t.same(c.proposeConfChange('n1', { type: 'removeNode', node: 'n3' }), { ok: true, index: 5, term: 2 }, 'now the change is accepted');
  t.same(c.node('n1').raft.status().conf, { voters: ['n1', 'n2'], learners: [] }, 'and n3 is removed');
});

t.test('a leader that removes itself leads until the removal is applied, then steps down; the others elect a leader', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  const n1 = c.node('n1').raft;
  c.clearSent();
  t.same(n1.proposeConfChange({ type: 'removeNode', node: 'n1' }), { ok: true, index: 5, term: 2 }, 'n1 appends its own removal at 5');
  t.equal(n1.status().role, 'leader', 'appended, not applied: n1 still leads');
  c.settle();
  t.same(
    c.conversation(),
    [
      'app n1>n2 t2 prev 4/2 [5/2{removeNode n1}] commit 4',
      'app n1>n3 t2 prev 4/2 [5/2{removeNode n1}] commit 4',
      'appResp n2>n1 t2 ok 5',
      'appResp n3>n1 t2 ok 5',
      // Sent when the removal committed, before n1 applied it: n2 and n3 learn the commit.
      'app n1>n2 t2 prev 5/2 [] commit 5',
      'app n1>n3 t2 prev 5/2 [] commit 5',
      'appResp n2>n1 t2 ok 5',
      'appResp n3>n1 t2 ok 5',
    ],
    'n1 replicates its removal and commits it with n2 and n3',
  );
  t.match(n1.status(), { role: 'follower', term: 2, leader: null, applied: 5 }, 'having applied its removal, n1 steps down');
  for (const id of ids) t.same(c.node(id).raft.status().conf, { voters: ['n2', 'n3'], learners: [] }, `${id} applied the removal`);
  t.match(n1.propose(new Uint8Array([1])), { ok: false, reason: 'notLeader' }, 'n1 refuses proposals');

  c.clearSent();
  c.tickAll(3 * 10);
  const leader = c.leader();
  t.ok(leader?.id === 'n2' || leader?.id === 'n3', `n2 or n3 leads (${leader?.id})`);
  t.equal(leader?.raft.status().term, 3, 'at term 3');
  t.notOk(c.sent.some((m) => m.from === 'n1' && (m.type === 'preVote' || m.type === 'vote')), 'n1, no longer a voter, never campaigned');
  t.notOk(c.sent.some((m) => m.to === 'n1' && (m.type === 'preVote' || m.type === 'vote' || m.type === 'app')), 'and nobody asks n1 anything');
  t.match(c.propose(leader?.id ?? 'n2', 'after'), { ok: true, index: 7, term: 3 }, 'the two-node cluster accepts proposals');
});

t.test('invalid changes are refused with invalid', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  t.match(c.proposeConfChange('n1', { type: 'addVoter', node: 'n2' }), { ok: false, reason: 'invalid' }, 'addVoter of a voter');
  t.match(c.proposeConfChange('n1', { type: 'removeNode', node: 'n9' }), { ok: false, reason: 'invalid' }, 'removeNode of a stranger');
  t.match(c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' }), { ok: true, index: 5 }, '(addLearner n4 is valid)');
  t.match(c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' }), { ok: false, reason: 'invalid' }, 'addLearner of a learner');
  t.equal(c.node('n1').raft.status().lastIndex, 5, 'nothing refused was appended');

  const solo = new Cluster(['solo']);
  solo.campaign('solo');
  t.match(solo.node('solo').raft.status(), { role: 'leader', commit: 2 }, 'a one-voter cluster leads itself');
  t.match(solo.proposeConfChange('solo', { type: 'removeNode', node: 'solo' }), { ok: false, reason: 'invalid' }, 'removing the last voter');
  t.match(solo.proposeConfChange('solo', { type: 'addLearner', node: 'solo' }), { ok: false, reason: 'invalid' }, 'demoting the last voter to learner');
  t.same(solo.node('solo').raft.status().conf, { voters: ['solo'], learners: [] }, 'the membership is unchanged');
});

// etcd-io/etcd#12359: where a change takes effect only once applied, a node must know
// it committed to count votes by it. Replacing a voter (3 voters, promote a learner to 4,
// demote the dead one to 3) and losing the leader right after it committed the demotion,
// before anyone else learned that commit, left two live voters of the new configuration
// that each still counted the 4-voter one (2 of 4, no quorum): no leader, ever.
t.test('a voter replaced, then the leader lost before anyone learned the commit: the two live voters still elect a leader', async (t) => {
  const c = new Cluster(ids);
  c.add('n4', Raft.empty());
  c.campaign('n3');
  t.equal(c.leader()?.id, 'n3', 'n3 leads');
  c.proposeConfChange('n3', { type: 'addLearner', node: 'n4' });
  c.tickAll(2);
  c.isolate('n1'); // the voter that dies
  t.match(c.proposeConfChange('n3', { type: 'addVoter', node: 'n4' }), { ok: true }, 'n4 promoted');
  c.tickAll(2);
  // Nothing tells n2 and n4 that the demotion committed: no empty appends, no heartbeats.
  c.drop((m) => m.from === 'n3' && (m.type === 'heartbeat' || (m.type === 'app' && m.entries.length === 0)));
  const demotion = c.proposeConfChange('n3', { type: 'addLearner', node: 'n1' });
  t.match(demotion, { ok: true }, 'n1 demoted');
  const index = demotion.ok ? demotion.index : 0;
  t.equal(c.node('n3').raft.status().commit, index, 'n3 committed the demotion');
  for (const id of ['n2', 'n4']) {
    t.match(c.node(id).raft.status(), { lastIndex: index, commit: index - 1 }, `${id} holds it and does not know it committed`);
  }
  c.isolate('n3'); // and the leader dies
  c.tickAll(60);
  const leader = c.leader();
  t.ok(leader?.id === 'n2' || leader?.id === 'n4', `n2 or n4 leads (${leader?.id})`);
  t.same(leader?.raft.status().conf, { voters: ['n2', 'n3', 'n4'], learners: ['n1'] }, 'by the newest membership in its log');
  t.match(c.propose(leader?.id ?? 'n2', 'after'), { ok: true }, 'and accepts proposals');
  c.tickAll(2);
  for (const id of ['n2', 'n4']) t.same(c.node(id).applied.map((a) => a.text), ['after'], `${id} applied it`);
});
