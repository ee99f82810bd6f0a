// Leadership transfer (Raft thesis §3.10): the leader brings the target's log up to
// date, then tells it to campaign at once (timeoutNow). The target skips the pre-vote
// and the other nodes' leader lease, so it wins at the next term. Proposals wait while
// the transfer is under way, and a transfer that does not finish within an election
// timeout is abandoned.
import t from 'tap';
import { Cluster, text } from './cluster.js';

const ids = ['n1', 'n2', 'n3'];

t.test('a transfer to a follower that is behind: appends first, timeoutNow once it matches, then it wins term 3', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  // n3 misses two entries: their appends are lost on the cut link.
  c.cutLink('n1', 'n3');
  c.propose('n1', 'a=1');
  c.propose('n1', 'b=2');
  c.heal();
  t.match(c.node('n1').raft.status().progress?.n3, { match: 4 }, 'the leader knows n3 holds up to 4, the no-op; its last index is 6');

  c.clearSent();
  const n1 = c.node('n1').raft;
  t.equal(n1.transferLeadership('n3'), true, 'n1 starts the transfer to n3');
  t.equal(n1.status().leadTransferee, 'n3', 'n1 records n3 as the transferee');
  t.same(n1.propose(text('during')), { ok: false, reason: 'transferring', leader: 'n1' }, 'a proposal during the transfer is refused');
  c.settle();

  t.same(
    c.conversation(),
    [
      // n1 believed n3's pipeline reached 6: an empty append exposes the gap.
      'app n1>n3 t2 prev 6/2 [] commit 6',
      'appResp n3>n1 t2 reject 6 hint 4/2',
      'app n1>n3 t2 prev 4/2 [5/2"a=1" 6/2"b=2"] commit 6',
      'appResp n3>n1 t2 ok 6',
      // n3 has 6, the last index: now it may campaign.
      'app n1>n3 t2 prev 6/2 [] commit 6',
      'timeoutNow n1>n3 t2',
      'appResp n3>n1 t2 ok 6',
      // No pre-vote; `transfer` lets n2 vote although it heard from n1 within the lease.
      'vote n3>n1 t3 last 6/2 transfer',
      'vote n3>n2 t3 last 6/2 transfer',
      'voteResp n1>n3 t3 granted',
      'voteResp n2>n3 t3 granted',
      'app n3>n1 t3 prev 6/2 [7/3] commit 6',
      'app n3>n2 t3 prev 6/2 [7/3] commit 6',
      'appResp n1>n3 t3 ok 7',
      'appResp n2>n3 t3 ok 7',
      'app n3>n1 t3 prev 7/3 [] commit 7',
      'app n3>n2 t3 prev 7/3 [] commit 7',
      'appResp n1>n3 t3 ok 7',
      'appResp n2>n3 t3 ok 7',
    ],
    'catch-up appends, timeoutNow, a vote at term 3 marked transfer, and the new leader\'s no-op',
  );
  t.match(c.node('n3').raft.status(), { role: 'leader', term: 3, commit: 7 }, 'n3 leads term 3');
  for (const id of ['n1', 'n2']) {
    t.match(c.node(id).raft.status(), { role: 'follower', term: 3, leader: 'n3', leadTransferee: null }, `${id} follows n3`);
  }
  t.same(c.node('n3').applied.map((a) => a.text), ['a=1', 'b=2'], 'n3 applied what it caught up on; "during" was never appended');
  t.match(c.propose('n3', 'after'), { ok: true, index: 8, term: 3 }, 'the new leader accepts proposals');
});

t.test('a transfer to an unreachable node is abandoned after an election timeout, and the leader stays leader', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  c.isolate('n3');
  c.clearSent();
  const n1 = c.node('n1').raft;
  t.equal(n1.transferLeadership('n3'), true, 'n1 starts the transfer to n3');
  c.settle();
  t.same(c.conversation(), ['timeoutNow n1>n3 t2'], 'n3 looked up to date (match 4 = last index), so timeoutNow goes at once, and is lost');

  c.tick('n1', 9);
  t.equal(n1.status().leadTransferee, 'n3', 'after 9 ticks the transfer is still under way');
  t.same(n1.propose(text('too early')), { ok: false, reason: 'transferring', leader: 'n1' }, 'and proposals are refused');
  c.tick('n1');
  t.match(n1.status(), { role: 'leader', term: 2, leadTransferee: null }, 'after an election timeout (10 ticks) n1 abandons it and still leads term 2');
  t.match(c.propose('n1', 'after'), { ok: true, index: 5, term: 2 }, 'proposals are accepted again');
  t.equal(n1.status().commit, 5, 'and committed with n2');
  t.match(c.node('n3').raft.status(), { role: 'follower', term: 2 }, 'n3 never campaigned');
});
