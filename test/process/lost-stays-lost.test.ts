// A new leader must not bring lost nodes back: it gives the nodes still counted up a
// fresh lease to check in, not the lost ones (which would then be "alive", and
// placeable, until they timed out a second time).
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster } from './harness.js';

interface ClusterView {
  leader: string | null;
  nodes: Array<{ id: string; state: string; voter: boolean }>;
}

t.test('a node lost before a leader change stays lost after it', async (t) => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const c = await LocalCluster.create(ids);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.allReady();
  const view = async (id: string): Promise<ClusterView> => (await c.get<ClusterView>(id, '/v1/cluster')).body;
  const first = await view(leader);
  // A learner if there is one, so that the voters keep their quorum after the leader goes too.
  const victim = (first.nodes.find((n) => !n.voter && n.id !== leader) ?? first.nodes.find((n) => n.id !== leader))!.id;
  await c.kill(victim);
  await waitFor(`${victim} declared lost`, async () => ((await view(leader)).nodes.find((n) => n.id === victim)?.state === 'lost' ? true : undefined), 30_000, 200);
  // Its replacement among the voters, if it was one, before the leader goes.
  await waitFor('three alive voters', async () => {
    const v = await view(leader);
    return v.nodes.filter((n) => n.voter && n.state === 'alive').length >= 3 ? true : undefined;
  }, 30_000, 200);
  await c.kill(leader);
  const rest = ids.filter((id) => id !== victim && id !== leader);
  const next = await waitFor('a new leader', async () => {
    const v = await view(rest[0]!).catch(() => null);
    return v?.leader && v.leader !== leader ? v.leader : undefined;
  }, 30_000, 200);
  // Watch the new leader's rounds for longer than a node timeout (3 s).
  const seen = new Set<string>();
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    const v = await view(next);
    seen.add(v.nodes.find((n) => n.id === victim)?.state ?? 'missing');
    await new Promise((r) => setTimeout(r, 100));
  }
  t.same([...seen], ['lost'], `${victim} stayed lost under the new leader ${next} (states seen: ${[...seen].join(', ')})`);
  // The window in which a resurrected node shows up as alive may close before this
  // test can read: the new leader's count of the losses it declared cannot hide it.
  const metrics = await c.request(next, '/metrics').then((r) => r.text());
  const declared = Number(metrics.split('\n').find((l) => l.startsWith('workrs_node_losses_total'))?.split(' ').at(-1) ?? Number.NaN);
  t.equal(declared, 1, `the new leader declared only the old leader lost, not ${victim} a second time`);
  failed = false;
});
