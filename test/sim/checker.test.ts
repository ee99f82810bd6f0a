// The checker must be able to fail: each invariant, fed a hand-made history that breaks
// it, reports that invariant (and a history that keeps it passes).
import t, { type Test } from 'tap';
import type { Entry } from '../../raft/types.js';
import { Checker, InvariantViolation, type Invariant } from './checker.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const e = (index: number, term: number, data = `e${index}`): Entry => ({ type: 'normal', index, term, data: bytes(data) });

type Tapt = Test;

function throwsInvariant(t: Tapt, invariant: Invariant, fn: () => void, detail?: RegExp): void {
  try {
    fn();
  } catch (err) {
    t.type(err, InvariantViolation);
    t.equal((err as InvariantViolation).invariant, invariant, (err as Error).message);
    if (detail) t.match((err as Error).message, detail);
    return;
  }
  t.fail(`expected a ${invariant} violation, got none`);
}

/** Nodes that hold `entries` and applied all of them, in term `term`. */
function committedOn(c: Checker, nodes: string[], entries: Entry[], term: number): void {
  for (const n of nodes) {
    c.loadLog(n, null, []);
    c.restartApplication(n, 0, 0);
    c.appendEntries(n, entries);
    for (const x of entries) c.applyEntry(n, x, term);
  }
}

t.test('election safety: two leaders of one term are reported; one leader per term is fine', async (t) => {
  const c = new Checker();
  committedOn(c, ['1', '2'], [], 1);
  c.observeRole('1', 'leader', 5);
  c.observeRole('1', 'leader', 5);
  c.observeRole('2', 'leader', 6);
  c.observeRole('2', 'follower', 5);
  throwsInvariant(t, 'election safety', () => c.observeRole('2', 'leader', 5), /1 and 2 are both leaders of term 5/);
});

t.test('log matching: the same (index, term) with different content is reported', async (t) => {
  const c = new Checker();
  c.loadLog('1', null, [e(1, 1, 'a'), e(2, 2, 'b')]);
  c.loadLog('2', null, [e(1, 1, 'a')]);
  c.appendEntries('2', [e(2, 2, 'b')]); // identical: fine
  throwsInvariant(t, 'log matching', () => c.loadLog('3', null, [e(1, 1, 'x')]), /node 3 holds entry 1 of term 1/);
});

t.test('log matching: a differing earlier entry under an equal (index, term) is reported', async (t) => {
  const c = new Checker();
  c.loadLog('1', null, [e(1, 1, 'a'), e(2, 1, 'b'), e(3, 2, 'c')]);
  c.loadLog('2', null, [e(1, 1, 'a'), e(2, 1, 'b')]);
  // Node 2's entry 2 is replaced by one of term 2 (legal), then (3,2) arrives: its prefix differs from node 1's.
  c.appendEntries('2', [e(2, 2, 'z')]);
  throwsInvariant(t, 'log matching', () => c.appendEntries('2', [e(3, 2, 'c')]), /entry 3 of term 2/);
});

t.test('leader completeness: a leader of a later term without a committed entry is reported', async (t) => {
  const c = new Checker();
  committedOn(c, ['1'], [e(1, 1), e(2, 1), e(3, 2)], 2);
  c.loadLog('2', null, [e(1, 1), e(2, 1)]);
  c.observeRole('2', 'leader', 2); // same term as the commit observation: not required to hold it
  c.loadLog('3', null, [e(1, 1), e(2, 1), e(3, 2)]);
  c.observeRole('3', 'leader', 3); // holds it: fine
  throwsInvariant(t, 'leader completeness', () => c.observeRole('2', 'leader', 4), /node 2 leads term 4 but lacks committed entry 3/);
});

t.test('leader completeness: a different entry at the committed index is reported', async (t) => {
  const c = new Checker();
  committedOn(c, ['1'], [e(1, 1), e(2, 1)], 1);
  c.loadLog('2', null, [e(1, 1), e(2, 2, 'other')]);
  throwsInvariant(t, 'leader completeness', () => c.observeRole('2', 'leader', 3), /lacks committed entry 2/);
});

t.test('state machine safety: two nodes applying different entries at one index is reported', async (t) => {
  const c = new Checker();
  committedOn(c, ['1'], [e(1, 1, 'a')], 1);
  c.loadLog('2', null, [e(1, 2, 'b')]);
  c.restartApplication('2', 0, 0);
  throwsInvariant(t, 'state machine safety', () => c.applyEntry('2', e(1, 2, 'b'), 2), /another node applied a different entry/);
});

t.test('state machine safety: an index applied twice, a gap, or an entry not in the log is reported', async (t) => {
  const c = new Checker();
  committedOn(c, ['1'], [e(1, 1), e(2, 1)], 1);
  throwsInvariant(t, 'state machine safety', () => c.applyEntry('1', e(2, 1), 1), /entry 2 to apply after applying 2/);
  c.appendEntries('1', [e(3, 1), e(4, 1)]);
  throwsInvariant(t, 'state machine safety', () => c.applyEntry('1', e(4, 1), 1), /after applying 2/);
  throwsInvariant(t, 'state machine safety', () => c.applyEntry('1', e(3, 1, 'not what the log holds'), 1), /not the one in its log/);
});

t.test('state machine safety: a snapshot whose state differs from the committed prefix is reported', async (t) => {
  const c = new Checker();
  committedOn(c, ['1'], [e(1, 1), e(2, 1)], 1);
  c.loadLog('2', null, []);
  c.restartApplication('2', 0, 0);
  throwsInvariant(t, 'state machine safety', () => c.applySnapshot('2', 2, 1, 12345), /differs from the committed prefix/);
  throwsInvariant(t, 'state machine safety', () => c.restartApplication('3', 5, 0), /no node ever applied 5/);
});

t.test('applied twice: one request applied as new at two indexes is reported', async (t) => {
  const c = new Checker();
  c.applyCommand('1', 'c1', 7, 4, true);
  c.applyCommand('2', 'c1', 7, 4, true); // another node, same index: fine
  c.applyCommand('1', 'c1', 7, 6, false); // deduplicated copy: fine
  throwsInvariant(t, 'applied twice', () => c.applyCommand('2', 'c1', 7, 9, true), /c1#7 was applied as new at index 4 and again at 9/);
});

t.test('acknowledged proposal lost: an acknowledged request nobody applied is reported at the end', async (t) => {
  const c = new Checker();
  c.acknowledge('c1', 1, 3);
  c.applyCommand('1', 'c1', 1, 3, true);
  c.checkAcknowledgedDurable();
  c.acknowledge('c2', 1, 5);
  throwsInvariant(t, 'acknowledged proposal lost', () => c.checkAcknowledgedDurable(), /c2#1 was acknowledged at index 5/);
});

t.test('linearizable read: a read index below a write acknowledged before the read is reported', async (t) => {
  const c = new Checker();
  c.acknowledge('c1', 1, 10);
  c.readIssued('c2r1', 'c2');
  c.readIssued('c2r2', 'c2');
  c.readServed('1', 'c2r1', 10);
  throwsInvariant(t, 'linearizable read', () => c.readServed('2', 'c2r2', 9), /read index 9.*index 10/);
  c.acknowledge('c1', 2, 20);
  c.readServed('1', 'c2r1', 3); // already served: a duplicate answer is ignored
});

t.test('ready contract: entries that leave a gap, or a last index the readies do not explain, are reported', async (t) => {
  const c = new Checker();
  c.loadLog('1', null, [e(1, 1)]);
  throwsInvariant(t, 'ready contract', () => c.appendEntries('1', [e(3, 1)]), /entries from 3/);
  throwsInvariant(t, 'ready contract', () => c.checkLastIndex('1', 2), /reports last index 2/);
  c.checkLastIndex('1', 1);
});
