// Network partitions: a leader cut off from the majority, and a follower cut off alone.
// Check-quorum makes a stranded leader step down; pre-vote keeps a stranded follower
// from inflating its term and deposing a healthy leader when it comes back.
import t from 'tap';
import { Cluster } from './cluster.js';
import type { NodeId, Role } from '../../raft/types.js';

const roles = (c: Cluster, ids: NodeId[]): Record<NodeId, Role> => Object.fromEntries(ids.map((id) => [id, c.node(id).raft.status().role]));

t.test('a leader cut off from the majority steps down, the majority elects a new leader, and on healing the old leader\'s uncommitted entry is replaced', async (t) => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  // Randomized election timeouts, in ticks: n1 10, n3 12, the others 15.
  const random: Record<NodeId, number> = { n1: 0, n2: 0.5, n3: 0.2, n4: 0.5, n5: 0.5 };
  const c = new Cluster(ids, (id) => ({ random: () => random[id] ?? 0 }));
  c.campaign('n1');
  t.match(c.node('n1').raft.status(), { role: 'leader', term: 2, commit: 6 }, 'n1 leads term 2');

  c.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
  t.match(c.propose('n1', 'lost'), { ok: true, index: 7, term: 2 }, 'n1, not yet aware of the partition, accepts a proposal');
  t.same(c.logTerms('n2'), [1, 1, 1, 1, 1, 2, 2], 'n2, on n1\'s side, holds 7/2 "lost"');
  t.equal(c.node('n1').raft.status().commit, 6, '7/2 is on 2 of 5: not committed');

  // Time passes for everyone. Record when n1 steps down and when n3 takes over.
  let n1SteppedDownAt = 0;
  let n3ElectedAt = 0;
  for (let tick = 1; tick <= 20; tick++) {
    c.tickAll();
    const now = roles(c, ids);
    if (n1SteppedDownAt === 0 && now.n1 !== 'leader') n1SteppedDownAt = tick;
    if (n3ElectedAt === 0 && now.n3 === 'leader') n3ElectedAt = tick;
  }
  // n1 checks its quorum every election timeout (10 ticks). At tick 10 it still counts
  // the acknowledgements heard before the cut; at tick 20 it has heard only from n2.
  t.equal(n1SteppedDownAt, 20, 'n1 steps down at its second check-quorum, the first one that covers only time after the cut');
  t.match(c.node('n1').raft.status(), { role: 'follower', term: 2, leader: null }, 'n1 is a follower of nobody, still at term 2');
  // n4 and n5 stop honouring n1's lease after 10 silent ticks, so n3's campaign at 12 succeeds.
  t.equal(n3ElectedAt, 12, 'n3 is elected when its 12-tick election timeout fires');
  t.match(c.node('n3').raft.status(), { role: 'leader', term: 3 }, 'the majority side leads a higher term');

  t.same(
    c.node('n1').raft.propose(new TextEncoder().encode('refused')),
    { ok: false, reason: 'notLeader', leader: null },
    'the old leader refuses proposals: the client must look for the new leader',
  );
  t.match(c.propose('n3', 'kept'), { ok: true, index: 8, term: 3 }, 'the new leader accepts proposals (after its no-op 7/3)');
  t.equal(c.node('n3').raft.status().commit, 8, 'and commits them with n4 and n5');

  c.heal();
  c.clearSent();
  c.tickAll();
  t.same(
    c.conversation((m) => m.type === 'app' || m.type === 'appResp'),
    [
      'app n3>n1 t3 prev 6/2 [7/3 8/3"kept"] commit 8',
      'app n3>n2 t3 prev 6/2 [7/3 8/3"kept"] commit 8',
      'appResp n1>n3 t3 ok 8',
      'appResp n2>n3 t3 ok 8',
      'app n3>n1 t3 prev 8/3 [] commit 8',
      'app n3>n2 t3 prev 8/3 [] commit 8',
      'appResp n1>n3 t3 ok 8',
      'appResp n2>n3 t3 ok 8',
    ],
    'after the first heartbeat, n3 sends n1 and n2 everything after 6/2, where their logs still match',
  );
  for (const id of ids) {
    t.same(c.logTerms(id), [1, 1, 1, 1, 1, 2, 3, 3], `${id}: 7/2 "lost" replaced by the no-op 7/3, then 8/3 "kept"`);
    t.same(c.node(id).applied.map((a) => a.text), ['kept'], `${id} applied "kept" and never "lost"`);
    t.match(c.node(id).raft.status(), { term: 3, leader: 'n3' }, `${id} follows n3 at term 3`);
  }
});

t.test('with pre-vote, a follower isolated for ten election timeouts keeps its term and does not disturb the leader when it returns', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const c = new Cluster(ids);
  c.campaign('n1');
  c.isolate('n3');
  c.propose('n1', 'while n3 was away');

  let highestTerm = 0;
  for (let tick = 1; tick <= 100; tick++) {
    c.tickAll();
    highestTerm = Math.max(highestTerm, c.node('n3').raft.status().term);
  }
  t.equal(highestTerm, 2, 'n3 never moved past term 2: a pre-vote that fails changes no term');
  t.ok(
    c.sent.some((m) => m.type === 'preVote' && m.from === 'n3' && m.term === 3),
    'n3 did campaign (pre-votes for term 3, lost in the partition)',
  );
  t.notOk(c.sent.some((m) => m.type === 'vote' && m.from === 'n3'), 'n3 never got as far as a real vote');

  c.heal();
  c.clearSent();
  c.tickAll(3 * 10);
  t.same(
    c.conversation((m) => m.type !== 'heartbeat' && m.type !== 'heartbeatResp'),
    [
      'app n1>n3 t2 prev 4/2 [5/2"while n3 was away"] commit 5',
      'appResp n3>n1 t2 ok 5',
      'app n1>n3 t2 prev 5/2 [] commit 5',
      'appResp n3>n1 t2 ok 5',
    ],
    'healing costs one catch-up append and no election',
  );
  for (const id of ids) {
    t.match(c.node(id).raft.status(), { term: 2, leader: 'n1', commit: 5 }, `${id} follows n1, still at term 2`);
  }
  t.same(c.node('n3').applied.map((a) => a.text), ['while n3 was away'], 'n3 caught up');
});

t.test('without pre-vote (preVote: false), the isolated follower\'s term grows and on healing it deposes the leader', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const c = new Cluster(ids, () => ({ preVote: false }));
  c.campaign('n1');
  c.isolate('n3');
  c.propose('n1', 'while n3 was away');
  c.tickAll(100);
  t.match(c.node('n3').raft.status(), { role: 'candidate', term: 12 }, 'n3 campaigned every election timeout: ten real elections, term 2 → 12');
  t.match(c.node('n1').raft.status(), { role: 'leader', term: 2 }, 'meanwhile n1 leads term 2, undisturbed');

  c.heal();
  c.clearSent();
  c.tickAll();
  t.same(
    c.conversation(),
    ['heartbeat n1>n2 t2 commit 5', 'heartbeat n1>n3 t2 commit 4', 'heartbeatResp n2>n1 t2', 'appResp n3>n1 t12 ok 0'],
    'n3 answers the leader\'s heartbeat of term 2 with its term 12',
  );
  t.match(c.node('n1').raft.status(), { role: 'follower', term: 12, leader: null }, 'the healthy leader is deposed by a node that cannot even win');

  c.tickAll(3 * 10);
  const leader = c.leader();
  t.equal(leader?.id, 'n1', 'n1 wins again: n3\'s log is behind, so n3 cannot be elected');
  t.equal(leader?.raft.status().term, 14, 'but only at term 14, after an election with no leader in between');
  t.ok(
    c.sent.some((m) => m.type === 'voteResp' && m.to === 'n3' && m.term === 13 && m.reject),
    'n3 campaigned at term 13 and was refused',
  );
  t.same(c.logTerms('n3'), [1, 1, 1, 2, 2, 14], 'n3 caught up with the new term\'s no-op');
});
