// Someone with a submit token fills the cluster with jobs carrying ~30 KB environments,
// then asks for the whole list at once: GET /v1/jobs?limit=1000 answering with every
// spec would be ≈100 MB for a few thousand such jobs. So rows are summaries without specs,
// a page is at most 1000 rows (more is 400 BAD_QUERY), and a cursor walks the rest:
// each job exactly once, also while jobs are being submitted. `workrs jobs --all`
// follows the cursor; a cut list says so.
import t from 'tap';
import { LocalCluster } from '../process/harness.js';
import { runCli } from './cli.js';
import { assertClusterHealthy } from './health.js';

const JOBS = 300;
const ENV_BYTES = 30_000;
const BATCH = 10;

interface Page {
  jobs: Array<Record<string, unknown>>;
  next: string | null;
}

t.test('the job list stays small per answer, and a cursor walks every job once', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader(30_000);
  await c.allReady(30_000);
  const { token: submitter } = await c.createToken('submit', { name: 'attacker' });
  const asSubmitter = await c.cliEnv(submitter);

  // Long jobs (the fake runtime runs them for an hour): most stay pending, none ends.
  const submitted: string[] = [];
  const submitBatch = async (count: number, node: string): Promise<string[]> => {
    const ids = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const r = await c.post<{ id: string }>(node, '/v1/jobs', { command: ['sleep', 'forever'], env: { FAKE_SECONDS: '3600', PAD: `${i}`.padEnd(ENV_BYTES, 'x') } }, {}, submitter);
        if (r.status !== 202) throw new Error(`submission refused: ${r.status} ${JSON.stringify(r.body)}`);
        return r.body.id;
      }),
    );
    submitted.push(...ids);
    return ids;
  };
  for (let i = 0; i < JOBS; i += BATCH) await submitBatch(BATCH, ['n1', 'n2', 'n3'][(i / BATCH) % 3] ?? leader);
  t.equal(new Set(submitted).size, JOBS);

  // The big page: summaries only, well under 1 MB.
  const res = await c.request('n2', '/v1/jobs?limit=1000', { token: submitter }, 30_000);
  t.equal(res.status, 200);
  const text = await res.text();
  t.ok(Buffer.byteLength(text) < 1_000_000, `GET /v1/jobs?limit=1000 answers ${Buffer.byteLength(text)} bytes for ${JOBS} jobs of ${ENV_BYTES} B each (under 1 MB)`);
  const big = JSON.parse(text) as Page;
  t.equal(big.jobs.length, JOBS, 'every job in one page of 1000');
  t.equal(big.next, null, 'and the page says the list ends there');
  t.notOk(big.jobs.some((j) => 'spec' in j), 'no row carries a spec');
  t.match(big.jobs[0], { id: String, state: String, image: String, commandLine: 'sleep forever', epoch: Number, checkpointCount: Number, createdAt: Number }, 'rows have what a list shows');

  // The spec is there when asked for, a page at a time.
  const withSpec = await c.get<Page>('n3', '/v1/jobs?limit=2&spec=1');
  t.match(withSpec.body.jobs[0], { spec: { env: { FAKE_SECONDS: '3600' } } }, 'spec=1 adds the spec');

  for (const limit of ['5000', '1001', '0']) {
    const r = await c.get<{ error?: { code: string } }>('n1', `/v1/jobs?limit=${limit}`);
    t.equal(r.status, 400, `limit=${limit} is refused`);
    t.equal(r.body.error?.code, 'BAD_QUERY');
  }
  t.equal((await c.get<{ error?: { code: string } }>('n1', '/v1/jobs?after=not-a-cursor')).body.error?.code, 'BAD_QUERY', 'a cursor no page gave is refused');

  // A walk of pages of 50, changing nodes, while more jobs are submitted under it.
  const seen: string[] = [];
  let after: string | null = null;
  let pages = 0;
  const nodes = ['n1', 'n2', 'n3'];
  do {
    const page: { status: number; body: Page } = await c.get<Page>(nodes[pages % 3] ?? leader, `/v1/jobs?limit=50${after === null ? '' : `&after=${encodeURIComponent(after)}`}`);
    t.equal(page.status, 200);
    t.ok(page.body.jobs.length <= 50);
    seen.push(...page.body.jobs.map((j) => String(j.id)));
    after = page.body.next;
    pages++;
    if (pages <= 3) await submitBatch(2, leader);
  } while (after !== null && pages < 100);
  const original = new Set(submitted.slice(0, JOBS));
  t.equal(seen.length, new Set(seen).size, `no job twice in the walk (${seen.length} rows in ${pages} pages)`);
  t.same(seen.filter((id) => original.has(id)).length, JOBS, 'every job that existed when the walk began, once');

  // The CLI follows the cursor; a cut list says so.
  const all = await runCli(['jobs', '--all', '--server', c.url('n1')], asSubmitter);
  t.equal(all.status, 0, `workrs jobs --all exits 0 (stderr: ${all.stderr.trim()})`);
  const listed = all.stdout.split('\n').filter((l) => /^j-/.test(l)).map((l) => l.split(' ')[0]);
  t.equal(listed.length, submitted.length, `workrs jobs --all lists all ${submitted.length} jobs`);
  t.same(new Set(listed), new Set(submitted));
  t.notMatch(all.stderr, /more/, 'and does not say the list was cut');
  const few = await runCli(['jobs', '--limit', '7', '--server', c.url('n2')], asSubmitter);
  t.equal(few.status, 0);
  t.equal(few.stdout.split('\n').filter((l) => /^j-/.test(l)).length, 7, '--limit 7 lists 7');
  t.match(few.stderr, /more: use --all/, 'and says there are more');
  const json = await runCli(['jobs', '--limit', '1200', '--json', '--server', c.url('n3')], asSubmitter);
  t.equal(json.status, 0);
  t.equal((JSON.parse(json.stdout) as unknown[]).length, submitted.length, '--json over several pages is one JSON array');

  // Make room: cancel the long jobs, then the cluster must still run a job.
  for (let i = 0; i < submitted.length; i += 20) {
    await Promise.all(submitted.slice(i, i + 20).map((id) => c.request(leader, `/v1/jobs/${id}`, { method: 'DELETE' }, 30_000).then((r) => r.text())));
  }
  await assertClusterHealthy(t, c);
  failed = false;
});
