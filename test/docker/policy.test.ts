// The online checkpoint policy driving real checkpoints: on boxes believed to fail
// every two minutes, a 60 s job with `auto` gets a planned interval, is checkpointed
// at it, and is re-planned after its first checkpoint with that checkpoint's measured
// freeze as C.
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { dockerCluster } from './cluster-containers.js';

interface JobView {
  state: string;
  policy: { mode: string; intervalSeconds: number | null; reason: string };
  checkpoints: Array<{ seq: number; at: number; frozenMs: number | null }>;
  startedAt: number | null;
}

t.test('auto plans the interval, the worker checkpoints at it, and C is measured', async (t) => {
  const { c, passed } = await dockerCluster(t, { mtbfPriorSeconds: 120, restartPriorSeconds: 5 });
  const script = 'i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo $i; sleep 0.1; done';
  const { id } = (await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sh', '-c', script], estimateSeconds: 60, memoryMB: 32 })).body;
  const first = await waitFor('a planned policy', async () => {
    const j = (await c.get<JobView>('n2', `/v1/jobs/${id}`)).body;
    return j.policy.reason.startsWith('auto') ? j.policy : undefined;
  }, 30_000, 100);
  t.equal(first.mode, 'auto', first.reason);
  const interval = first.intervalSeconds ?? 0;
  t.ok(interval >= 2 && interval <= 30, `a planned interval: ${interval.toFixed(1)} s`);
  t.match(first.reason, /predicted: 32 MB/, 'the first C is a prediction');

  const replanned = await waitFor('a checkpoint and a new plan', async () => {
    const j = (await c.get<JobView>('n2', `/v1/jobs/${id}`)).body;
    return j.checkpoints.length >= 1 && /checkpoints of this job/.test(j.policy.reason) ? j : undefined;
  }, 90_000, 200);
  const cp = replanned.checkpoints[0]!;
  t.ok(cp.frozenMs !== null && cp.frozenMs > 0, `the checkpoint reports the job's freeze (${cp.frozenMs} ms)`);
  const after = (cp.at - (replanned.startedAt ?? cp.at)) / 1000;
  t.ok(after >= interval * 0.8, `the first checkpoint came after ${after.toFixed(1)} s, about one planned interval (${interval.toFixed(1)} s)`);
  t.match(replanned.policy.reason, /remaining \d+(\.\d)? s/, replanned.policy.reason);
  passed();
});
