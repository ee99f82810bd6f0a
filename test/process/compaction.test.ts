// Log compaction on real nodes (a config file sets a small threshold): a follower that
// was down while the leader compacted catches up, a node joining after compaction is
// brought up by a snapshot, and nodes restarted from their own snapshots serve the
// same jobs.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

t.test('after compaction: a returning follower catches up, a joining node gets a snapshot, restarts load snapshots', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  const config = join(c.dir, 'small-log.json');
  writeFileSync(config, JSON.stringify({ compactEveryEntries: 40 }));
  for (const n of c.nodes.values()) n.args.push('--config', config);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  const victim = ['n1', 'n2', 'n3'].find((id) => id !== leader) ?? 'n1';
  await c.kill(victim);
  const ids: string[] = [];
  for (let i = 0; i < 150; i++) ids.push((await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '3600' } })).body.id);
  c.start(victim);
  await waitFor(`${victim} to serve all 150 jobs`, async () => {
    const r = await c.get<{ jobs: Array<{ id: string }> }>(victim, '/v1/jobs?limit=1000').catch(() => null);
    const have = new Set(r?.body.jobs.map((j) => j.id));
    return ids.every((id) => have.has(id)) ? true : undefined;
  }, 30_000, 200);
  // A node joining now starts with an empty log while the leader's log starts past 1:
  // only a snapshot can bring it up.
  await c.addJoiner('n4', leader, ['--config', config]);
  c.start('n4');
  await waitFor('n4 to serve all 150 jobs', async () => {
    const r = await c.get<{ jobs: Array<{ id: string }> }>('n4', '/v1/jobs?limit=1000&stale=1').catch(() => null);
    return r && r.body.jobs.length >= 150 ? true : undefined;
  }, 30_000, 200);
  const metrics = await c.request('n4', '/metrics').then((r) => r.text());
  t.match(metrics, /workrs_raft_snapshots_installed [1-9]/, 'the joining n4 caught up by installing a snapshot');
  const leaderMetrics = await c.request(leader, '/metrics').then((r) => r.text());
  t.match(leaderMetrics, /workrs_raft_compactions [1-9]/, 'the leader compacted its log');
  // Every node restarts from its own snapshot plus the log after it.
  await c.stop();
  c.startAll();
  await c.leader();
  for (const id of ['n1', 'n2', 'n3', 'n4']) {
    const r = await waitFor(`${id} to list the jobs after a full restart`, async () => {
      const res = await c.get<{ jobs: Array<{ id: string }> }>(id, '/v1/jobs?limit=1000').catch(() => null);
      return res && res.body.jobs.length >= 150 ? res.body.jobs : undefined;
    }, 30_000, 200);
    t.equal(r.length, 150, `${id}: 150 jobs after restarting the whole cluster`);
  }
  failed = false;
});
