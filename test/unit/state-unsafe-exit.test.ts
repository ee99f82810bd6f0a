// The unsafe acceptExitWithoutEpochCheck option (a mutant for the whole-node
// simulator): with it, a stale attempt's exit and checkpoint are accepted; without it
// (the default) they are fenced off.
import t from 'tap';
import { ClusterState } from '../../src/state/machine.js';
import { assign, checkpoint, join, Log, submit } from './state-fixtures.js';

/** j1 ran on n1 (epoch 1), n1 was lost, j1 now runs on n2 (epoch 2). */
function moved(state: ClusterState): Log {
  const log = new Log(state);
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'nodeLost', node: 'n1' });
  log.ok(assign('j1', 'n2', 2));
  return log;
}

t.test('by default a stale exit is fenced off', async (t) => {
  const log = moved(new ClusterState());
  t.match(log.apply({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0 }), { ok: false, code: 'STALE_EPOCH' });
  t.match(log.state.jobView('j1'), { state: 'running', node: 'n2' });
});

t.test('with acceptExitWithoutEpochCheck a stale exit finishes the job and ends the current attempt', async (t) => {
  const log = moved(new ClusterState({ acceptExitWithoutEpochCheck: true }));
  t.match(log.apply(checkpoint('j1', 1, 'n1', 1)), { ok: true });
  t.match(log.apply({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 3 }), { ok: true, value: { state: 'failed', exitCode: 3 } });
  t.match(log.state.attempts.get('j1')?.[1], { epoch: 2, end: 'exited', exitCode: 3 });
  t.match(log.apply({ type: 'jobExited', jobId: 'j1', epoch: 2, node: 'n2', exitCode: 0 }), { ok: false, code: 'JOB_FINISHED' }, 'a finished job stays finished');
});

t.test('with acceptExitWithoutEpochCheck a pending job can be finished by the exit of an ended attempt', async (t) => {
  const log = new Log(new ClusterState({ acceptExitWithoutEpochCheck: true }));
  log.ok(join('n1'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'nodeLost', node: 'n1' });
  t.match(log.apply({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0 }), { ok: true, value: { state: 'succeeded' } });
  t.match(log.apply({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' }), { ok: false }, 'jobStarted is still fenced');
});

t.test('the option survives a snapshot restore when passed again', async (t) => {
  const log = moved(new ClusterState({ acceptExitWithoutEpochCheck: true }));
  const restored = new Log(ClusterState.restore(log.state.snapshot(), { acceptExitWithoutEpochCheck: true }));
  restored.index = log.index;
  t.match(restored.apply({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0 }, { clientId: 'worker-n1' }), { ok: true });
});
