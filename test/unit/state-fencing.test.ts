// Fencing: a worker's report (started, exited, checkpoint) counts only if it comes
// from the job's current attempt (its epoch, its node, still open). A job's result
// is accepted exactly once, whatever a partitioned or revived node says.
import t from 'tap';
import type { Command } from '../../src/state/commands.js';
import { assign, checkpoint, join, Log, submit, T0 } from './state-fixtures.js';

/** j1 ran on n1 (epoch 1, checkpoint 1), n1 was lost, j1 now runs on n2 (epoch 2). */
function moved(): Log {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n2']));
  log.ok({ type: 'nodeLost', node: 'n1' });
  log.ok(assign('j1', 'n2', 2, { seq: 1, epoch: 1 }));
  return log;
}

const started = (epoch: number, node: string): Command => ({ type: 'jobStarted', jobId: 'j1', epoch, node });
const exited = (epoch: number, node: string, exitCode = 0): Command => ({ type: 'jobExited', jobId: 'j1', epoch, node, exitCode });

t.test('a stale epoch’s jobStarted, jobExited and checkpointCommitted are rejected with STALE_EPOCH and change nothing', async (t) => {
  const log = moved();
  const before = log.state.jobView('j1');
  t.match(log.apply(started(1, 'n1')), { ok: false, code: 'STALE_EPOCH' });
  t.match(log.apply(checkpoint('j1', 1, 'n1', 2)), { ok: false, code: 'STALE_EPOCH' });
  t.match(log.apply(exited(1, 'n1')), { ok: false, code: 'STALE_EPOCH', message: /current attempt is epoch 2 on n2/ });
  t.match(log.state.jobView('j1'), { state: 'running', node: 'n2', epoch: 2, exitCode: null, checkpoints: [{ seq: 1, epoch: 1 }] });
  t.equal(log.state.checkpoints.get('j1')?.length, 1, 'the stale checkpoint is not a resume point');
  t.same(log.state.jobView('j1'), before, 'the job is exactly as before the stale reports');
});

t.test('a report with the current epoch from another node is STALE_EPOCH', async (t) => {
  const log = moved();
  t.match(log.apply(started(2, 'n1')), { ok: false, code: 'STALE_EPOCH' });
  t.match(log.apply(exited(2, 'n3')), { ok: false, code: 'STALE_EPOCH' });
  t.match(log.apply(checkpoint('j1', 2, 'n1', 1)), { ok: false, code: 'STALE_EPOCH' });
});

t.test('a report from a future epoch is STALE_EPOCH too (only the current one counts)', async (t) => {
  const log = moved();
  t.match(log.apply(exited(3, 'n2')), { ok: false, code: 'STALE_EPOCH' });
});

t.test('a node declared lost that comes back: its report for the epoch it ran is rejected, even before the job moved', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'nodeLost', node: 'n1' });
  // n1 was only partitioned; it rejoins and reports, while j1 waits to be re-placed.
  log.ok(join('n1'));
  t.match(log.apply(exited(1, 'n1')), { ok: false, code: 'STALE_EPOCH', message: /ended \(nodeLost\)/ });
  t.match(log.apply(checkpoint('j1', 1, 'n1', 1)), { ok: false, code: 'STALE_EPOCH' });
  t.match(log.state.jobView('j1'), { state: 'pending', exitCode: null });
});

t.test('exactly-once result: the current attempt’s exit is accepted once; a second exit for that epoch is JOB_FINISHED', async (t) => {
  const log = moved();
  t.same(log.ok(exited(2, 'n2', 0)), { jobId: 'j1', state: 'succeeded', exitCode: 0 });
  const again = log.apply(exited(2, 'n2', 1));
  t.match(again, { ok: false, code: 'JOB_FINISHED' });
  t.match(log.apply(exited(1, 'n1', 1)), { ok: false, code: 'STALE_EPOCH' }, 'the old attempt cannot overwrite it either');
  t.match(log.apply(checkpoint('j1', 2, 'n2', 1)), { ok: false, code: 'JOB_FINISHED' });
  t.match(log.state.jobView('j1'), { state: 'succeeded', exitCode: 0 });
});

t.test('reports on a cancelled job are JOB_FINISHED; reports on an unknown job are JOB_NOT_FOUND', async (t) => {
  const log = moved();
  log.ok({ type: 'cancelJob', jobId: 'j1' });
  t.match(log.apply(exited(2, 'n2')), { ok: false, code: 'JOB_FINISHED' });
  t.match(log.apply({ type: 'jobStarted', jobId: 'zz', epoch: 1, node: 'n2' }), { ok: false, code: 'JOB_NOT_FOUND' });
});

t.test('a report for a job never assigned is STALE_EPOCH', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('j1'));
  t.match(log.apply(started(1, 'n1')), { ok: false, code: 'STALE_EPOCH', message: /current attempt is none/ });
});

t.test('checkpoints of an attempt commit in increasing seq; a resumed attempt may count from 1 again', async (t) => {
  const log = moved();
  log.ok(checkpoint('j1', 2, 'n2', 1));
  log.ok(checkpoint('j1', 2, 'n2', 3));
  t.match(log.apply(checkpoint('j1', 2, 'n2', 3, ['n2', 'n9'], 'other-blob')), { ok: false, code: 'CHECKPOINT_OUT_OF_ORDER' });
  t.match(log.apply(checkpoint('j1', 2, 'n2', 2)), { ok: false, code: 'CHECKPOINT_OUT_OF_ORDER' });
  t.same(log.state.jobs.get('j1')?.latestCheckpoint, { seq: 3, epoch: 2 }, 'the newest committed one is the resume point');
});

t.test('a repeated jobStarted from the current attempt keeps the first start time', async (t) => {
  const log = moved();
  log.at = T0 + 100;
  log.ok(started(2, 'n2'));
  log.at = T0 + 900;
  log.ok(started(2, 'n2'));
  t.equal(log.state.jobView('j1')?.attempts[1]?.startedAt, T0 + 100);
  t.equal(log.state.jobView('j1')?.startedAt, T0, 'the job started with its first attempt');
});

t.test('a failed restore is recorded in the attempt, once, and only by its own attempt', async (t) => {
  const log = moved();
  t.match(log.apply({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1', restoreError: 'stale' }), { ok: false, code: 'STALE_EPOCH' });
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 2, node: 'n2', restoreError: 'CRIU: incompatible kernel' });
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 2, node: 'n2', restoreError: 'a later retry' });
  const attempts = log.state.jobView('j1')?.attempts ?? [];
  t.same(attempts.map((a) => a.restoreError), [null, 'CRIU: incompatible kernel']);
  t.same(attempts[1]?.fromCheckpoint, { seq: 1, epoch: 1 }, 'the checkpoint it was to resume from stays visible');
});
