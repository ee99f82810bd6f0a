// A leader's quorum contact (src/node/quorum-contact.ts) credits each voter with the
// SEND time of the heartbeat round it answered: a late answer must not stretch the
// leader's authority, and answers that name no round of its own credit nothing.
import t from 'tap';
import type { Message, RaftStatus } from '../../raft/types.js';
import { QuorumContact } from '../../src/node/quorum-contact.js';

const WINDOW_MS = 600;

function leaderStatus(term = 3, voters = ['n1', 'n2', 'n3']): RaftStatus {
  return { role: 'leader', term, conf: { voters, learners: [] } } as unknown as RaftStatus;
}

const heartbeat = (to: string, ctx: string | null, term = 3): Message => ({ type: 'heartbeat', from: 'n1', to, term, commit: 0, ctx });
const answer = (from: string, ctx: string | null, term = 3): Message => ({ type: 'heartbeatResp', from, to: 'n1', term, ctx });

t.test('an answer counts from when the heartbeat it answers was sent, however late it arrives', async (t) => {
  const c = new QuorumContact('n1');
  const ctx = c.nextProbeCtx();
  c.noteSent([heartbeat('n2', ctx), heartbeat('n3', ctx)], 1000);
  t.notOk(c.has(leaderStatus(), WINDOW_MS, 1000), 'no answer yet: only itself');
  c.noteAnswer('n2', answer('n2', ctx), 1000 + WINDOW_MS);
  t.ok(c.has(leaderStatus(), WINDOW_MS, 1000 + WINDOW_MS), 'contact up to the window after the send');
  t.notOk(c.has(leaderStatus(), WINDOW_MS, 1000 + WINDOW_MS + 1), 'not a millisecond later, even though the answer arrived just now');

  const unsafe = new QuorumContact('n1', true);
  unsafe.noteAnswer('n2', answer('n2', ctx), 1000 + WINDOW_MS);
  t.ok(unsafe.has(leaderStatus(), WINDOW_MS, 1000 + 2 * WINDOW_MS), 'the unsafe knob credits the arrival: the late answer stretches the contact');
});

t.test('appends, heartbeats without a ctx and rounds it never sent credit nothing', async (t) => {
  const c = new QuorumContact('n1');
  c.noteSent([heartbeat('n2', null)], 1000);
  c.noteAnswer('n2', answer('n2', null), 0);
  c.noteAnswer('n2', { type: 'appResp', from: 'n2', to: 'n1', term: 3, index: 5, reject: false, rejectHint: 0, logTerm: 0 }, 0);
  c.noteAnswer('n2', answer('n2', 'n9:q1'), 0);
  t.notOk(c.has(leaderStatus(), WINDOW_MS, 1000), 'no contact');
});

t.test('a newer round answered moves the credit forward, an older one never back; another term counts not', async (t) => {
  const c = new QuorumContact('n1');
  const first = c.nextProbeCtx();
  const second = c.nextProbeCtx();
  c.noteSent([heartbeat('n2', first)], 1000);
  c.noteSent([heartbeat('n2', second)], 1300);
  c.noteSent([heartbeat('n2', first)], 1500);
  c.noteAnswer('n2', answer('n2', second), 0);
  c.noteAnswer('n2', answer('n2', first), 0);
  t.ok(c.has(leaderStatus(), WINDOW_MS, 1300 + WINDOW_MS), 'the newer round holds');
  t.notOk(c.has(leaderStatus(), WINDOW_MS, 1300 + WINDOW_MS + 1), "a round's time is its first send");
  t.notOk(c.has(leaderStatus(4), WINDOW_MS, 1300), 'answers of term 3 prove nothing in term 4');
  c.noteAnswer('n2', answer('n2', first, 2), 1400);
  t.ok(c.has(leaderStatus(), WINDOW_MS, 1300), 'a stale answer of an older term does not replace the credit');
  t.notOk(c.has({ ...leaderStatus(), role: 'follower' } as RaftStatus, WINDOW_MS, 1300), 'a follower has no contact of its own');
});

t.test('a quorum of five needs two answers besides the leader', async (t) => {
  const c = new QuorumContact('n1');
  const voters = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const ctx = c.nextProbeCtx();
  c.noteSent(voters.slice(1).map((v) => heartbeat(v, ctx)), 0);
  c.noteAnswer('n2', answer('n2', ctx), 0);
  t.notOk(c.has(leaderStatus(3, voters), WINDOW_MS, 10));
  c.noteAnswer('n4', answer('n4', ctx), 0);
  t.ok(c.has(leaderStatus(3, voters), WINDOW_MS, 10));
  t.ok(c.isProbe(ctx) && !c.isProbe('n1:r7'), "its probes are told apart from a client's reads");
});
