// InstallSnapshot: a learner that joins after every node compacted its log can only
// catch up from a snapshot, sent in chunks of snapshotChunkBytes and acknowledged chunk
// by chunk; then the entries after the snapshot follow as appends. Then it is promoted
// to voter and counts in the quorum.
import t from 'tap';
import { Raft } from '../../raft/raft.js';
import { Cluster } from './cluster.js';

const chunkBytes = { snapshotChunkBytes: 64 };
const voters = ['n1', 'n2', 'n3'];

/**
 * n1 leads term 2 (bootstrap entries 1–3, no-op 4), four proposals (5–8) are applied
 * everywhere, and every node compacts its log: the snapshot covers 1–8. n4 is started
 * with an empty log, not yet a member.
 */
function compactedCluster(): Cluster {
  const c = new Cluster(voters, () => chunkBytes);
  c.campaign('n1');
  for (const kv of ['a=1', 'b=2', 'c=3', 'd=4']) c.propose('n1', kv);
  c.tick('n1'); // the heartbeat carries the commit index to the followers
  for (const id of voters) {
    const snap = c.compact(id);
    if (snap.meta.index !== 8) throw new Error(`setup: ${id} should snapshot at index 8, did at ${snap.meta.index}`);
  }
  c.add('n4', Raft.empty(), chunkBytes);
  c.clearSent();
  return c;
}

t.test('a learner added to an idle, compacted cluster whose first probe is lost is probed again at the next heartbeat and catches up by snapshot', async (t) => {
  const c = compactedCluster();
  // The leader probes n4 when the change commits (an empty append); that one is lost.
  let lost = false;
  c.drop((m) => {
    if (lost || m.type !== 'app' || m.to !== 'n4') return false;
    lost = true;
    return true;
  });
  t.match(c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' }), { ok: true, index: 9 }, 'n1 accepts addLearner n4 at index 9');
  t.ok(lost, 'the first probe of n4 was lost');
  t.same(c.node('n1').raft.status().conf, { voters, learners: ['n4'] }, 'the change is in effect: n4 is a learner');
  // No client proposes anything. As in etcd-io/raft, a heartbeat answer from a follower
  // in probe state makes the leader send it an append, even an empty one, to find where
  // its log matches (FINDINGS.md #1: before faf6529, nothing was sent).
  c.clearSent();
  c.tick('n1');
  t.same(
    c.conversation((m) => m.from === 'n4' || m.to === 'n4'),
    [
      'heartbeat n1>n4 t2 commit 0',
      'heartbeatResp n4>n1 t2',
      'app n1>n4 t2 prev 9/2 [] commit 9',
      'appResp n4>n1 t2 reject 9 hint 0/0',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 0 +64 of 137',
      'snapResp n4>n1 t2 snapshot 8/2 next 64',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 64 +64 of 137',
      'snapResp n4>n1 t2 snapshot 8/2 next 128',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 128 +9 of 137',
      'appResp n4>n1 t2 ok 8',
      'app n1>n4 t2 prev 8/2 [9/2{addLearner n4}] commit 9',
      'appResp n4>n1 t2 ok 9',
    ],
    'the first heartbeat answer brings an empty probe; its rejection starts the snapshot',
  );
  t.same(c.node('n4').applied, c.node('n1').applied, 'n4 applied the same state as the leader');
});

t.test('the learner catches up by InstallSnapshot in chunks of 64 bytes, then by appends', async (t) => {
  const c = compactedCluster();
  const leaderSnapshot = c.node('n1').disk.snapshot;
  t.equal(leaderSnapshot?.data.length, 137, 'the leader\'s snapshot (its applied state) is 137 bytes: three chunks');
  // The addition commits at once (n4 is not a voter) and the leader probes n4 with an
  // empty append: n4's first contact with the leader.
  c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' });
  t.match(c.propose('n1', 'e=5'), { ok: true, index: 10 }, 'n1 accepts "e=5" at index 10');
  t.same(
    c.conversation((m) => m.from === 'n4' || m.to === 'n4'),
    [
      'app n1>n4 t2 prev 9/2 [] commit 9',
      // n4's log is empty: its hint is index 0, and the leader's log starts at 9.
      'appResp n4>n1 t2 reject 9 hint 0/0',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 0 +64 of 137',
      'snapResp n4>n1 t2 snapshot 8/2 next 64',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 64 +64 of 137',
      'snapResp n4>n1 t2 snapshot 8/2 next 128',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 128 +9 of 137',
      // The last chunk completes the snapshot: n4 installs it and answers as to an append.
      'appResp n4>n1 t2 ok 8',
      'app n1>n4 t2 prev 8/2 [9/2{addLearner n4}] commit 9',
      'appResp n4>n1 t2 ok 9',
      // Then the proposal reaches n4 as it does every follower.
      'app n1>n4 t2 prev 9/2 [10/2"e=5"] commit 9',
      'appResp n4>n1 t2 ok 10',
      'app n1>n4 t2 prev 10/2 [] commit 10',
      'appResp n4>n1 t2 ok 10',
    ],
    'probe, rejection, three chunks acknowledged one by one, then the entries after the snapshot',
  );
  const n4 = c.node('n4');
  t.same(n4.disk.snapshot?.data, leaderSnapshot?.data, 'n4 reassembled the leader\'s snapshot byte for byte');
  t.same(n4.disk.snapshot?.meta, { index: 8, term: 2, conf: { voters, learners: [] } }, 'with its metadata');
  t.same(c.logTerms('n4'), [2, 2], 'n4 holds entries 9 and 10 after the snapshot');
  t.same(n4.applied, c.node('n1').applied, 'n4 applied the same state as the leader');
  t.same(n4.applied.map((a) => a.text), ['a=1', 'b=2', 'c=3', 'd=4', 'e=5'], 'the four entries from the snapshot, "e=5" from the log');
  t.match(n4.raft.status(), { role: 'follower', term: 2, leader: 'n1', commit: 10, applied: 10, firstIndex: 9 }, 'n4 follows n1');
  t.same(n4.raft.status().conf, { voters, learners: ['n4'] }, 'n4 knows it is a learner (from entry 9)');
});

t.test('promoted with addVoter, n4 counts in the quorum: its acknowledgement commits where n1 and n2 alone no longer can', async (t) => {
  const c = compactedCluster();
  c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' });
  c.propose('n1', 'e=5');
  t.match(c.node('n1').raft.status().progress?.n4, { match: 10, state: 'replicate', learner: true }, 'n4 caught up as a learner');

  t.match(c.proposeConfChange('n1', { type: 'addVoter', node: 'n4' }), { ok: true, index: 11 }, 'n1 accepts addVoter n4 at index 11');
  c.tick('n1'); // the heartbeat carries commit 11 to the followers
  for (const id of [...voters, 'n4']) {
    t.same(c.node(id).raft.status().conf, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] }, `${id} applied the promotion`);
  }
  t.match(c.node('n1').raft.status().progress?.n4, { learner: false }, 'the leader tracks n4 as a voter');

  // Four voters: a quorum is three. n3 is cut off; messages to n4 are delayed.
  c.isolate('n3');
  c.hold((m) => m.to === 'n4');
  c.clearSent();
  t.match(c.propose('n1', 'f=6'), { ok: true, index: 12 }, 'n1 accepts "f=6" at index 12');
  t.equal(c.node('n2').raft.status().lastIndex, 12, 'n2 has it');
  t.equal(c.node('n1').raft.status().commit, 11, 'n1 and n2 are 2 of 4 voters: not committed (with 3 voters it would be)');
  c.release();
  t.same(
    c.conversation((m) => m.from === 'n4' || m.to === 'n4'),
    [
      'app n1>n4 t2 prev 11/2 [12/2"f=6"] commit 11', // held until release()
      'appResp n4>n1 t2 ok 12',
      'app n1>n4 t2 prev 12/2 [] commit 12', // the acknowledgement committed 12
      'appResp n4>n1 t2 ok 12',
    ],
    'n4 receives the delayed append and acknowledges it',
  );
  t.equal(c.node('n1').raft.status().commit, 12, 'n1, n2 and n4 are 3 of 4: committed');
});

t.test('a snapshot chunk lost in transit is sent again on the next heartbeat answer, and the transfer completes', async (t) => {
  const c = compactedCluster();
  let lost = false;
  c.drop((m) => {
    if (lost || m.type !== 'snap' || m.offset !== 64) return false;
    lost = true;
    return true;
  });
  c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' });
  t.ok(lost, 'the chunk at offset 64 was lost');
  t.same(c.node('n4').raft.status().commit, 0, 'n4 is stuck with the first chunk');
  c.tick('n1');
  t.same(
    c.conversation((m) => m.from === 'n4' || m.to === 'n4'),
    [
      'app n1>n4 t2 prev 9/2 [] commit 9',
      'appResp n4>n1 t2 reject 9 hint 0/0',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 0 +64 of 137',
      'snapResp n4>n1 t2 snapshot 8/2 next 64',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 64 +64 of 137', // lost
      'heartbeat n1>n4 t2 commit 0',
      'heartbeatResp n4>n1 t2',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 64 +64 of 137', // sent again
      'snapResp n4>n1 t2 snapshot 8/2 next 128',
      'snap n1>n4 t2 snapshot 8/2 (voters n1 n2 n3) offset 128 +9 of 137',
      'appResp n4>n1 t2 ok 8',
      'app n1>n4 t2 prev 8/2 [9/2{addLearner n4}] commit 9',
      'appResp n4>n1 t2 ok 9',
    ],
    'the leader resends from the offset n4 last asked for',
  );
  t.same(c.node('n4').disk.snapshot?.data, c.node('n1').disk.snapshot?.data, 'n4 reassembled the snapshot byte for byte');
  t.same(c.node('n4').applied, c.node('n1').applied, 'n4 applied the same state as the leader');
});
