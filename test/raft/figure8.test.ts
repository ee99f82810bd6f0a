// Figure 8 of the Raft paper (extended version): "A time sequence showing why a leader
// cannot determine commitment using log entries from older terms."
//
// Our cluster is bootstrapped with five membership entries of term 1 (indices 1–5), and
// S1 wins term 2 with the no-op at index 6, which every node commits. Index 6 plays the
// figure's index 1 (on every server); our index 7 is the figure's index 2, the contested
// one, and our index 8 its index 3. The terms are the figure's: 2, 3, 4, 5. Each new
// leader appends a no-op of its term, so S5's entry "7/3" and S1's "8/4" are no-ops.
//
//   (a) S1 leads term 2 and replicates 7/2 ("x") to S2 only, then crashes.
//   (b) S5 is elected for term 3 by S3, S4, S5, appends 7/3, and crashes.
//   (c) S1 restarts, is elected for term 4, and replicates 7/2 to S3: S1, S2, S3 hold it,
//       a majority, yet it must not be committed.
//   (d) S1 crashes; S5 is elected for term 5 and overwrites index 7 with 7/3 everywhere.
//   (e) Instead, if S1 replicates an entry of its own term (8/4) to a majority before it
//       crashes, 7/2 and 8/4 are committed and S5 can no longer win.
import t, { type Test } from 'tap';
import { Cluster } from './cluster.js';
import type { Message, NodeId, RaftConfig } from '../../raft/types.js';

const ids = ['s1', 's2', 's3', 's4', 's5'];
const electionTicks = 10;

/**
 * S1 and S5 time out first (after electionTicks); the others only after 1.5 election
 * timeouts, so the script decides who campaigns. One entry per append
 * (maxSizePerMsgBytes: 1), so a drop filter can stop a follower at a given index.
 */
function overrides(id: NodeId, commitPriorTermEntriesByCount: boolean): Partial<RaftConfig> {
  return {
    electionTicks,
    random: () => (id === 's1' || id === 's5' ? 0 : 0.5),
    maxSizePerMsgBytes: 1,
    unsafe: { commitPriorTermEntriesByCount },
  };
}

/** The five servers, with crash (cut off, state kept on disk) and restart (from the disk). */
class Figure8 {
  readonly c: Cluster;
  private readonly down = new Set<NodeId>();

  constructor(readonly commitPriorTermEntriesByCount = false) {
    this.c = new Cluster(ids, (id) => overrides(id, commitPriorTermEntriesByCount));
  }

  crash(id: NodeId): void {
    this.c.isolate(id);
    this.down.add(id);
  }

  restart(id: NodeId): void {
    this.c.restart(id, overrides(id, this.commitPriorTermEntriesByCount));
    this.down.delete(id);
    this.c.reconnect(id);
    for (const other of this.down) this.c.isolate(other);
  }

  /** Followers stop honouring the crashed leader's lease once an election timeout passed without it. */
  leaseRunsOut(followers: NodeId[]): void {
    for (const id of followers) this.c.tick(id, electionTicks);
  }

  commit(id: NodeId): number {
    return this.c.node(id).raft.status().commit;
  }

  /** (a) S1 leads term 2; its proposal "x" becomes 7/2 and reaches S2 only; S1 crashes. */
  stepA(t: Test): void {
    const { c } = this;
    c.campaign('s1');
    t.match(c.node('s1').raft.status(), { role: 'leader', term: 2, commit: 6 }, '(a) S1 leads term 2; its no-op 6/2 is committed');
    c.drop((m) => m.type === 'app' && m.from === 's1' && m.to !== 's2');
    c.clearSent();
    t.match(c.propose('s1', 'x'), { ok: true, index: 7, term: 2 }, '(a) S1 appends "x" at 7/2');
    t.same(
      c.conversation((m) => m.type === 'appResp'),
      ['appResp s2>s1 t2 ok 7'],
      '(a) only S2 receives and acknowledges 7/2',
    );
    t.equal(this.commit('s1'), 6, '(a) 7/2 is on 2 of 5: not committed');
    t.same(c.logTerms('s2'), [1, 1, 1, 1, 1, 2, 2], '(a) S2 holds 7/2');
    for (const id of ['s3', 's4', 's5']) t.same(c.logTerms(id), [1, 1, 1, 1, 1, 2], `(a) ${id} ends at 6/2`);
    this.crash('s1');
  }

  /** (b) S5 is elected for term 3 by S3, S4 and itself, appends 7/3 only locally, and crashes. */
  stepB(t: Test): void {
    const { c } = this;
    this.leaseRunsOut(['s2', 's3', 's4']);
    c.drop((m) => m.type === 'app' && m.from === 's5');
    c.clearSent();
    c.campaign('s5');
    t.same(
      c.conversation((m) => m.type === 'voteResp'),
      ['voteResp s2>s5 t3 rejected', 'voteResp s3>s5 t3 granted', 'voteResp s4>s5 t3 granted'],
      '(b) S2 refuses S5 (its 7/2 is more up to date than 6/2); S3 and S4 vote for S5',
    );
    t.match(c.node('s5').raft.status(), { role: 'leader', term: 3 }, '(b) S5 leads term 3');
    t.same(c.logTerms('s5'), [1, 1, 1, 1, 1, 2, 3], '(b) S5 appended its no-op at 7/3, and nobody else has it');
    this.crash('s5');
  }

  /**
   * (c) S1 restarts and is elected for term 4. The network lets S1's appends through to
   * S2, and to S3 only up to index 7 (S3 sees the first probe, which it rejects, and 7/2).
   * S1's own no-op 8/4 thus reaches S2 (whose acknowledgement is how S1 learns S2 holds 7/2)
   * and not S3: S1, S2, S3 hold 7/2.
   */
  stepC(t: Test): void {
    const { c } = this;
    this.restart('s1');
    c.drop((m) => m.type === 'app' && m.from === 's1' && (m.to === 's4' || (m.to === 's3' && wouldLand(c, m, 8))));
    c.clearSent();
    c.campaign('s1');
    t.match(c.node('s1').raft.status(), { role: 'leader', term: 4 }, '(c) S1 leads term 4');
    t.same(
      c.conversation((m) => (m.type === 'app' || m.type === 'appResp') && (m.to === 's3' || m.from === 's3')),
      [
        'app s1>s3 t4 prev 7/2 [8/4] commit 6',
        'appResp s3>s1 t4 reject 7 hint 6/2',
        'app s1>s3 t4 prev 6/2 [7/2"x"] commit 6',
        'appResp s3>s1 t4 ok 7',
        // Dropped: the no-op 8/4 never lands on S3. (With the unsafe knob, S1 committed
        // 7/2 on S3's acknowledgement, and says so.)
        `app s1>s3 t4 prev 7/2 [8/4] commit ${this.commitPriorTermEntriesByCount ? 7 : 6}`,
      ],
      '(c) S1 replicates 7/2 to S3',
    );
    t.same(c.logTerms('s1'), [1, 1, 1, 1, 1, 2, 2, 4], '(c) S1 holds 7/2 and its no-op 8/4');
    t.same(c.logTerms('s2'), [1, 1, 1, 1, 1, 2, 2, 4], '(c) S2 holds 7/2 and 8/4');
    t.same(c.logTerms('s3'), [1, 1, 1, 1, 1, 2, 2], '(c) S3 holds 7/2');
    t.match(
      c.node('s1').raft.status().progress,
      { s1: { match: 8 }, s2: { match: 8 }, s3: { match: 7 }, s4: { match: 0 }, s5: { match: 0 } },
      '(c) S1 knows that S1, S2 and S3, a majority, hold index 7',
    );
  }
}

/** `m` is an append its receiver will accept (it holds m.index at m.logTerm) and that reaches `index`. */
function wouldLand(c: Cluster, m: Message, index: number): boolean {
  if (m.type !== 'app') return false;
  const prev = c.node(m.to).disk.entries.find((e) => e.index === m.index);
  return prev?.term === m.logTerm && m.entries.some((e) => e.index >= index);
}

t.test('Figure 8 (a)–(d): an entry of an earlier term on a majority is not committed, and indeed gets overwritten', async (t) => {
  const f = new Figure8();
  f.stepA(t);
  f.stepB(t);
  f.stepC(t);
  t.equal(f.commit('s1'), 6, '(c) S1 does NOT commit 7/2 by counting replicas: it is of term 2, S1 leads term 4');
  for (const id of ids) t.notOk(f.c.node(id).applied.some((e) => e.index === 7), `(c) ${id} applied nothing at index 7`);

  // (d) S1 crashes again; S5 restarts and wins term 5 with S3's and S4's votes.
  const { c } = f;
  f.crash('s1');
  f.restart('s5');
  c.drop(() => false);
  f.leaseRunsOut(['s2', 's3', 's4']);
  c.clearSent();
  c.campaign('s5');
  t.match(c.node('s5').raft.status(), { role: 'leader', term: 5, commit: 8 }, '(d) S5 leads term 5 and commits its no-op 8/5');
  t.same(
    c.conversation((m) => m.type === 'voteResp'),
    ['voteResp s2>s5 t5 rejected', 'voteResp s3>s5 t5 granted', 'voteResp s4>s5 t5 granted'],
    '(d) S3 and S4 hold only 7/2, older than S5\'s 7/3: they vote for S5',
  );
  t.same(
    c.conversation((m) => m.type === 'app' && m.to === 's3'),
    ['app s5>s3 t5 prev 7/3 [8/5] commit 6', 'app s5>s3 t5 prev 6/2 [7/3] commit 6', 'app s5>s3 t5 prev 7/3 [8/5] commit 6', 'app s5>s3 t5 prev 8/5 [] commit 8'],
    '(d) S5 backs up to index 6 on S3 and sends its 7/3 in place of 7/2',
  );
  for (const id of ['s2', 's3', 's4', 's5']) {
    t.same(c.logTerms(id), [1, 1, 1, 1, 1, 2, 3, 5], `(d) ${id}: 7/2 (and S2's 8/4) overwritten by 7/3 and 8/5`);
    t.equal(f.commit(id), 8, `(d) ${id} committed 7/3 and 8/5`);
  }

  // S1 comes back: it too loses 7/2 and 8/4.
  f.restart('s1');
  c.tick('s5');
  t.same(c.logTerms('s1'), [1, 1, 1, 1, 1, 2, 3, 5], '(d) S1, back, has 7/2 and 8/4 replaced by 7/3 and 8/5');
  for (const id of ids) {
    t.notOk(c.node(id).applied.some((e) => e.text === 'x'), `(d) ${id} never applied "x" (7/2): it was never committed`);
  }
});

t.test('Figure 8 (e): once an entry of the leader\'s term is on a majority, it and the earlier 7/2 are committed for good', async (t) => {
  const f = new Figure8();
  f.stepA(t);
  f.stepB(t);
  const { c } = f;
  f.restart('s1');
  c.drop((m) => m.type === 'app' && m.from === 's1' && m.to === 's4');
  c.campaign('s1');
  t.match(c.node('s1').raft.status(), { role: 'leader', term: 4, commit: 8 }, '(e) S1 leads term 4 and its no-op 8/4 reached S2 and S3: commit 8');
  for (const id of ['s1', 's2', 's3']) {
    t.same(c.logTerms(id), [1, 1, 1, 1, 1, 2, 2, 4], `(e) ${id} holds 7/2 and 8/4`);
    t.same(c.node(id).applied, [{ index: 7, term: 2, text: 'x' }], `(e) ${id} applied "x" at 7/2, committed along with 8/4`);
  }

  // S1 crashes. S5 (7/3) can no longer win: S2 and S3 hold 8/4, more up to date.
  f.crash('s1');
  f.restart('s5');
  c.drop(() => false);
  const s5Led: number[] = [];
  for (let tick = 1; tick <= 4 * electionTicks; tick++) {
    c.tickAll();
    if (c.node('s5').raft.status().role === 'leader') s5Led.push(tick);
  }
  t.same(s5Led, [], '(e) S5 never becomes leader in four election timeouts');
  const leader = c.leader();
  t.ok(leader?.id === 's2' || leader?.id === 's3', `(e) a server holding 8/4 leads instead (leader: ${leader?.id})`);
  for (const id of ['s2', 's3', 's4', 's5']) {
    t.same(c.logTerms(id).slice(0, 8), [1, 1, 1, 1, 1, 2, 2, 4], `(e) ${id} holds 7/2 and 8/4`);
    t.same(c.node(id).applied, [{ index: 7, term: 2, text: 'x' }], `(e) ${id} applied "x" at 7/2, never 7/3`);
  }
});

t.test('with unsafe.commitPriorTermEntriesByCount, S1 commits 7/2 early in (c), and (d) then breaks State Machine Safety', async (t) => {
  const f = new Figure8(true);
  f.stepA(t);
  f.stepB(t);
  f.stepC(t);
  const { c } = f;
  t.equal(f.commit('s1'), 7, '(c) with the knob, S1 commits 7/2 on counting S1, S2, S3');
  for (const id of ['s1', 's2']) t.same(c.node(id).applied, [{ index: 7, term: 2, text: 'x' }], `(c) ${id} applied "x" at 7/2`);

  // (d) S1 crashes and S2 is cut off (were S2 reachable, S5 would try forever to repair
  // a log that claims 7/2 committed); S5 wins term 5 with S3 and S4 and commits 7/3.
  f.crash('s1');
  f.crash('s2');
  f.restart('s5');
  c.drop(() => false);
  f.leaseRunsOut(['s3', 's4']);
  c.campaign('s5');
  t.match(c.node('s5').raft.status(), { role: 'leader', term: 5, commit: 8 }, '(d) S5 leads term 5 and commits 7/3 and 8/5');
  for (const id of ['s3', 's4', 's5']) t.same(c.logTerms(id), [1, 1, 1, 1, 1, 2, 3, 5], `(d) ${id} committed 7/3 at index 7`);
  t.same(
    ids.map((id) => `${id}: ${c.node(id).disk.entries[6]?.term}`),
    ['s1: 2', 's2: 2', 's3: 3', 's4: 3', 's5: 3'],
    'index 7 is committed with two different entries: S1 and S2 applied "x" (7/2), the majority committed 7/3',
  );
});
