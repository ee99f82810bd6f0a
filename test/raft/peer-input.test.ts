// What a peer sends is data to check. A message carrying a term or index at 2^52 or
// beyond is refused (no node adopts a term it could not campaign past); a message
// from a node outside the configuration is refused while the receiver hears from a
// leader; and yet a fresh node, a voter and a learner that missed a membership change
// all still take a leader they do not know yet.
import t from 'tap';
import { Raft } from '../../raft/raft.js';
import { MAX_TERM_JUMP, RAFT_NUMBER_LIMIT, type InitialState, type Message, type NodeId } from '../../raft/types.js';
import { Cluster } from './cluster.js';

const ids = ['n1', 'n2', 'n3'];

function heartbeat(from: NodeId, to: NodeId, term: number): Message {
  return { type: 'heartbeat', from, to, term, commit: 0, ctx: null };
}

/** Every node's (role, term, leader) and persisted term, for "nothing moved" assertions. */
function view(c: Cluster): Record<NodeId, string> {
  return Object.fromEntries(
    [...c.nodes.values()].map((n) => {
      const s = n.raft.status();
      return [n.id, `${s.role} t${s.term} leader ${s.leader} disk t${n.disk.hardState.term}`];
    }),
  );
}

t.test('a heartbeat at term 2^53-1 or 2^52, under a member\'s name, is refused by every node: the leader and its term stay', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  const before = view(c);
  t.same(before, { n1: 'leader t2 leader n1 disk t2', n2: 'follower t2 leader n1 disk t2', n3: 'follower t2 leader n1 disk t2' }, 'n1 leads term 2');

  for (const term of [Number.MAX_SAFE_INTEGER, RAFT_NUMBER_LIMIT]) {
    t.equal(c.inject(heartbeat('n1', 'n2', term)), 'invalid', `n2 refuses "n1" at term ${term}`);
    t.equal(c.inject(heartbeat('n2', 'n3', term)), 'invalid', `n3 refuses "n2" at term ${term}`);
    t.equal(c.inject(heartbeat('n3', 'n1', term)), 'invalid', `the leader n1 refuses "n3" at term ${term}`);
    const vote: Message = { type: 'vote', from: 'n3', to: 'n2', term, index: 100, logTerm: 1, transfer: true };
    t.equal(c.inject(vote), 'invalid', `a transfer vote at term ${term} (which bypasses the lease) is refused too`);
  }
  // In range, but a jump no correct peer makes: the term space would be spent in one frame.
  for (const term of [RAFT_NUMBER_LIMIT - 1, 2 + MAX_TERM_JUMP + 1]) {
    t.equal(c.inject(heartbeat('n1', 'n2', term)), 'invalid', `n2 refuses "n1" jumping to term ${term}`);
  }
  const append: Message = { type: 'app', from: 'n1', to: 'n2', term: 2, index: 4, logTerm: 2, commit: 5, entries: [{ type: 'normal', term: 2, index: RAFT_NUMBER_LIMIT, data: new Uint8Array(0) }] };
  t.equal(c.inject(append), 'invalid', 'an append whose entry sits at index 2^52 is refused');

  c.tickAll(50);
  t.same(view(c), before, 'after five election timeouts: the same leader, every term and every disk still at 2');
  t.match(c.propose('n1', 'after'), { ok: true, term: 2 }, 'and the leader commits at term 2');
  t.same(c.node('n3').applied.map((a) => a.text), ['after'], 'on every node');
  t.equal(c.inject(heartbeat('n1', 'n2', 2 + MAX_TERM_JUMP)), null, 'a jump of exactly MAX_TERM_JUMP is still taken (a correct peer far ahead)');
  t.equal(c.node('n2').raft.status().term, 2 + MAX_TERM_JUMP, 'and adopted');
});

t.test('a node already at term 2^52-1 never campaigns to 2^52', async (t) => {
  const boot = Raft.bootstrap(ids);
  const top = RAFT_NUMBER_LIMIT - 1;
  const initial: Record<NodeId, InitialState> = {};
  for (const id of ids) initial[id] = { ...structuredClone(boot), hardState: { ...boot.hardState, term: top } };
  const c = new Cluster(initial);
  c.tickAll(100);
  t.same(c.sent.filter((m) => m.term >= RAFT_NUMBER_LIMIT), [], 'no node ever sent a message at term 2^52');
  for (const id of ids) t.match(c.node(id).raft.status(), { role: 'follower', term: top }, `${id} stays a follower at 2^52-1`);
});

t.test('a node outside the configuration is refused by nodes that hear from a leader, whatever its term: nobody\'s term moves', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  const before = view(c);
  const strangers: Message[] = [
    heartbeat('x9', 'n2', 5),
    { type: 'app', from: 'x9', to: 'n3', term: 5, index: 4, logTerm: 2, commit: 4, entries: [] },
    { type: 'vote', from: 'x9', to: 'n2', term: 7, index: 100, logTerm: 6, transfer: true },
    { type: 'preVote', from: 'x9', to: 'n3', term: 7, index: 100, logTerm: 6, transfer: false },
    { type: 'timeoutNow', from: 'x9', to: 'n2', term: 2 },
    { type: 'appResp', from: 'x9', to: 'n1', term: 9, index: 0, reject: false, rejectHint: 0, logTerm: 0 },
    { type: 'readIndex', from: 'x9', to: 'n1', term: 2, ctx: 'r1' },
  ];
  for (const m of strangers) t.equal(c.inject(m), 'stranger', `${m.type} from x9 at term ${m.term} to ${m.to} is refused`);
  t.same(view(c), before, 'no term moved, the leader stays');
  t.same(c.node('n1').raft.status().progress?.x9, undefined, 'and the leader tracks no x9');
  t.equal(c.inject(heartbeat('n1', 'n2', 2)), null, 'the leader\'s own heartbeat is taken as ever');
});

t.test('a fresh node takes appends from a leader it does not know, catches up and is promoted', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  c.propose('n1', 'before n4');
  c.add('n4', Raft.empty());
  t.match(c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' }), { ok: true }, 'n1 adds n4 as a learner');
  t.same(c.refused, [], 'n4, knowing no configuration and no leader, took every message');
  t.match(c.node('n4').raft.status(), { role: 'follower', leader: 'n1', conf: { voters: ids, learners: ['n4'] } }, 'n4 follows n1 and knows the configuration');
  t.same(c.node('n4').applied.map((a) => a.text), ['before n4'], 'n4 applied the log');
  t.match(c.proposeConfChange('n1', { type: 'addVoter', node: 'n4' }), { ok: true }, 'and is promoted');
  t.same(c.node('n4').raft.status().conf.voters, ['n1', 'n2', 'n3', 'n4'], 'n4 is a voter in its own view');
});

t.test('a voter and a learner that missed the addition of the new leader follow it once their old leader falls silent', async (t) => {
  const c = new Cluster(ids);
  c.campaign('n1');
  c.add('n4', Raft.empty());
  c.proposeConfChange('n1', { type: 'addLearner', node: 'n4' });
  t.same(c.node('n4').raft.status().conf.learners, ['n4'], 'n4 is a learner, caught up');

  // n3 (a voter) and n4 (a learner) are cut off, without time passing for them: they
  // still count n1 as the leader they hear from.
  c.add('n5', Raft.empty());
  c.isolate('n3');
  c.isolate('n4');
  c.proposeConfChange('n1', { type: 'addLearner', node: 'n5' });
  c.proposeConfChange('n1', { type: 'addVoter', node: 'n5' });
  t.same(c.node('n1').raft.status().conf, { voters: ['n1', 'n2', 'n3', 'n5'], learners: ['n4'] }, 'n5 is a voter: committed by n1, n2, n5 (3 of 4)');
  t.ok(c.node('n1').raft.transferLeadership('n5'), 'n1 hands leadership to n5');
  c.settle();
  t.match(c.node('n5').raft.status(), { role: 'leader', term: 3 }, 'n5 leads term 3');
  t.same(c.node('n3').raft.status().conf.voters, ids, 'n3 never heard of n5');

  c.reconnect('n3');
  c.reconnect('n4');
  c.tick('n5');
  t.same(
    c.refused.filter((r) => r.includes('n5>')),
    ['stranger: heartbeat n5>n3 t3 commit 0', 'stranger: heartbeat n5>n4 t3 commit 0'],
    'while n3 and n4 still count on n1, the stranger n5 is refused',
  );
  // Their election timers run out: n3 campaigns in vain (n1 and n2 hear from n5), n4 just stops counting on n1.
  c.tickAll(30);
  for (const id of ['n3', 'n4']) {
    t.match(c.node(id).raft.status(), { role: 'follower', term: 3, leader: 'n5' }, `${id} follows n5 at term 3`);
    t.same(c.node(id).raft.status().conf, { voters: ['n1', 'n2', 'n3', 'n5'], learners: ['n4'] }, `${id} learned the configuration from n5's log`);
  }
  t.match(c.propose('n5', 'after'), { ok: true, term: 3 }, 'n5 commits');
  t.same(c.node('n3').applied.map((a) => a.text), ['after'], 'n3 applied it');
  t.same(c.node('n4').applied.map((a) => a.text), ['after'], 'n4 applied it');
});
