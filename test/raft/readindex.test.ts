// ReadIndex (Raft thesis §6.4): a linearizable read without writing to the log. The
// leader records its commit index, confirms it is still leader with a heartbeat round
// carrying the read's ctx, and once a quorum answered, the read may be served when the
// applied index reaches the recorded one. Followers forward reads to the leader.
import t from 'tap';
import { Cluster } from './cluster.js';

const ids = ['n1', 'n2', 'n3'];

/** n1 leads term 2 and "a=1" is committed at index 5. */
function clusterWithAWrite(): Cluster {
  const c = new Cluster(ids);
  c.campaign('n1');
  c.propose('n1', 'a=1');
  c.clearSent();
  return c;
}

t.test('a read on the leader is released after a heartbeat round with its ctx, at the commit index', async (t) => {
  const c = clusterWithAWrite();
  t.equal(c.node('n1').raft.status().commit, 5, 'the commit index is 5');
  t.equal(c.readIndex('n1', 'r1'), true, 'the leader takes the read');
  t.same(
    c.conversation(),
    ['heartbeat n1>n2 t2 commit 5 ctx r1', 'heartbeat n1>n3 t2 commit 5 ctx r1', 'heartbeatResp n2>n1 t2 ctx r1', 'heartbeatResp n3>n1 t2 ctx r1'],
    'one heartbeat round carrying ctx r1',
  );
  t.same(c.node('n1').readStates, [{ ctx: 'r1', index: 5 }], 'the read state: ctx r1 at index 5, the commit index when it arrived');
  t.ok(c.node('n1').raft.status().applied >= 5, 'the leader has applied 5: the read can be served now');
});

t.test('a read on a follower is forwarded to the leader and answered with readIndexResp', async (t) => {
  const c = clusterWithAWrite();
  t.equal(c.readIndex('n2', 'r2'), true, 'the follower takes the read');
  t.same(
    c.conversation(),
    [
      'readIndex n2>n1 t2 ctx r2',
      'heartbeat n1>n2 t2 commit 5 ctx r2',
      'heartbeat n1>n3 t2 commit 5 ctx r2',
      'heartbeatResp n2>n1 t2 ctx r2',
      'heartbeatResp n3>n1 t2 ctx r2',
      'readIndexResp n1>n2 t2 ctx r2 index 5',
    ],
    'forwarded, confirmed by a heartbeat round (n2\'s own answer counts), answered',
  );
  t.same(c.node('n2').readStates, [{ ctx: 'r2', index: 5 }], 'the follower gets the read state at index 5');
  t.same(c.node('n1').readStates, [], 'the leader keeps none for itself');
  t.ok(c.node('n2').raft.status().applied >= 5, 'the follower has applied 5: it can serve the read');
});

t.test('a new leader that has not committed an entry of its term holds reads until its no-op commits', async (t) => {
  const c = new Cluster(ids);
  c.drop((m) => m.type === 'app'); // the no-op of term 2 reaches nobody
  c.campaign('n1');
  t.match(c.node('n1').raft.status(), { role: 'leader', term: 2, commit: 3 }, 'n1 leads term 2; commit 3 is of term 1');
  c.clearSent();
  t.equal(c.readIndex('n1', 'r3'), true, 'the leader takes the read');
  t.same(c.conversation(), [], 'but sends no heartbeat for it: its commit index may be stale');
  t.same(c.node('n1').readStates, [], 'and releases nothing');

  c.heal();
  c.tick('n1');
  t.same(
    c.conversation(),
    [
      'heartbeat n1>n2 t2 commit 0',
      'heartbeat n1>n3 t2 commit 0',
      'heartbeatResp n2>n1 t2',
      'heartbeatResp n3>n1 t2',
      'app n1>n2 t2 prev 3/1 [4/2] commit 3',
      'app n1>n3 t2 prev 3/1 [4/2] commit 3',
      'appResp n2>n1 t2 ok 4',
      'appResp n3>n1 t2 ok 4',
      // The no-op 4/2 is committed: now the read is handled, at commit 4.
      'heartbeat n1>n2 t2 commit 4 ctx r3',
      'heartbeat n1>n3 t2 commit 0 ctx r3',
      'app n1>n2 t2 prev 4/2 [] commit 4',
      'app n1>n3 t2 prev 4/2 [] commit 4',
      'heartbeatResp n2>n1 t2 ctx r3',
      'appResp n2>n1 t2 ok 4',
      'heartbeatResp n3>n1 t2 ctx r3',
      'appResp n3>n1 t2 ok 4',
    ],
    'the no-op is replicated first, then the read\'s heartbeat round',
  );
  t.same(c.node('n1').readStates, [{ ctx: 'r3', index: 4 }], 'the read is released at index 4, the no-op, not at the stale 3');
});

t.test('a leader cut off from the quorum never releases a read; it steps down and the client must retry', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  c.isolate('n1');
  c.clearSent();
  t.equal(c.readIndex('n1', 'r4'), true, 'the isolated leader takes the read');
  let stepDownTick = 0;
  for (let tick = 1; tick <= 30; tick++) {
    c.tick('n1');
    if (stepDownTick === 0 && c.node('n1').raft.status().role !== 'leader') stepDownTick = tick;
  }
  t.same(c.node('n1').readStates, [], 'the read was never released: no quorum answered its heartbeat round');
  t.equal(stepDownTick, 20, 'n1 stepped down by check-quorum (the first check still counted acks from before the cut)');
  t.equal(c.readIndex('n1', 'r4 again'), false, 'a retry on n1 is refused: it knows no leader');

  c.heal();
  c.tickAll(30);
  const leader = c.leader();
  t.ok(leader !== undefined && leader.id !== 'n1', `n2 or n3 leads now (${leader?.id})`);
  t.same(c.node('n1').readStates, [], 'the old read is not released later either');
  c.clearSent();
  t.equal(c.readIndex('n1', 'r4 again'), true, 'the retry, on n1 as a follower, is forwarded');
  t.same(
    c.node('n1').readStates,
    [{ ctx: 'r4 again', index: leader?.raft.status().commit ?? -1 }],
    'and answered at the new leader\'s commit index',
  );
});
