// Snapshots: every table and the dedupe table round-trip exactly; a bad snapshot is
// refused with a reason instead of restoring a broken state.
import t from 'tap';
import { Packr } from 'msgpackr';
import type { Envelope } from '../../src/state/commands.js';
import { ClusterState } from '../../src/state/machine.js';
import { SnapshotFormatError } from '../../src/state/snapshot.js';
import { assign, checkpoint, hex, join, Log, spec, submit, T0 } from './state-fixtures.js';

/** A state with something in every table: nodes in all states, jobs in all states, checkpoints, blobs, sessions. */
function busy(): Log {
  const log = new Log();
  for (const id of ['n1', 'n2', 'n3', 'n4']) log.ok(join(id, 3));
  log.ok({ type: 'setRole', node: 'n1', role: 'voter' });
  log.ok({ type: 'submitJob', job: { id: 'files', spec: spec({ files: ['a.sh'] }), createdAt: T0, inputs: { 'a.sh': 'in-a' } } });
  for (const id of ['run', 'done', 'fail', 'gone', 'wait']) log.ok(submit(id, { memoryMB: 64, env: { K: id } }));
  log.ok(assign('run', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'run', epoch: 1, node: 'n1' });
  log.ok(checkpoint('run', 1, 'n1', 1, ['n1', 'n2']));
  log.ok({ type: 'setPolicy', jobId: 'run', policy: { mode: 'auto', intervalSeconds: 12.25, reason: 'model' } });
  log.ok(assign('done', 'n2', 1));
  log.ok({ type: 'jobExited', jobId: 'done', epoch: 1, node: 'n2', exitCode: 0, resultBlob: 'res-done' });
  log.ok(assign('fail', 'n3', 1));
  log.ok({ type: 'jobExited', jobId: 'fail', epoch: 1, node: 'n3', exitCode: 2 });
  log.ok({ type: 'cancelJob', jobId: 'gone' });
  log.ok(assign('wait', 'n4', 1));
  log.ok({ type: 'nodeLost', node: 'n4' });
  log.ok({ type: 'nodeSuspect', node: 'n3' });
  log.ok({ type: 'nodeLeft', node: 'n2' });
  log.ok({ type: 'blobAdded', id: 'img', kind: 'image', bytes: 5 << 20, holders: ['n1', 'n3'], name: 'workrs/busybox:1' });
  log.apply({ type: 'cancelJob', jobId: 'nope' }); // a cached rejection
  return log;
}

t.test('snapshot round trip: restore then snapshot gives the same bytes, views and dedupe table', async (t) => {
  const log = busy();
  const bytes = log.state.snapshot();
  t.equal(bytes[0], 1, 'the first byte is the format version: 1 in a cluster at protocol 1, which older members read');
  const restored = ClusterState.restore(bytes);
  t.equal(hex(restored.snapshot()), hex(bytes));
  t.equal(restored.appliedIndex, log.state.appliedIndex);
  for (const id of log.state.jobs.keys()) t.same(restored.jobView(id), log.state.jobView(id), `job ${id}`);
  t.same(restored.nodesView(), log.state.nodesView());
  t.same(restored.listJobs(), log.state.listJobs());
  t.same(restored.assignmentsFor('n1'), log.state.assignmentsFor('n1'));
  t.same([...restored.blobs.values()], [...log.state.blobs.values()]);
  t.same(restored.openJobs().map((j) => j.id), log.state.openJobs().map((j) => j.id), 'the derived open-job set is rebuilt');
  t.equal(restored.lastRequestId('gateway-n1'), log.state.lastRequestId('gateway-n1'));
});

t.test('a restored state dedupes like the original: a retry of the last request gets the cached result', async (t) => {
  const log = busy();
  const env: Envelope = { v: 1, clientId: 'gw-x', requestId: 9, at: T0, cmd: submit('late') };
  const first = log.applyEnvelope(env);
  const restored = ClusterState.restore(log.state.snapshot());
  t.same(restored.apply(log.index + 1, env), first);
  t.equal(restored.jobs.size, log.state.jobs.size);
});

t.test('an empty state round-trips', async (t) => {
  const empty = new ClusterState();
  const restored = ClusterState.restore(empty.snapshot());
  t.equal(hex(restored.snapshot()), hex(empty.snapshot()));
  t.equal(restored.appliedIndex, 0);
});

t.test('a snapshot of an unknown format version, cut short, or not msgpack is refused with SnapshotFormatError', async (t) => {
  const bytes = busy().state.snapshot();
  const future = bytes.slice();
  future[0] = 9;
  t.throws(() => ClusterState.restore(future), SnapshotFormatError);
  t.throws(() => ClusterState.restore(future), /state snapshot format version 9: this build reads formats 1 to 2 \(it was written by a newer build\)/);
  t.throws(() => ClusterState.restore(bytes.subarray(0, 1)), /too short/);
  t.throws(() => ClusterState.restore(bytes.subarray(0, bytes.length >> 1)), /does not decode/);
  const packr = new Packr({ useRecords: false });
  const notTables = packr.pack({ appliedIndex: 3, jobs: 'nope' });
  t.throws(() => ClusterState.restore(Uint8Array.from([1, ...notTables])), /jobs is not an array/);
});

t.test('a snapshot whose tables contradict each other is refused (invariants are checked on restore)', async (t) => {
  const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
  const body = packr.unpack(busy().state.snapshot().subarray(1)) as { jobs: Array<{ id: string; state: string; epoch: number }> };
  const run = body.jobs.find((j) => j.id === 'run');
  if (run === undefined) throw new Error('fixture has no job "run"');
  run.epoch = 5;
  t.throws(() => ClusterState.restore(Uint8Array.from([1, ...packr.pack(body)])), /invariant broken: job run is at epoch 5 with 1 attempts/);
});
