// ClusterState: a job's life (pending → running → succeeded | failed | cancelled),
// nodes, blobs, and the views the API serves.
import t from 'tap';
import { ClusterState } from '../../src/state/machine.js';
import { assign, checkpoint, join, Log, spec, submit, T0 } from './state-fixtures.js';

function cluster(): Log {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  return log;
}

t.test('a submitted job is pending with the policy of its spec, and appears in the job view', async (t) => {
  const log = cluster();
  t.same(log.ok(submit('j1', { checkpoint: { mode: 'interval', intervalSeconds: 30 } }, T0 - 5)), { jobId: 'j1', state: 'pending' });
  const view = log.state.jobView('j1');
  t.same(view, {
    id: 'j1',
    name: null,
    labels: {},
    state: 'pending',
    spec: log.state.jobs.get('j1')?.spec,
    node: null,
    epoch: 0,
    attempts: [],
    checkpoints: [],
    policy: { mode: 'interval', intervalSeconds: 30, reason: 'fixed interval from the job spec' },
    exitCode: null,
    createdAt: T0 - 5,
    startedAt: null,
    finishedAt: null,
  });
  t.same(Object.keys(view ?? {}), ['id', 'name', 'labels', 'state', 'spec', 'node', 'epoch', 'attempts', 'checkpoints', 'policy', 'exitCode', 'createdAt', 'startedAt', 'finishedAt'], "exactly the fields docs/api.md lists");
  t.equal(log.state.jobView('nope'), null);
});

t.test('a job id is used once: a second submitJob with it is JOB_EXISTS', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  t.match(log.apply(submit('j1')), { ok: false, code: 'JOB_EXISTS' });
});

t.test('assignment makes a job running on its node with epoch 1; start, checkpoints and exit 0 make it succeeded', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  t.same(log.ok(assign('j1', 'n1', 1)), { jobId: 'j1', epoch: 1, node: 'n1' });
  t.match(log.state.jobView('j1'), { state: 'running', node: 'n1', epoch: 1, startedAt: null });
  log.at = T0 + 1000;
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  log.at = T0 + 11_000;
  log.ok(checkpoint('j1', 1, 'n1', 1));
  log.at = T0 + 21_000;
  log.ok(checkpoint('j1', 1, 'n1', 2));
  log.at = T0 + 25_000;
  t.same(log.ok({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0, resultBlob: 'res-j1' }), { jobId: 'j1', state: 'succeeded', exitCode: 0 });
  const view = log.state.jobView('j1');
  t.match(view, { state: 'succeeded', node: 'n1', epoch: 1, exitCode: 0, startedAt: T0 + 1000, finishedAt: T0 + 25_000 });
  t.same(view?.attempts, [{ node: 'n1', epoch: 1, fromCheckpoint: null, restoreError: null, startedAt: T0 + 1000, endedAt: T0 + 25_000, reason: 'new job', failure: null }]);
  t.same(view?.checkpoints, [
    { seq: 1, epoch: 1, at: T0 + 11_000, bytes: 1000, durationMs: 120, frozenMs: null, ranMs: null, logOffset: 10, holders: ['n1', 'n9'] },
    { seq: 2, epoch: 1, at: T0 + 21_000, bytes: 2000, durationMs: 120, frozenMs: null, ranMs: null, logOffset: 20, holders: ['n1', 'n9'] },
  ]);
  t.same(log.state.jobs.get('j1')?.latestCheckpoint, { seq: 2, epoch: 1 }, 'the newest committed checkpoint is kept per job');
  t.equal(log.state.jobs.get('j1')?.resultBlob, 'res-j1');
  t.same(log.state.assignmentsFor('n1'), [], 'a finished job is not assigned any more');
});

t.test('a non-zero exit code makes the job failed', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 3 });
  t.match(log.state.jobView('j1'), { state: 'failed', exitCode: 3 });
});

t.test('cancel: a pending or running job becomes cancelled (its attempt ends); a finished one is JOB_FINISHED', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  log.ok(submit('j2'));
  log.ok(assign('j2', 'n1', 1));
  log.at = T0 + 500;
  t.same(log.ok({ type: 'cancelJob', jobId: 'j1' }), { jobId: 'j1', state: 'cancelled' });
  t.same(log.ok({ type: 'cancelJob', jobId: 'j2' }), { jobId: 'j2', state: 'cancelled' });
  t.match(log.state.jobView('j2'), { state: 'cancelled', finishedAt: T0 + 500, attempts: [{ endedAt: T0 + 500 }] });
  t.same(log.state.assignmentsFor('n1'), [], 'the worker sees the assignment gone and stops the container');
  t.match(log.apply({ type: 'cancelJob', jobId: 'j2' }), { ok: false, code: 'JOB_FINISHED' });
  t.match(log.apply({ type: 'cancelJob', jobId: 'j9' }), { ok: false, code: 'JOB_NOT_FOUND' });
  t.match(log.apply(assign('j1', 'n1', 1)), { ok: false, code: 'JOB_FINISHED' }, 'a cancelled job is not assigned');
});

t.test('assignJob is checked: next epoch only, a known alive node, a committed checkpoint, free capacity', async (t) => {
  const log = new Log();
  log.ok(join('n1', 1, 1000));
  log.ok(join('n2', 1));
  log.ok(submit('j1', { memoryMB: 600 }));
  log.ok(submit('j2', { memoryMB: 600 }));
  log.ok(submit('j3'));
  t.match(log.apply(assign('j1', 'n1', 2)), { ok: false, code: 'STALE_EPOCH' }, 'epochs cannot be skipped');
  t.match(log.apply(assign('j1', 'n7', 1)), { ok: false, code: 'NODE_UNKNOWN' });
  t.match(log.apply(assign('j1', 'n1', 1, { seq: 1, epoch: 1 })), { ok: false, code: 'CHECKPOINT_UNKNOWN' });
  t.match(log.apply(assign('x', 'n1', 1)), { ok: false, code: 'JOB_NOT_FOUND' });
  log.ok(assign('j1', 'n1', 1));
  t.match(log.apply(assign('j1', 'n1', 1)), { ok: false, code: 'STALE_EPOCH' }, 'the same decision twice opens one attempt');
  t.match(log.apply(assign('j3', 'n1', 1)), { ok: false, code: 'NODE_FULL' }, 'n1 has 1 slot, taken');
  log.ok({ type: 'nodeSuspect', node: 'n2' });
  t.match(log.apply(assign('j3', 'n2', 1)), { ok: false, code: 'NODE_NOT_ALIVE' }, 'a suspect node gets no new job');
  log.ok({ type: 'nodeAlive', node: 'n2' });
  log.ok(join('n1', 3, 1000)); // rejoins with 3 slots, same memory
  t.match(log.apply(assign('j2', 'n1', 1)), { ok: false, code: 'NODE_FULL', message: /600 of 1000 MB/ }, 'memory counts too');
  log.ok(assign('j3', 'n1', 1));
});

t.test('a running job can be reassigned (migration): the old attempt ends as reassigned and its node is fenced off', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1));
  log.ok(assign('j1', 'n2', 2, { seq: 1, epoch: 1 }));
  t.same(log.state.attempts.get('j1')?.map((a) => [a.node, a.epoch, a.end]), [['n1', 1, 'reassigned'], ['n2', 2, null]]);
  t.match(log.apply({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0 }), { ok: false, code: 'STALE_EPOCH' });
  t.same(log.state.assignmentsFor('n1'), []);
  t.same(log.state.assignmentsFor('n2').map((a) => [a.jobId, a.epoch, a.fromCheckpoint?.seq]), [['j1', 2, 1]]);
  // isAssignedTo answers what assignmentsFor holds, without building the views.
  for (const node of ['n1', 'n2', 'n3']) {
    for (const epoch of [1, 2, 3]) {
      const held = log.state.assignmentsFor(node).some((a) => a.jobId === 'j1' && a.epoch === epoch);
      t.equal(log.state.isAssignedTo(node, { jobId: 'j1', epoch }), held, `${node} epoch ${epoch}: ${held}`);
    }
  }
  t.equal(log.state.isAssignedTo('n2', { jobId: 'nope', epoch: 2 }), false);
  log.ok({ type: 'jobExited', jobId: 'j1', epoch: 2, node: 'n2', exitCode: 0 });
  t.equal(log.state.isAssignedTo('n2', { jobId: 'j1', epoch: 2 }), false, 'a finished attempt is not assigned');
});

t.test('a lost node: its running jobs go back to pending (attempt ended), other nodes are untouched', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  log.ok(submit('j2'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(assign('j2', 'n2', 1));
  log.at = T0 + 3000;
  const departures = log.state.departureCount;
  t.same(log.ok({ type: 'nodeLost', node: 'n1' }), { node: 'n1', state: 'lost', requeued: ['j1'] });
  t.equal(log.state.departureCount, departures + 1, 'the departure counter moves (the node starts a blob repair on it)');
  t.match(log.state.jobView('j1'), { state: 'pending', node: null, epoch: 1, attempts: [{ node: 'n1', endedAt: T0 + 3000 }] });
  t.equal(log.state.attempts.get('j1')?.[0]?.end, 'nodeLost');
  t.match(log.state.jobView('j2'), { state: 'running', node: 'n2' });
  t.same(log.ok({ type: 'nodeLost', node: 'n1' }), { node: 'n1', state: 'lost', requeued: [] }, 'declaring it lost again changes nothing');
  t.equal(log.state.departureCount, departures + 1, 'nor the departure counter');
  t.match(log.apply(assign('j1', 'n1', 2)), { ok: false, code: 'NODE_NOT_ALIVE' });
});

t.test('node states: join (learner by default), suspect, alive, left; setRole; rejoin keeps the role', async (t) => {
  const log = new Log();
  t.same(log.ok(join('n1')), { node: 'n1', state: 'alive', role: 'learner' });
  t.match(log.apply({ type: 'setRole', node: 'n9', role: 'voter' }), { ok: false, code: 'NODE_UNKNOWN' });
  log.ok({ type: 'setRole', node: 'n1', role: 'voter' });
  t.same(log.ok({ type: 'nodeSuspect', node: 'n1' }), { node: 'n1', state: 'suspect' });
  t.same(log.ok({ type: 'nodeAlive', node: 'n1' }), { node: 'n1', state: 'alive' });
  log.ok({ type: 'nodeLeft', node: 'n1' });
  t.match(log.apply({ type: 'nodeAlive', node: 'n1' }), { ok: false, code: 'NODE_LEFT' }, 'a node that left comes back by joining');
  t.match(log.apply({ type: 'nodeSuspect', node: 'n1' }), { ok: false, code: 'NODE_NOT_ALIVE' });
  t.same(log.ok({ type: 'nodeLost', node: 'n1' }), { node: 'n1', state: 'left', requeued: [] }, 'a node that left stays left');
  t.same(log.ok(join('n1', 8)), { node: 'n1', state: 'alive', role: 'voter' });
  t.equal(log.state.nodes.get('n1')?.slots, 8, 'capacity is replaced on rejoin');
});

t.test('nodesView: the node part of GET /v1/cluster, sorted by id, with running counts and lastSeenMs', async (t) => {
  const log = new Log();
  log.ok(join('n2', 4));
  log.at = T0 + 7;
  log.ok(join('n1'));
  log.ok({ type: 'setRole', node: 'n1', role: 'voter' });
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n2', 1));
  const view = log.state.nodesView(new Map([['n2', T0 + 99]]));
  t.same(view, [
    { id: 'n1', api: '127.0.0.1:7701', peer: '127.0.0.1:7801', role: 'voter', voter: true, state: 'alive', lastSeenMs: T0 + 7, slots: 2, running: 0, draining: false },
    { id: 'n2', api: '127.0.0.1:7702', peer: '127.0.0.1:7802', role: 'learner', voter: false, state: 'alive', lastSeenMs: T0 + 99, slots: 4, running: 1, draining: false },
  ]);
});

t.test('listJobs: newest first, filtered by state, limited', async (t) => {
  const log = cluster();
  for (const id of ['a', 'b', 'c', 'd']) log.ok(submit(id));
  log.ok(assign('b', 'n1', 1));
  t.same(log.state.listJobs().map((j) => j.id), ['d', 'c', 'b', 'a']);
  t.same(log.state.listJobs({ state: 'pending' }).map((j) => j.id), ['d', 'c', 'a']);
  t.same(log.state.listJobs({ state: 'running' }).map((j) => j.id), ['b']);
  t.same(log.state.listJobs({ limit: 2 }).map((j) => j.id), ['d', 'c']);
  t.same(log.state.listJobs({ limit: 0 }), []);
  t.equal(log.state.listJobs({ limit: Number.NaN }).length, 4, 'a limit that is not a number means the default');
});

t.test('assignmentsFor: what a worker must run, with spec, inputs, policy and where to resume', async (t) => {
  const log = cluster();
  log.ok({ type: 'submitJob', job: { id: 'j1', spec: spec({ files: ['job.sh'] }), createdAt: T0, inputs: { 'job.sh': 'in-1' } } });
  log.ok(submit('j2'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n2']));
  log.ok({ type: 'nodeLost', node: 'n1' });
  log.ok(assign('j1', 'n2', 2, { seq: 1, epoch: 1 }));
  log.ok(assign('j2', 'n2', 1));
  log.ok({ type: 'setPolicy', jobId: 'j1', policy: { mode: 'auto', intervalSeconds: 20, reason: 'model' } });
  const a = log.state.assignmentsFor('n2');
  t.same(a.map((x) => x.jobId), ['j1', 'j2'], 'oldest job first');
  t.same(a[0], {
    jobId: 'j1',
    epoch: 2,
    spec: log.state.jobs.get('j1')?.spec,
    inputs: { 'job.sh': 'in-1' },
    policy: { mode: 'auto', intervalSeconds: 20, reason: 'model' },
    fromCheckpoint: { seq: 1, epoch: 1, blob: 'ckpt-j1-1-1', bytes: 1000, logOffset: 10, holders: ['n1', 'n2'] },
    jobStartedAt: null,
  });
  t.equal(a[1]?.fromCheckpoint, null);
  t.same(log.state.assignmentsFor('n1'), [], 'a lost node must run nothing');
});

t.test('views are copies: changing one does not change the state', async (t) => {
  const log = cluster();
  log.ok(submit('j1', { env: { A: '1' } }));
  const v = log.state.jobView('j1');
  v?.spec.command.push('evil');
  if (v) v.spec.env.A = '2';
  t.same(log.state.jobView('j1')?.spec.command, ['sh', '-c', 'echo hi']);
  t.same(log.state.jobView('j1')?.spec.env, { A: '1' });
});

t.test('blobs: added with holders (merged for the same id), holders replaced, forgotten when none; a different size under one id is BLOB_CONFLICT', async (t) => {
  const log = cluster();
  t.same(log.ok({ type: 'blobAdded', id: 'img', kind: 'image', bytes: 10, holders: ['n1'], name: 'workrs/busybox:1' }), { blob: 'img', holders: ['n1'] });
  t.same(log.ok({ type: 'blobAdded', id: 'img', kind: 'image', bytes: 10, holders: ['n2', 'n1'] }), { blob: 'img', holders: ['n1', 'n2'] });
  t.equal(log.state.blobs.get('img')?.name, 'workrs/busybox:1');
  t.match(log.apply({ type: 'blobAdded', id: 'img', kind: 'image', bytes: 11, holders: ['n1'] }), { ok: false, code: 'BLOB_CONFLICT' });
  t.same(log.ok({ type: 'blobHolders', id: 'img', holders: ['n2'] }), { blob: 'img', holders: ['n2'] });
  log.ok({ type: 'blobHolders', id: 'img', holders: [] });
  t.equal(log.state.blobs.has('img'), false);
  t.match(log.apply({ type: 'blobHolders', id: 'img', holders: ['n1'] }), { ok: false, code: 'BLOB_UNKNOWN' });
});

t.test('a committed checkpoint registers its blob, and the job view shows the blob’s current holders', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n2'], 'ck1'));
  t.match(log.state.blobs.get('ck1'), { kind: 'checkpoint', bytes: 1000, holders: ['n1', 'n2'] });
  log.ok({ type: 'blobHolders', id: 'ck1', holders: ['n2', 'n3'] });
  t.same(log.state.jobView('j1')?.checkpoints[0]?.holders, ['n2', 'n3']);
});

t.test('setPolicy replaces the checkpoint policy of an unfinished job', async (t) => {
  const log = cluster();
  log.ok(submit('j1'));
  t.same(log.state.jobView('j1')?.policy, { mode: 'auto', intervalSeconds: null, reason: 'not computed yet' });
  log.ok({ type: 'setPolicy', jobId: 'j1', policy: { mode: 'auto', intervalSeconds: 37.5, reason: 'Daly: C=2s, MTBF=6h' } });
  t.same(log.state.jobView('j1')?.policy, { mode: 'auto', intervalSeconds: 37.5, reason: 'Daly: C=2s, MTBF=6h' });
  log.ok({ type: 'cancelJob', jobId: 'j1' });
  t.match(log.apply({ type: 'setPolicy', jobId: 'j1', policy: { mode: 'off', intervalSeconds: null, reason: '' } }), { ok: false, code: 'JOB_FINISHED' });
});

t.test('entries apply in increasing index order only; an invalid entry is a no-op with INVALID_COMMAND', async (t) => {
  const state = new ClusterState();
  const bad = new TextEncoder().encode('not msgpack at all');
  const r = state.applyBytes(5, new Uint8Array([0x92, 0x01]));
  t.match(r, { ok: false, code: 'INVALID_COMMAND' });
  t.equal(state.appliedIndex, 5, 'the index still advances: every node skips the same entry');
  t.throws(() => state.applyBytes(5, bad), /entry 5 applied after entry 5/);
  t.throws(() => state.applyBytes(3, bad), /indexes must increase/);
});

