// A fourth node joins with --join as a learner; a voter is killed -9 and declared
// lost; the leader promotes the learner and demotes the lost voter; the cluster then
// survives the loss of a second original voter.
import t from 'tap';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface ClusterView {
  leader: string | null;
  nodes: Array<{ id: string; voter: boolean; state: string }>;
}

t.test('a joined learner is promoted when a voter is lost, and the cluster survives a second loss', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.addJoiner('n4', leader);
  c.start('n4');
  const view = async (via: string): Promise<ClusterView> => (await c.get<ClusterView>(via, '/v1/cluster')).body;
  /** What each node sees on its own (no leader needed), for a failure's evidence. */
  const describeSurvivors = async (ids: string[]): Promise<void> => {
    for (const id of ids) {
      const seen = await c.get<unknown>(id, '/v1/cluster?stale=1').then((r) => JSON.stringify(r.body), (e: unknown) => String(e));
      const metrics = await c.request(id, '/metrics').then((r) => r.text(), () => '');
      t.comment(`${id} sees ${seen}; ${metrics.split('\n').filter((l) => /^workrs_(raft_|nodes|node_losses)/.test(l)).join(' | ')}`);
    }
  };
  await waitFor('n4 to join as a learner', async () => {
    const v = await view(leader);
    const n4 = v.nodes.find((n) => n.id === 'n4');
    return n4 && !n4.voter && n4.state === 'alive' ? true : undefined;
  }, 30_000, 100);
  t.pass('n4 joined as a learner');
  // Every node in the nodes table first: a voter killed before it registered has no
  // record for the leader to declare lost (the rare CI failure this test once showed).
  await c.allReady();

  // Kill a voter that is not the leader: n4 must replace it.
  const firstVictim = ['n1', 'n2', 'n3'].find((id) => id !== leader) ?? 'n1';
  t.comment(`leader ${leader}; killing ${firstVictim}; cluster before: ${JSON.stringify(await view(leader))}`);
  await c.kill(firstVictim);
  try {
    await waitFor(`n4 promoted and ${firstVictim} demoted`, async () => {
      const v = await view(leader);
      const voters = v.nodes.filter((n) => n.voter).map((n) => n.id).sort();
      return voters.includes('n4') && !voters.includes(firstVictim) && voters.length === 3 ? voters : undefined;
    }, 30_000, 100);
  } catch (err) {
    // Evidence for a rare failure seen once in CI (nobody declared the victim lost).
    await describeSurvivors(['n1', 'n2', 'n3', 'n4'].filter((n) => n !== firstVictim));
    throw err;
  }
  t.pass(`n4 is a voter, ${firstVictim} a learner`);

  // A second original voter dies (here: the leader itself): n4 and the last original keep a quorum.
  await c.kill(leader);
  const survivors = ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== leader && id !== firstVictim);
  const newLeader = await waitFor('a new leader among the survivors', async () => {
    for (const id of survivors) {
      const v = await view(id).catch(() => null);
      if (v?.leader && survivors.includes(v.leader)) return v.leader;
    }
    return undefined;
  }, 30_000, 100).catch(async (err: unknown) => {
    // Evidence for a rare CI failure (no leader elected among the two survivors).
    await describeSurvivors(survivors);
    throw err;
  });
  const r = await waitFor('a job accepted after the second loss', async () => {
    const res = await c.post<{ id: string }>(newLeader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.2' } }).catch(() => null);
    return res?.status === 202 ? res.body.id : undefined;
  }, 30_000, 100);
  t.ok(r, `the cluster led by ${newLeader} accepts jobs with two of the original voters dead`);
  failed = false;
});

t.test('a voter that never registered (died at start) is replaced by a joined learner', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  // n3 is a voter of the bootstrap configuration but never starts: it has no node
  // record, so no lease can expire and nobody can declare it lost.
  c.start('n1');
  c.start('n2');
  const leader = await c.leader();
  await c.addJoiner('n4', leader);
  c.start('n4');
  const view = async (via: string): Promise<ClusterView> => (await c.get<ClusterView>(via, '/v1/cluster')).body;
  const voters = await waitFor('n4 promoted in place of the silent n3', async () => {
    const v = await view(leader).catch(() => null);
    const ids = v?.nodes.filter((n) => n.voter).map((n) => n.id).sort() ?? [];
    return ids.includes('n4') && !ids.includes('n3') ? ids : undefined;
  }, 40_000, 200);
  t.same(voters, ['n1', 'n2', 'n4'], 'the voters are the three nodes that run');
  // The point of replacing it: the cluster now survives the loss of one more voter.
  const other = ['n1', 'n2'].find((id) => id !== leader) ?? 'n1';
  await c.kill(other);
  const r = await waitFor('a job accepted after losing a second original voter', async () => {
    const res = await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.2' } }).catch(() => null);
    return res?.status === 202 ? res.body.id : undefined;
  }, 30_000, 100);
  t.ok(r, `with ${other} dead too, ${leader} and n4 still make a quorum`);
  failed = false;
});
