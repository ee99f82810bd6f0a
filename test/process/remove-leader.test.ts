// DELETE /v1/cluster/nodes/:id of the leader itself: it hands its leadership to another
// voter, which removes it. Without the hand-off the leader stepped down once its
// removal committed, before its nodeLeft could, and the request answered 503 after ~14 s.
import t from 'tap';
import { startedCluster } from './harness.js';

interface ClusterView {
  leader: string | null;
  nodes: Array<{ id: string; state: string }>;
}

t.test('removing the leader hands off first and succeeds', async (t) => {
  const { c, leader } = await startedCluster(t);
  const asker = ['n1', 'n2', 'n3'].find((n) => n !== leader) as string;
  const started = Date.now();
  const r = await c.request(asker, `/v1/cluster/nodes/${leader}`, { method: 'DELETE' }, 30_000);
  const ms = Date.now() - started;
  // Before the hand-off this was a 503 NO_LEADER after ~14 s: the status tells, not the time.
  t.equal(r.status, 202, await r.text());
  t.comment(`answered in ${ms} ms`);
  const view = (await c.get<ClusterView>(asker, '/v1/cluster')).body;
  t.not(view.leader, leader, `a new leader: ${view.leader}`);
  t.equal(view.nodes.find((n) => n.id === leader)?.state, 'left', 'the old leader is listed as left');
  t.equal((await c.post(asker, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.1' } })).status, 202, 'the two left take jobs');
});
