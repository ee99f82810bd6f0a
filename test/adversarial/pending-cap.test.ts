// Someone with a submit token submits jobs faster than the cluster runs them: every
// pending job is held by every node, in memory and in the Raft log, so the backlog
// must be capped. Nodes run with --max-pending-jobs 5 and every slot taken by a long
// job: the 6th pending submission is refused with 429 TOO_MANY_PENDING and a
// Retry-After header, through any node and by the CLI; submissions racing through all
// three nodes at once still leave exactly 5 pending (the state machine decides the cap
// in log order); once jobs are cancelled, submissions are accepted again.
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster } from '../process/harness.js';
import { runCli } from './cli.js';
import { assertClusterHealthy } from './health.js';

const CAP = 5;
const LONG_JOB = { command: ['sleep', 'forever'], env: { FAKE_SECONDS: '3600' } };

interface JobRow {
  id: string;
  state: string;
}

t.test('the backlog of pending jobs is capped at --max-pending-jobs', async (t) => {
  const help = await runCli(['start', '--help'], {}, 30_000);
  t.match(help.stdout, /--max-pending-jobs <n>.*default\s+10000/s, 'workrs start --help shows the option and its default');

  // One slot per node: three long jobs take every slot, so later jobs stay pending. The
  // cap goes in through its environment form, which a build without the option ignores
  // (a flag it does not know would stop it from starting): there the attack itself is
  // what fails the test.
  process.env.WORKRS_MAX_PENDING_JOBS = String(CAP);
  const c = await LocalCluster.create(['n1', 'n2', 'n3'], ['--slots', '1']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader(30_000);
  await c.allReady(30_000);
  const followers = ['n1', 'n2', 'n3'].filter((n) => n !== leader);
  const { token: submitter } = await c.createToken('submit', { name: 'attacker' });

  const submit = async (node: string): Promise<{ status: number; retryAfter: string | null; body: { id?: string; error?: { code: string; message: string } } }> => {
    const res = await c.request(node, '/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(LONG_JOB), token: submitter }, 30_000);
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { id?: string; error?: { code: string; message: string } } };
  };
  const jobsIn = async (state: string): Promise<JobRow[]> => (await c.get<{ jobs: JobRow[] }>(leader, `/v1/jobs?state=${state}&limit=1000`)).body.jobs;

  const running: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await submit(leader);
    t.equal(r.status, 202);
    running.push(r.body.id ?? '');
  }
  await waitFor('the three long jobs to take every slot', async () => ((await jobsIn('running')).length === 3 ? true : undefined), 30_000, 200);

  const pending: string[] = [];
  for (let i = 0; i < CAP; i++) {
    const r = await submit(i % 2 === 0 ? leader : (followers[0] ?? leader));
    t.equal(r.status, 202, `pending job ${i + 1} of ${CAP} accepted`);
    pending.push(r.body.id ?? '');
  }
  t.equal((await jobsIn('pending')).length, CAP);

  // The 6th pending job: refused, through the leader and through a follower.
  for (const node of [leader, ...followers]) {
    const r = await submit(node);
    t.equal(r.status, 429, `refused through ${node}: ${JSON.stringify(r.body)}`);
    t.equal(r.body.error?.code, 'TOO_MANY_PENDING');
    t.match(r.body.error?.message, /5 jobs are pending.*maxPendingJobs 5/);
    t.ok(r.retryAfter !== null && /^[1-9][0-9]*$/.test(r.retryAfter), `a Retry-After header in seconds (${r.retryAfter})`);
  }
  const cli = await runCli(['submit', '--server', c.url(followers[1] ?? leader), '--env', 'FAKE_SECONDS=3600', '--', 'sleep', 'forever'], await c.cliEnv(submitter));
  t.not(cli.status, 0, 'workrs submit exits non-zero');
  t.match(cli.stderr, /jobs are pending.*\(TOO_MANY_PENDING\)/, `and says why: ${cli.stderr.trim()}`);
  t.equal((await jobsIn('pending')).length, CAP, 'the backlog stayed at the cap');

  // Cancelling makes room again.
  for (const id of pending.splice(0, 2)) t.equal((await c.request(leader, `/v1/jobs/${id}`, { method: 'DELETE' })).status, 202);
  const again = await submit(followers[0] ?? leader);
  t.equal(again.status, 202, 'accepted once fewer jobs are pending');
  pending.push(again.body.id ?? '');

  // Empty the backlog, then race 30 submissions through all three nodes at once:
  // exactly CAP get in, whatever the order they reach the log in.
  for (const id of pending.splice(0)) await c.request(leader, `/v1/jobs/${id}`, { method: 'DELETE' });
  await waitFor('every node to see an empty backlog', async () => {
    const views = await Promise.all(['n1', 'n2', 'n3'].map((n) => c.get<{ jobs: JobRow[] }>(n, '/v1/jobs?state=pending&stale=1')));
    return views.every((v) => v.body.jobs.length === 0) ? true : undefined;
  }, 20_000, 100);
  const race = await Promise.all(Array.from({ length: 30 }, (_, i) => submit(['n1', 'n2', 'n3'][i % 3] ?? leader)));
  const accepted = race.filter((r) => r.status === 202);
  t.equal(accepted.length, CAP, `exactly ${CAP} of 30 racing submissions accepted (statuses: ${race.map((r) => r.status).join(',')})`);
  t.ok(race.every((r) => r.status === 202 || (r.status === 429 && r.body.error?.code === 'TOO_MANY_PENDING')), 'the others refused with TOO_MANY_PENDING');
  t.equal((await jobsIn('pending')).length, CAP, 'and the backlog is exactly at the cap');

  // Room for the health check: no long job left.
  for (const id of [...running, ...accepted.map((r) => r.body.id ?? '')]) await c.request(leader, `/v1/jobs/${id}`, { method: 'DELETE' });
  await assertClusterHealthy(t, c);
  failed = false;
});
