// Which blobs a node re-replicates after holders are lost (src/blobs/repair.ts).
import t from 'tap';
import { type RepairTask, repairsFor, resumingCheckpoints, ResumeYield } from '../../src/blobs/repair.js';
import type { Command } from '../../src/state/commands.js';
import { assign, checkpoint, join, Log, submit } from './state-fixtures.js';

function withInputs(id: string, inputs: Record<string, string>): Command {
  const cmd = submit(id, { files: Object.keys(inputs) }) as Extract<Command, { type: 'submitJob' }>;
  return { ...cmd, job: { ...cmd.job, inputs } } as Command;
}

t.test('a live blob with one live copy left is copied again by its first alive holder, resume points first', async (t) => {
  const log = new Log();
  for (const n of ['n1', 'n2', 'n3', 'n4']) log.ok(join(n));
  log.ok({ type: 'blobAdded', id: 'input-a', kind: 'input', bytes: 10, holders: ['n1', 'n2'] } as Command);
  log.ok(withInputs('j1', { 'a.txt': 'input-a' }));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n3']));
  log.ok({ type: 'blobAdded', id: 'orphan', kind: 'input', bytes: 10, holders: ['n1'] } as Command);

  t.same(repairsFor(log.state, 'n1', 2), [], 'every needed blob has two live copies; an unreferenced one is not repaired');
  log.ok({ type: 'nodeLost', node: 'n1' });
  const n2 = repairsFor(log.state, 'n2', 2);
  t.same(n2.map((r) => [r.blob.id, r.targets, r.missing]), [['input-a', ['n3', 'n4'], 1]], 'n2, the first alive holder of the input, copies it to the alive nodes without it');
  const n3 = repairsFor(log.state, 'n3', 2);
  t.same(n3.map((r) => r.blob.id), ['ckpt-j1-1-1'], 'n3, the checkpoint’s last holder, copies it');
  t.same(n3[0]?.targets, ['n2', 'n4'], 'to alive nodes that lack it');
  t.same(repairsFor(log.state, 'n4', 2), [], 'a node that holds nothing has nothing to repair');

  log.ok({ type: 'blobAdded', id: 'ckpt-j1-1-1', kind: 'checkpoint', bytes: 1000, holders: ['n4'] } as Command);
  t.same(repairsFor(log.state, 'n3', 2), [], 'repaired once the new holder is recorded');
  log.ok({ type: 'nodeLost', node: 'n3' });
  log.ok({ type: 'nodeLost', node: 'n4' });
  t.same(repairsFor(log.state, 'n2', 2).map((r) => r.blob.id), [], 'no live holder of the checkpoint: nothing anyone can do; the input has no target left');
});

t.test('several blobs: checkpoints before inputs, and only the first alive holder repairs', async (t) => {
  const log = new Log();
  for (const n of ['n1', 'n2', 'n3']) log.ok(join(n));
  log.ok({ type: 'blobAdded', id: 'input-b', kind: 'input', bytes: 10, holders: ['n1', 'n2', 'n3'] } as Command);
  log.ok(withInputs('j1', { 'b.txt': 'input-b' }));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n2']));
  log.ok({ type: 'blobAdded', id: 'input-c', kind: 'input', bytes: 10, holders: ['n1', 'n2'] } as Command);
  log.ok(withInputs('j2', { 'c.txt': 'input-c' }));
  log.ok({ type: 'nodeLost', node: 'n1' });
  t.same(repairsFor(log.state, 'n2', 2).map((r) => r.blob.id), ['ckpt-j1-1-1', 'input-c'], 'the checkpoint first; input-b still has two live copies');
  t.same(repairsFor(log.state, 'n3', 2), [], 'n3 is not the first alive holder of any of them');
});

t.test('a checkpoint is marked resuming from its node’s loss until the new attempt started; other kinds never', async (t) => {
  const log = new Log();
  for (const n of ['n1', 'n2', 'n3']) log.ok(join(n));
  log.ok({ type: 'blobAdded', id: 'input-a', kind: 'input', bytes: 10, holders: ['n1', 'n2'] } as Command);
  log.ok(withInputs('j1', { 'a.txt': 'input-a' }));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n2']));
  t.same([...resumingCheckpoints(log.state)], [], 'running and started: nothing resumes');
  log.ok({ type: 'nodeLost', node: 'n1' });
  const marks = (): Array<[string, boolean]> => repairsFor(log.state, 'n2', 2).map((r) => [r.blob.id, r.resuming]);
  t.same(marks(), [['ckpt-j1-1-1', true], ['input-a', false]], 'pending after the loss: its checkpoint resumes, its input is a plain repair');
  log.ok(assign('j1', 'n2', 2, { seq: 1, epoch: 1 }));
  t.same(marks(), [['ckpt-j1-1-1', true], ['input-a', false]], 'assigned, not started yet: still resuming');
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 2, node: 'n2' });
  t.same(marks(), [['ckpt-j1-1-1', false], ['input-a', false]], 'started: an ordinary repair');
});

t.test('ResumeYield holds a resuming task from the first pass that saw it, at most its bound', async (t) => {
  const task = (id: string, resuming: boolean): RepairTask => ({ blob: { id, kind: 'checkpoint' } as RepairTask['blob'], targets: ['n3'], missing: 1, resuming });
  const y = new ResumeYield(1000);
  const ids = (r: { now: RepairTask[]; waiting: RepairTask[] }): [string[], string[]] => [r.now.map((x) => x.blob.id), r.waiting.map((x) => x.blob.id)];
  t.same(ids(y.due([task('a', true), task('b', false)], 5000)), [['b'], ['a']], 'the resuming one waits, the other goes');
  t.same(ids(y.due([task('a', true)], 5999)), [[], ['a']], 'still within the bound');
  t.same(ids(y.due([task('a', true)], 6000)), [['a'], []], 'due at the bound');
  t.same(ids(y.due([task('a', false)], 6001)), [['a'], []], 'no longer resuming: due, and forgotten');
  t.same(ids(y.due([task('a', true)], 6002)), [[], ['a']], 'a new resume of it is held again from now');
});
