// Figure 7 of the Raft paper (extended version): "When the leader at the top comes to
// power, it is possible that any of scenarios (a–f) could occur in follower logs."
// The leader of term 8 must make every follower's log identical to its own: fill in
// what is missing (a, b, e), and replace uncommitted entries it does not have (c, d, f).
// The follower's rejection hint (etcd-io/raft's fast backtracking) lets the leader skip
// whole terms of divergence, so no follower costs more than one rejected append.
import t from 'tap';
import { Cluster, text } from './cluster.js';
import type { Entry, InitialState, Message, NodeId } from '../../raft/types.js';

/** Log terms, indices 1 on, as drawn in the figure. */
const figure: Record<NodeId, number[]> = {
  leader: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6],
  a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
  b: [1, 1, 1, 4],
  c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
  d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
  e: [1, 1, 1, 4, 4, 4, 4],
  f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
};

/** Each node's current term before the election: (d) has seen term 7, and the leader-to-be with it. */
const currentTerm: Record<NodeId, number> = { leader: 7, a: 6, b: 4, c: 6, d: 7, e: 4, f: 3 };

const ids = Object.keys(figure).sort();
const followers = ids.filter((id) => id !== 'leader');

/**
 * The figure as persisted state. Every node starts from an empty snapshot at index 0
 * whose membership lists all seven as voters, then holds its drawn entries. The data
 * of an entry names its place (`index@term`), so the same entry is byte-identical on
 * every node that holds it. Only the first three entries are known committed.
 */
function figure7(): Cluster {
  const states: Record<NodeId, InitialState> = {};
  for (const id of ids) {
    const entries: Entry[] = (figure[id] ?? []).map((term, i) => ({ type: 'normal', term, index: i + 1, data: text(`${i + 1}@${term}`) }));
    states[id] = {
      hardState: { term: currentTerm[id] ?? 0, vote: null, commit: 3 },
      snapshot: { meta: { index: 0, term: 0, conf: { voters: ids, learners: [] } }, data: new Uint8Array(0) },
      entries,
      applied: 0,
    };
  }
  const c = new Cluster(states);
  for (const id of ids) {
    const terms = c.logTerms(id).join(',');
    if (terms !== figure[id]?.join(',')) throw new Error(`setup: ${id} should hold the log of the figure, holds [${terms}]`);
  }
  return c;
}

const between = (follower: NodeId) => (m: Message) =>
  (m.type === 'app' || m.type === 'appResp') && (m.from === follower || m.to === follower);

t.test('the leader of term 8 is elected by (a), (b), (e), (f); (c) and (d) refuse because their logs are more up to date', async (t) => {
  const c = figure7();
  c.campaign('leader');
  t.equal(c.node('leader').raft.status().role, 'leader', 'the leader-to-be won');
  t.equal(c.node('leader').raft.status().term, 8, 'at term 8');
  t.same(
    c.conversation((m) => m.type === 'voteResp'),
    [
      'voteResp a>leader t8 granted',
      'voteResp b>leader t8 granted',
      'voteResp c>leader t8 rejected', // c's last entry 11/6 is beyond the candidate's 10/6
      'voteResp d>leader t8 rejected', // d's last term 7 is beyond the candidate's 6
      'voteResp e>leader t8 granted',
      'voteResp f>leader t8 granted',
    ],
    'the votes follow the up-to-date rule of §5.4.1',
  );
});

t.test('every follower ends with the leader log: missing entries filled in, uncommitted extra entries replaced', async (t) => {
  const c = figure7();
  c.campaign('leader');
  // The leader's log with the no-op it appended when it won term 8.
  const expected = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 8];
  t.same(c.logTerms('leader'), expected, 'the leader appended the no-op of term 8 at index 11');
  for (const id of followers) {
    t.same(c.logTerms(id), expected, `(${id}) holds exactly the leader's log`);
    const leaderData = c.node('leader').disk.entries.map((e) => (e.type === 'normal' ? e.data.join(',') : ''));
    const data = c.node(id).disk.entries.map((e) => (e.type === 'normal' ? e.data.join(',') : ''));
    t.same(data, leaderData, `(${id}) holds the leader's entries, byte for byte`);
    t.equal(c.node(id).raft.status().commit, 11, `(${id}) learned that the no-op, and with it everything before, is committed`);
    t.equal(c.node(id).raft.status().term, 8, `(${id}) is at term 8`);
  }
  t.notOk(
    c.node('d').disk.entries.some((e) => e.term === 7),
    '(d) lost both entries of term 7: they were never committed and the leader of term 8 does not have them',
  );
  t.notOk(
    c.node('f').disk.entries.some((e) => e.term === 2 || e.term === 3),
    '(f) lost its eight entries of terms 2 and 3 (indices 4–11)',
  );
  for (const id of ids) {
    t.same(
      c.node(id).applied.map((a) => a.text),
      ['1@1', '2@1', '3@1', '4@4', '5@4', '6@5', '7@5', '8@6', '9@6', '10@6'],
      `${id} applied the leader's entries 1–10, and none of the replaced ones`,
    );
  }
});

t.test('fast backtracking: each follower costs at most one rejected append, however long its divergence', async (t) => {
  const c = figure7();
  c.campaign('leader');
  // Every follower first gets the same probe: the no-op, after the leader's last entry 10/6.
  // A rejection carries the follower's hint: its largest index ≤ min(10, its last) whose
  // term is ≤ 6. The leader then jumps to its own largest index ≤ hint with term ≤ the
  // hint's term and sends everything after it.
  const conversations: Record<NodeId, string[]> = {
    // (a) lacks only entry 10: hint 9/6, the leader has 9/6 too and sends 10 and 11.
    a: [
      'app leader>a t8 prev 10/6 [11/8] commit 3',
      'appResp a>leader t8 reject 10 hint 9/6',
      'app leader>a t8 prev 9/6 [10/6"10@6" 11/8] commit 3',
      'appResp a>leader t8 ok 11',
      'app leader>a t8 prev 11/8 [] commit 11',
      'appResp a>leader t8 ok 11',
    ],
    // (b) stops at index 4: hint 4/4, the leader has 4/4 and sends 5 to 11 in one append.
    b: [
      'app leader>b t8 prev 10/6 [11/8] commit 3',
      'appResp b>leader t8 reject 10 hint 4/4',
      'app leader>b t8 prev 4/4 [5/4"5@4" 6/5"6@5" 7/5"7@5" 8/6"8@6" 9/6"9@6" 10/6"10@6" 11/8] commit 3',
      'appResp b>leader t8 ok 11',
      'app leader>b t8 prev 11/8 [] commit 11',
      'appResp b>leader t8 ok 11',
    ],
    // (c) matches at 10/6: its extra 11/6 conflicts with the no-op 11/8 and is replaced.
    // The leader follows the acknowledgement of a probe with an empty append (the
    // follower was paused), then tells it the new commit index.
    c: [
      'app leader>c t8 prev 10/6 [11/8] commit 3',
      'appResp c>leader t8 ok 11',
      'app leader>c t8 prev 11/8 [] commit 3',
      'appResp c>leader t8 ok 11',
      'app leader>c t8 prev 11/8 [] commit 11',
      'appResp c>leader t8 ok 11',
    ],
    // (d) matches at 10/6: 11/7 conflicts with 11/8, so 11/7 and 12/7 are dropped.
    d: [
      'app leader>d t8 prev 10/6 [11/8] commit 3',
      'appResp d>leader t8 ok 11',
      'app leader>d t8 prev 11/8 [] commit 3',
      'appResp d>leader t8 ok 11',
      'app leader>d t8 prev 11/8 [] commit 11',
      'appResp d>leader t8 ok 11',
    ],
    // (e) has 4/4 up to index 7: hint 7/4; the leader's largest index with term ≤ 4 is
    // 5, so it sends 6 to 11, replacing (e)'s 6/4 and 7/4.
    e: [
      'app leader>e t8 prev 10/6 [11/8] commit 3',
      'appResp e>leader t8 reject 10 hint 7/4',
      'app leader>e t8 prev 5/4 [6/5"6@5" 7/5"7@5" 8/6"8@6" 9/6"9@6" 10/6"10@6" 11/8] commit 3',
      'appResp e>leader t8 ok 11',
      'app leader>e t8 prev 11/8 [] commit 11',
      'appResp e>leader t8 ok 11',
    ],
    // (f) diverged at index 4: hint 10/3 (its entry 10 has term 3 ≤ 6); the leader's
    // largest index with term ≤ 3 is 3, so one append replaces all of 4–11.
    f: [
      'app leader>f t8 prev 10/6 [11/8] commit 3',
      'appResp f>leader t8 reject 10 hint 10/3',
      'app leader>f t8 prev 3/1 [4/4"4@4" 5/4"5@4" 6/5"6@5" 7/5"7@5" 8/6"8@6" 9/6"9@6" 10/6"10@6" 11/8] commit 3',
      'appResp f>leader t8 ok 11',
      'app leader>f t8 prev 11/8 [] commit 11',
      'appResp f>leader t8 ok 11',
    ],
  };
  for (const id of followers) {
    t.same(c.conversation(between(id)), conversations[id], `(${id}): the exact append conversation with the leader`);
  }
  // Round trips until the follower holds the leader's log: appends sent up to its first acceptance.
  const roundTrips = (id: NodeId) => {
    const talk = c.sent.filter(between(id));
    const accepted = talk.findIndex((m) => m.type === 'appResp' && !m.reject);
    return talk.slice(0, accepted).filter((m) => m.type === 'app').length;
  };
  t.same(
    Object.fromEntries(followers.map((id) => [id, roundTrips(id)])),
    { a: 2, b: 2, c: 1, d: 1, e: 2, f: 2 },
    'two round trips at most per follower, whatever the length of its divergence',
  );
  const rejections = (id: NodeId) => c.sent.filter((m) => m.type === 'appResp' && m.from === id && m.reject).length;
  t.same(
    Object.fromEntries(followers.map((id) => [id, rejections(id)])),
    { a: 1, b: 1, c: 0, d: 0, e: 1, f: 1 },
    'one rejection at most per follower; backtracking one entry per round trip would have cost (f) eight',
  );
});
