// Retention: forgetJobs / forgetBlobs in the state machine (each id re-checked when
// the command applies) and the leader's planRetention (what it proposes, in which
// order), so the replicated tables stop growing with history.
import t from 'tap';
import { decodeEnvelope } from '../../src/state/commands.js';
import { ClusterState } from '../../src/state/machine.js';
import { planRetention } from '../../src/scheduler/retention.js';
import { assign, checkpoint, join, Log, spec, submit, T0 } from './state-fixtures.js';

const HOUR = 3_600_000;

/** j-done finished at T0 + 1 s (result res-done, input in-done, two checkpoints); j-run runs with two checkpoints; j-wait is pending with an input. */
function history(): Log {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok({ type: 'blobAdded', id: 'in-done', kind: 'input', bytes: 10, holders: ['n1', 'n2'] });
  log.ok({ type: 'submitJob', job: { id: 'j-done', spec: spec({ files: ['a.txt'] }), createdAt: T0, inputs: { 'a.txt': 'in-done' } } });
  log.ok(assign('j-done', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j-done', epoch: 1, node: 'n1' });
  log.ok(checkpoint('j-done', 1, 'n1', 1));
  log.ok(checkpoint('j-done', 1, 'n1', 2));
  log.ok({ type: 'blobAdded', id: 'res-done', kind: 'result', bytes: 5, holders: ['n1', 'n2'] });
  log.at = T0 + 1000;
  log.ok({ type: 'jobExited', jobId: 'j-done', epoch: 1, node: 'n1', exitCode: 0, resultBlob: 'res-done' });
  log.ok(submit('j-run'));
  log.ok(assign('j-run', 'n2', 1));
  log.ok({ type: 'jobStarted', jobId: 'j-run', epoch: 1, node: 'n2' });
  log.ok(checkpoint('j-run', 1, 'n2', 1));
  log.ok(checkpoint('j-run', 1, 'n2', 2));
  log.ok({ type: 'blobAdded', id: 'in-wait', kind: 'input', bytes: 10, holders: ['n1', 'n2'] });
  log.ok({ type: 'submitJob', job: { id: 'j-wait', spec: spec({ files: ['b.txt'] }), createdAt: T0, inputs: { 'b.txt': 'in-wait' } } });
  log.ok({ type: 'blobAdded', id: 'img', kind: 'image', bytes: 100, holders: ['n1', 'n2'], name: 'workrs/app:1' });
  return log;
}

t.test('forgetJobs forgets final jobs finished at or before the cutoff, with their attempts and checkpoints; nothing else', async (t) => {
  const log = history();
  log.at = T0 + 2 * HOUR;
  t.same(log.ok({ type: 'forgetJobs', jobIds: ['j-done', 'j-run', 'j-wait', 'nope'], finishedBefore: T0 + 1000 }), { forgotten: ['j-done'] }, 'only the final one');
  t.equal(log.state.jobView('j-done'), null, 'GET /v1/jobs/j-done is now 404');
  t.notOk(log.state.attempts.has('j-done'));
  t.notOk(log.state.checkpoints.has('j-done'));
  t.ok(log.state.jobView('j-run') && log.state.jobView('j-wait'), 'open jobs are untouched');
  t.same(log.ok({ type: 'forgetJobs', jobIds: ['j-done'], finishedBefore: T0 + 1000 }), { forgotten: [] }, 'repeating it changes nothing');

  const recent = history();
  t.same(recent.ok({ type: 'forgetJobs', jobIds: ['j-done'], finishedBefore: T0 + 999 }), { forgotten: [] }, 'finished after the cutoff: kept');
});

t.test('forgetBlobs forgets only blobs no job needs, older than the cutoff; images stay', async (t) => {
  const log = history();
  const before = T0 + HOUR;
  const r = log.ok({ type: 'forgetBlobs', ids: ['ckpt-j-done-1-1', 'ckpt-j-done-1-2', 'res-done', 'in-done', 'ckpt-j-run-1-1', 'ckpt-j-run-1-2', 'in-wait', 'img'], addedBefore: before });
  t.same(r, { forgotten: ['ckpt-j-done-1-1', 'ckpt-j-done-1-2', 'in-done', 'ckpt-j-run-1-1'] },
    "a finished job's checkpoints and input, a running job's superseded checkpoint; not its newest, not a result, not a pending job's input, not an image");
  t.same(log.state.jobView('j-run')?.checkpoints.map((c) => c.holders), [[], ['n2', 'n9']], 'a forgotten checkpoint shows no holders');
  t.same(log.state.jobView('j-done')?.checkpoints.map((c) => c.holders), [[], []]);

  const fresh = history();
  t.same(fresh.ok({ type: 'forgetBlobs', ids: ['in-done'], addedBefore: T0 - 1 }), { forgotten: [] }, 'added after the cutoff: kept');
  fresh.at = T0 + HOUR;
  fresh.ok({ type: 'blobAdded', id: 'in-done', kind: 'input', bytes: 10, holders: ['n1'] });
  t.same(fresh.ok({ type: 'forgetBlobs', ids: ['in-done'], addedBefore: T0 + HOUR - 1 }), { forgotten: [] }, 'added again (a new upload of the same bytes): its age starts over');
});

t.test('planRetention: old final jobs first, their blobs on the next round, then nothing', async (t) => {
  const log = history();
  const input = { now: T0 + 1000 + 7 * 24 * HOUR, jobRetentionMs: 7 * 24 * HOUR, blobMinAgeMs: 600_000 };
  const first = planRetention(log.state, input);
  t.same(first, [{ type: 'forgetJobs', jobIds: ['j-done'], finishedBefore: T0 + 1000 }], 'the job finished exactly a retention ago');
  for (const cmd of first) log.ok(cmd);
  const second = planRetention(log.state, input);
  t.same(second, [{ type: 'forgetBlobs', ids: ['in-done', 'ckpt-j-done-1-1', 'ckpt-j-done-1-2', 'res-done', 'ckpt-j-run-1-1'], addedBefore: input.now - 600_000 }], "the forgotten job's input, checkpoints and result, and a superseded checkpoint");
  for (const cmd of second) log.ok(cmd);
  t.same(planRetention(log.state, input), [], 'then nothing: idempotent');
  t.same([...log.state.blobs.keys()].sort(), ['ckpt-j-run-1-2', 'img', 'in-wait'], 'what is still needed, and the image');
  t.ok(log.state.jobView('j-run') && log.state.jobView('j-wait'));

  // A replica applying the same log agrees, also through a snapshot.
  const replica = new ClusterState();
  for (const e of log.entries) replica.applyBytes(e.index, e.data);
  t.same(ClusterState.restore(replica.snapshot()).listJobs(), log.state.listJobs());
});

t.test('planRetention: 0 keeps jobs for good; a young finished job is kept; batches are bounded', async (t) => {
  const log = history();
  t.same(planRetention(log.state, { now: T0 + 1000 + 365 * 24 * HOUR, jobRetentionMs: 0, blobMinAgeMs: 600_000 }).map((c) => c.type), ['forgetBlobs'], 'no forgetJobs with retention 0 (superseded blobs still go)');
  t.same(planRetention(log.state, { now: T0 + 2000, jobRetentionMs: HOUR, blobMinAgeMs: HOUR }), [], 'nothing old enough');
  const many = new Log();
  many.ok(join('n1'));
  for (let i = 0; i < 300; i++) {
    const id = `j${String(i).padStart(3, '0')}`;
    many.ok(submit(id));
    many.ok({ type: 'cancelJob', jobId: id });
  }
  const [cmd] = planRetention(many.state, { now: T0 + 2 * HOUR, jobRetentionMs: HOUR, blobMinAgeMs: 0 });
  t.equal(cmd?.type === 'forgetJobs' ? cmd.jobIds.length : 0, 256, 'at most a batch per command');
});

t.test('forgetJobs / forgetBlobs decode strictly', async (t) => {
  const env = (cmd: unknown) => ({ v: 1, clientId: 'c', requestId: 1, at: T0, cmd });
  t.throws(() => decodeEnvelope(env({ type: 'forgetJobs', jobIds: [], finishedBefore: 1 })), /cmd.jobIds: must list 1 to 256 ids/);
  t.throws(() => decodeEnvelope(env({ type: 'forgetJobs', jobIds: ['a', 'a'], finishedBefore: 1 })), /listed twice/);
  t.throws(() => decodeEnvelope(env({ type: 'forgetBlobs', ids: ['a'], addedBefore: -1 })), /cmd.addedBefore/);
  t.throws(() => decodeEnvelope(env({ type: 'forgetBlobs', ids: ['a'], addedBefore: 1, extra: 1 })), /extra/);
  t.same(decodeEnvelope(env({ type: 'forgetBlobs', ids: ['a', 'b'], addedBefore: 5 })).cmd, { type: 'forgetBlobs', ids: ['a', 'b'], addedBefore: 5 });
});
