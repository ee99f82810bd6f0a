// The online checkpoint policy on a live cluster: the leader plans each `auto` job
// (the exact model on the cluster's numbers) and the job shows the plan and the numbers
// behind it; short jobs on reliable boxes get no checkpoints; a job without an
// estimate gets Daly's interval.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface JobView {
  policy: { mode: string; intervalSeconds: number | null; reason: string };
}

t.test('auto jobs get a planned policy with its reason', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  const config = join(c.dir, 'policy.json');
  // Boxes believed to fail every 10 minutes: long jobs must be checkpointed.
  writeFileSync(config, JSON.stringify({ mtbfPriorSeconds: 600, restartPriorSeconds: 5 }));
  for (const n of c.nodes.values()) n.args.push('--config', config);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader();
  await c.allReady();
  const submit = async (spec: Record<string, unknown>): Promise<string> => (await c.post<{ id: string }>('n2', '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '60' }, ...spec })).body.id;
  const long = await submit({ estimateSeconds: 3600, memoryMB: 64 });
  const short = await submit({ estimateSeconds: 5 });
  const unknown = await submit({});
  const planned = async (id: string): Promise<JobView['policy']> =>
    waitFor(`a plan for ${id}`, async () => {
      const p = (await c.get<JobView>('n3', `/v1/jobs/${id}`)).body.policy;
      return p.reason === 'not computed yet' ? undefined : p;
    }, 30_000, 100);
  const p1 = await planned(long);
  t.equal(p1.mode, 'auto');
  t.ok(p1.intervalSeconds !== null && p1.intervalSeconds > 2 && p1.intervalSeconds < 600, `an interval well under M: ${p1.intervalSeconds} s`);
  t.match(p1.reason, /checkpoints over the remaining 3600\.0 s.*C=.*predicted: 64 MB.*M=/, p1.reason);
  const p2 = await planned(short);
  t.same([p2.mode, p2.intervalSeconds], ['off', null], p2.reason);
  const p3 = await planned(unknown);
  t.equal(p3.mode, 'auto');
  t.match(p3.reason, /no estimate: Daly's interval/, p3.reason);
  failed = false;
});
