// The scheduler on a real cluster: a job running on a node that dies is declared lost
// after nodeTimeout, re-queued with a new epoch on another node, and completes once.
import t from 'tap';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface JobView {
  state: string;
  node: string | null;
  epoch: number;
  exitCode: number | null;
  attempts: Array<{ node: string; epoch: number; reason: string | null; endedAt: number | null }>;
}

t.test('a job on a killed node is re-queued with a new epoch and completes elsewhere, once', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.allReady(); // every node registered, so placement can spread the jobs
  // Enough jobs that one lands on a follower (placement prefers the least loaded node).
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '6' } });
    ids.push(r.body.id);
  }
  const victimJob = await waitFor('a job running on a follower', async () => {
    for (const id of ids) {
      const j = (await c.get<JobView>(leader, `/v1/jobs/${id}`)).body;
      if (j.state === 'running' && j.node && j.node !== leader) return { id, node: j.node };
    }
    return undefined;
  }, 20_000, 100);
  await c.kill(victimJob.node);
  const done = await waitFor('the job to finish after its node died', async () => {
    const j = (await c.get<JobView>(leader, `/v1/jobs/${victimJob.id}`)).body;
    return j.state === 'succeeded' || j.state === 'failed' ? j : undefined;
  }, 60_000, 200);
  t.equal(done.state, 'succeeded');
  t.equal(done.epoch, 2, 'the second attempt has epoch 2');
  t.equal(done.attempts.length, 2, 'two attempts: the lost one and the one that finished');
  t.equal(done.attempts[0]?.node, victimJob.node);
  t.not(done.attempts[1]?.node, victimJob.node, 'the second attempt ran elsewhere');
  t.match(done.attempts[1]?.reason ?? '', new RegExp(`${victimJob.node}`), `the reason names the lost node: ${done.attempts[1]?.reason}`);
  const cluster = await c.get<{ nodes: Array<{ id: string; state: string }> }>(leader, '/v1/cluster');
  t.equal(cluster.body.nodes.find((n) => n.id === victimJob.node)?.state, 'lost', 'the dead node is marked lost by a committed command');
  const metrics = await c.request(leader, '/metrics').then((r) => r.text());
  t.match(metrics, /workrs_node_losses_total 1/, 'the loss is counted in /metrics');
  t.match(metrics, /workrs_raft_term \d+/);
  failed = false;
});
