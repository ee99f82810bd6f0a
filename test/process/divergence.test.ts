// Divergence detection (docs/upgrading.md), with real processes: one follower's replica
// is corrupted behind the log's back (a test-only hook: WORKRS_TEST_HOOKS=corrupt-state,
// then SIGUSR2, as a bug or a bad disk would), and the leader finds it at its next
// state check: a loud log line naming the node and the index, the metric, and
// GET /v1/cluster's `divergence` on every node. The untouched follower stays clean.
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BINARY, startedCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface ClusterView {
  leader: string | null;
  clusterVersion: number;
  divergence: Array<{ node: string; index: number; at: number }>;
}

const dir = mkdtempSync(join(tmpdir(), 'workrs-diverge-'));
const hooked = join(dir, 'workrs-hooked');
writeFileSync(hooked, `#!/bin/sh\nWORKRS_TEST_HOOKS=corrupt-state exec '${BINARY}' "$@"\n`);
chmodSync(hooked, 0o755);

t.test('a corrupted replica is found by the next state check, naming the node and the index', async (t) => {
  const { c, leader } = await startedCluster(t, ['n1', 'n2', 'n3'], [], { binary: hooked });
  for (const id of ['n1', 'n2', 'n3']) {
    await waitFor(`${id} at cluster version 2`, async () => ((await c.get<ClusterView>(id, '/v1/cluster?stale=1')).body.clusterVersion === 2 ? true : undefined), 20_000, 200);
  }
  const [victim, bystander] = ['n1', 'n2', 'n3'].filter((id) => id !== leader) as [string, string];
  const sub = await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['sh', '-c', 'echo before'] });
  t.equal(sub.status, 202);
  // Let a clean check pass first: no false alarm.
  await waitFor('a state check after the first job', async () => {
    const views = await Promise.all(['n1', 'n2', 'n3'].map(async (id) => (await c.get<{ stateCheck: { index: number } | null }>(id, '/v1/cluster?stale=1')).body.stateCheck));
    return views.every((v) => v !== null) && new Set(views.map((v) => v?.index)).size === 1 ? true : undefined;
  }, 30_000, 250);
  t.same((await c.get<ClusterView>(leader, '/v1/cluster')).body.divergence, [], 'clean replicas: no divergence');

  const pid = c.node(victim).proc?.pid;
  if (pid === undefined) throw new Error(`${victim} is not running`);
  const corruptedAt = Date.now();
  process.kill(pid, 'SIGUSR2');
  await waitFor('the hook to corrupt the replica', () => (readFileSync(c.node(victim).logFile, 'utf8').includes('TEST HOOK: state corrupted') ? true : undefined), 10_000, 100);
  // The log must move for a check to be proposed.
  t.equal((await c.post(leader, '/v1/jobs', { command: ['sh', '-c', 'echo after'] })).status, 202);
  const found = await waitFor('the leader to find the divergence', async () => {
    const d = (await c.get<ClusterView>(leader, '/v1/cluster')).body.divergence;
    return d.length > 0 ? d : undefined;
  }, 30_000, 200);
  const seconds = (Date.now() - corruptedAt) / 1000;
  t.ok(seconds < 20, `found ${seconds.toFixed(1)} s after the corruption`);
  t.equal(found.length, 1, 'one divergence');
  t.equal(found[0]?.node, victim, 'naming the corrupted node');
  t.ok((found[0]?.index ?? 0) > 0, `at index ${found[0]?.index}`);
  const log = readFileSync(c.node(leader).logFile, 'utf8');
  t.match(log, new RegExp(`STATE DIVERGENCE: node ${victim}'s replicated state at index ${found[0]?.index} differs from the leader's`), 'a loud log line on the leader');
  t.match(log, /"level":50/, 'at error level');
  const metrics = await (await c.request(leader, '/metrics')).text();
  t.match(metrics, /^workrs_state_divergences_total [1-9]/m, 'counted in workrs_state_divergences_total');
  const fromFollower = (await c.get<ClusterView>(bystander, '/v1/cluster')).body.divergence;
  t.same(fromFollower.map((d) => d.node), [victim], 'a follower shows the leader\'s finding');
  t.notOk(found.some((d) => d.node === bystander), 'the untouched follower is not named');
});
