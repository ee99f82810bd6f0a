// The leader's box dies while the other nodes run jobs. Until a new leader is elected
// no node can renew its lease, so each worker fences itself; the fence must freeze,
// not kill: the new leader waits out the lease bound before it declares any node
// lost, the lease comes back within it, and the jobs on the surviving nodes run on as
// the same attempts (never stopped, never started again).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface JobView {
  id: string;
  state: string;
  node: string | null;
  epoch: number;
}

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name}{} `)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

t.test('a leader loss pauses the jobs on the other nodes; they run on as the same attempts', async (t) => {
  const ids = ['n1', 'n2', 'n3', 'n4'];
  const c = await LocalCluster.create(ids);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.allReady();
  const jobs: string[] = [];
  for (let i = 0; i < 6; i++) jobs.push((await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '3600', I: String(i) } })).body.id);
  const before = await waitFor('every job running', async () => {
    const views = await Promise.all(jobs.map((id) => c.get<JobView>(leader, `/v1/jobs/${id}`).then((r) => r.body)));
    return views.every((v) => v.state === 'running') ? views : undefined;
  }, 20_000, 100);
  const survivors = before.filter((v) => v.node !== leader);
  t.ok(survivors.length > 0, `${survivors.length} jobs run on nodes other than the leader ${leader}`);

  await c.kill(leader);
  const others = ids.filter((id) => id !== leader);
  const next = await waitFor('a new leader', async () => {
    for (const id of others) {
      const v = await c.get<{ leader: string | null }>(id, '/v1/cluster?stale=1').then((r) => r.body.leader, () => null);
      if (v && v !== leader) return v;
    }
    return undefined;
  }, 30_000, 100);
  // Past the old leader's lease bound (3.1 s from the new term): its jobs move, the others must not.
  await new Promise((r) => setTimeout(r, 4500));
  await waitFor(`the jobs of ${leader} to move`, async () => {
    const views = await Promise.all(before.filter((v) => v.node === leader).map((v) => c.get<JobView>(next, `/v1/jobs/${v.id}`).then((r) => r.body)));
    return views.every((v) => v.epoch >= 2 && v.state === 'running') ? true : undefined;
  }, 30_000, 200);

  for (const s of survivors) {
    const now = (await c.get<JobView>(next, `/v1/jobs/${s.id}`)).body;
    t.match(now, { state: 'running', node: s.node, epoch: s.epoch }, `${s.id} still runs on ${s.node} as epoch ${s.epoch}`);
  }
  for (const id of others) {
    const m = await (await c.request(id, '/metrics')).text();
    const frozen = metric(m, 'workrs_worker_fences_total', '{what="frozen"}');
    const thawed = metric(m, 'workrs_worker_fences_total', '{what="thawed"}');
    t.equal(thawed, frozen, `${id}: every attempt it froze was thawed (${frozen} frozen)`);
    const log = readFileSync(c.node(id).logFile, 'utf8');
    t.notMatch(log, /stopping every job|stopping a run/, `${id} stopped no job`);
  }
  failed = false;
});
