// RaftConfig.deferCommitNotice: a leader that learns of a commit does not send an
// append of its own to announce it; the next append carries it, or announceCommit(),
// or the leader's next tick at the latest. Without the knob every commit is broadcast
// at once (etcd-io/raft's behaviour).
import t from 'tap';
import { Cluster } from './cluster.js';

const ids = ['n1', 'n2', 'n3'];
const deferred = (): { deferCommitNotice: boolean } => ({ deferCommitNotice: true });

t.test('by default a commit is broadcast at once, in an empty append answered by each follower', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  c.clearSent();
  c.propose('n1', 'a=1');
  t.same(
    c.conversation(),
    [
      'app n1>n2 t2 prev 4/2 [5/2"a=1"] commit 4',
      'app n1>n3 t2 prev 4/2 [5/2"a=1"] commit 4',
      'appResp n2>n1 t2 ok 5',
      'appResp n3>n1 t2 ok 5',
      'app n1>n2 t2 prev 5/2 [] commit 5',
      'app n1>n3 t2 prev 5/2 [] commit 5',
      'appResp n2>n1 t2 ok 5',
      'appResp n3>n1 t2 ok 5',
    ],
    'two rounds per proposal',
  );
});

t.test('deferred, the commit rides with the next append: one round per proposal', async (t) => {
  const c = new Cluster(ids, deferred);
  c.campaign('n1');
  c.tick('n1'); // the no-op's commit, announced at the tick
  c.clearSent();
  c.propose('n1', 'a=1');
  t.same(
    c.conversation(),
    ['app n1>n2 t2 prev 4/2 [5/2"a=1"] commit 4', 'app n1>n3 t2 prev 4/2 [5/2"a=1"] commit 4', 'appResp n2>n1 t2 ok 5', 'appResp n3>n1 t2 ok 5'],
    'no announcement of its own',
  );
  t.equal(c.node('n1').raft.status().commit, 5, 'the leader committed entry 5');
  t.equal(c.node('n2').raft.status().commit, 4, 'n2 has not heard of it yet');
  t.ok(c.node('n1').raft.hasCommitToAnnounce(), 'the leader holds a commit to announce');
  c.clearSent();
  c.propose('n1', 'b=2');
  t.same(
    c.conversation((m) => m.type === 'app'),
    ['app n1>n2 t2 prev 5/2 [6/2"b=2"] commit 5', 'app n1>n3 t2 prev 5/2 [6/2"b=2"] commit 5'],
    'the next append carries commit 5',
  );
  t.equal(c.node('n2').raft.status().commit, 5, 'n2 committed entry 5 from it');
  t.same(
    c.node('n2').applied.map((a) => a.text),
    ['a=1'],
    'and applied it',
  );
});

t.test('deferred, announceCommit sends an empty append only to followers that lack the commit', async (t) => {
  const c = new Cluster(ids, deferred);
  c.campaign('n1');
  c.tick('n1');
  c.propose('n1', 'a=1');
  // Entry 6 reaches n2 only: n2 and the leader commit it, n3 still holds entry 5.
  c.drop((m) => m.to === 'n3' && m.type === 'app');
  c.propose('n1', 'b=2');
  c.drop(() => false);
  c.clearSent();
  c.node('n1').driver.withCore((core) => core.announceCommit());
  c.settle();
  const apps = c.conversation((m) => m.type === 'app');
  t.equal(apps.length, 1, 'one append');
  t.match(apps[0], /^app n1>n2 t2 prev 6\/2 \[\] commit 6$/, 'to n2, whose log holds entry 6; n3 (match 5) was told commit 5 already');
  t.notOk(c.node('n1').raft.hasCommitToAnnounce(), 'nothing left to announce');
  c.clearSent();
  c.node('n1').driver.withCore((core) => core.announceCommit());
  c.settle();
  t.same(c.conversation(), [], 'a second call sends nothing');
});

t.test('deferred, the leader announces a commit at its next tick at the latest', async (t) => {
  const c = new Cluster(ids, () => ({ deferCommitNotice: true, electionTicks: 20, heartbeatTicks: 10 }));
  c.campaign('n1');
  c.tick('n1');
  c.propose('n1', 'a=1');
  c.clearSent();
  c.tick('n1');
  t.same(
    c.conversation((m) => m.type === 'app'),
    ['app n1>n2 t2 prev 5/2 [] commit 5', 'app n1>n3 t2 prev 5/2 [] commit 5'],
    'the tick sends it (no heartbeat round due yet)',
  );
  t.same(
    ids.map((id) => c.node(id).raft.status().commit),
    [5, 5, 5],
    'every node committed entry 5',
  );
});
