// 1,000 concurrent submissions spread over the nodes while a follower is killed -9
// half-way: every submission answered 202 is present afterwards on every node, once.
import t from 'tap';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface JobList {
  jobs: Array<{ id: string; spec: { env: Record<string, string> } }>;
}

t.test('every acknowledged submission survives a follower kill -9, exactly once, on all nodes', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const c = await LocalCluster.create(ids);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  const victim = ids.find((id) => id !== leader) ?? 'n1';
  const total = 1000;
  const accepted = new Map<string, string>(); // tag → job id
  let refused = 0;
  let killed = false;
  let inFlight = 0;
  const maxInFlight = 64;
  let next = 0;

  await new Promise<void>((resolve) => {
    const launch = (): void => {
      while (inFlight < maxInFlight && next < total) {
        const n = next++;
        const target = ids[n % ids.length] ?? 'n1';
        inFlight++;
        if (n === total / 2 && !killed) {
          killed = true;
          void c.kill(victim);
        }
        // Jobs "run" for an hour: they stay in the table, the test only counts submissions.
        c.post<{ id: string }>(target, '/v1/jobs', { command: ['true'], env: { TAG: `s${n}`, FAKE_SECONDS: '3600' } })
          .then(
            (r) => {
              if (r.status === 202) accepted.set(`s${n}`, r.body.id);
              else refused++;
            },
            () => {
              refused++; // the victim's connections die with it: no answer, no promise made
            },
          )
          .finally(() => {
            inFlight--;
            if (next >= total && inFlight === 0) resolve();
            else launch();
          });
      }
    };
    launch();
  });
  t.comment(`${accepted.size} submissions acknowledged, ${refused} refused or unanswered`);
  t.ok(accepted.size >= total / 2, 'at least the submissions to the live nodes were accepted');

  c.start(victim);
  for (const id of ids) {
    const list = await waitFor(`${id} to list every acknowledged job`, async () => {
      const jobs = await c.listAllJobs<JobList['jobs'][number]>(id, 'spec=1');
      return jobs !== null && jobs.length >= accepted.size ? { jobs } : undefined;
    }, 60_000, 200);
    const byTag = new Map<string, number>();
    for (const j of list.jobs) byTag.set(j.spec.env.TAG ?? '', (byTag.get(j.spec.env.TAG ?? '') ?? 0) + 1);
    const missing = [...accepted.keys()].filter((tag) => !byTag.has(tag));
    const twice = [...byTag].filter(([, n]) => n > 1).map(([tag]) => tag);
    t.same(missing, [], `${id}: no acknowledged submission missing`);
    t.same(twice, [], `${id}: no submission present twice`);
    const listedIds = new Set(list.jobs.map((j) => j.id));
    t.ok([...accepted.values()].every((jid) => listedIds.has(jid)), `${id}: the ids answered are the ids stored`);
  }
  failed = false;
});
