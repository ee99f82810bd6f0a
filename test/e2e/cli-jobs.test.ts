// The CLI's job names, labels and references, label filters, `logs --since` and
// `nodes drain` against a real secure-mode cluster (fake runtime): what each prints,
// its --json, and its exit codes (docs/api.md).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { BINARY, startedCluster } from '../process/harness.js';

interface JobView {
  id: string;
  name: string | null;
  labels: Record<string, string>;
  state: string;
  node: string | null;
  attempts: Array<{ node: string; reason: string; endedAt: number | null }>;
}

interface ClusterView {
  nodes: Array<{ id: string; state: string; running: number; draining: boolean }>;
}

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI without blocking this process: a spawnSync would hold the event loop
 * while the CLI runs, and a kept-alive connection of the harness that the node closes
 * meanwhile would then be reused dead.
 */
function run(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 90_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, args, { env, timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Two Idempotency-Keys whose job ids (j- and 24 hex digits of the key's SHA-256, src/api/backend.ts) share their first 4 hex digits. */
function collidingKeys(): [string, string, string] {
  const seen = new Map<string, string>();
  for (let i = 0; ; i++) {
    const key = `k${i}`;
    const prefix = createHash('sha256').update(key).digest('hex').slice(0, 4);
    const other = seen.get(prefix);
    if (other !== undefined) return [other, key, prefix];
    seen.set(prefix, key);
  }
}

t.test('names, labels, references by name and id prefix, label filters, logs --since', async (t) => {
  const { c } = await startedCluster(t);
  const env = { ...process.env, ...(await c.cliEnv((await c.createToken('submit')).token)), WORKRS_SERVER: c.url('n2') };
  const cli = (...args: string[]): Promise<Ran> => run(env, args);

  const sub = await cli('submit', '--name', 'train-1', '--label', 'team=vision', '--label', 'gpu=no', '--env', 'FAKE_SECONDS=600', '--', 'sleep', '600');
  t.equal(sub.status, 0, sub.stderr);
  const id = sub.stdout.trim();
  const again = await cli('submit', '--name', 'train-1', '--', 'true');
  t.equal(again.status, 1, 'a name a pending or running job has: exit 1');
  t.match(again.stderr, new RegExp(`${id}.*NAME_IN_USE`));
  t.equal((await cli('submit', '--name', 'bad name', '--', 'true')).status, 2, 'a name that is not one: 400, exit 2');
  t.equal((await cli('submit', '--label', 'novalue', '--', 'true')).status, 2, 'a label without = is a usage error');
  t.equal((await cli('submit', '--label', 'k=1', '--label', 'k=2', '--', 'true')).status, 2, 'a label key twice is a usage error');
  const hostile = await c.post<{ error: { code: string } }>('n1', '/v1/jobs', { command: ['true'], name: 'x'.repeat(10_000), labels: { 'a b': '\u0000' } });
  t.equal(hostile.status, 400, 'hostile name and labels: 400');
  t.equal(hostile.body.error.code, 'INVALID_SPEC');

  const status = await cli('status', 'train-1');
  t.equal(status.status, 0, status.stderr);
  t.match(status.stdout, new RegExp(`^job\\s+${id}$`, 'm'), 'status by name');
  t.match(status.stdout, /^name\s+train-1$/m);
  t.match(status.stdout, /^labels\s+gpu=no team=vision$/m);
  const json = JSON.parse((await cli('status', '--json', id.slice(2, 10))).stdout) as JobView;
  t.same([json.id, json.name, json.labels], [id, 'train-1', { gpu: 'no', team: 'vision' }], 'status --json by an id prefix without j-');

  const [k1, k2, prefix] = collidingKeys();
  const a = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.2' }, labels: { team: 'audio' } }, { 'idempotency-key': k1 });
  const b = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.2' } }, { 'idempotency-key': k2 });
  const ambiguous = await cli('status', prefix);
  t.equal(ambiguous.status, 1, 'an ambiguous prefix: 409, exit 1');
  t.match(ambiguous.stderr, /AMBIGUOUS/);
  t.match(ambiguous.stderr, a.body.id);
  t.match(ambiguous.stderr, b.body.id);
  const api = await c.get<{ error: { code: string; details?: { candidates: string[] } } }>('n3', `/v1/jobs/${prefix}`);
  t.equal(api.status, 409);
  t.same(api.body.error.details?.candidates.sort(), [a.body.id, b.body.id].sort(), 'the API names the candidates');
  t.equal((await cli('status', 'j-')).status, 1, 'too short a prefix names nothing: exit 1');

  const table = await cli('jobs');
  t.match(table.stdout, /^ID\s+NAME\s+STATE\s+EXIT\s+AGE\s+NODE\s+COMMAND$/m, 'a NAME column');
  t.match(table.stdout, new RegExp(`^${id}\\s+train-1\\s+(pending|running)\\s`, 'm'));
  t.match(table.stdout, new RegExp(`^${a.body.id}\\s+-\\s`, 'm'), 'a job without a name shows -');
  const vision = await cli('jobs', '--label', 'team=vision', '--json');
  t.same((JSON.parse(vision.stdout) as JobView[]).map((j) => j.id), [id], 'jobs --label k=v');
  const teams = await cli('jobs', '--label', 'team');
  t.equal(teams.stdout.trim().split('\n').length, 3, 'jobs --label k: every job with the key (and the heading)');
  t.same(JSON.parse((await cli('jobs', '--label', 'team=vision', '--label', 'gpu=yes', '--json')).stdout), [], 'labels AND');
  t.equal((await cli('jobs', '--label', '=x')).status, 2, 'a bad label filter: 400, exit 2');

  // logs --since: the fake prints its first line when the attempt starts.
  await waitFor('train-1 to run', async () => ((await c.get<JobView>('n1', `/v1/jobs/${id}`)).body.state === 'running' ? true : undefined), 20_000);
  await new Promise((r) => setTimeout(r, 2500));
  t.match((await cli('logs', 'train-1')).stdout, /fake run of/, 'logs by name');
  t.equal((await cli('logs', '--since', '1s', 'train-1')).stdout, '', '--since 1s: nothing printed since');
  t.match((await cli('logs', '--since', '1h', 'train-1')).stdout, /fake run of/, '--since 1h: the line printed at the start');
  t.match((await cli('logs', '--since', new Date(Date.now() - 3_600_000).toISOString(), 'train-1')).stdout, /fake run of/, 'an RFC 3339 time');
  t.equal((await cli('logs', '--since', 'yesterday', 'train-1')).status, 2, 'a bad --since: exit 2');
  const badSince = await c.request('n1', `/v1/jobs/${id}/logs?since=soon`);
  t.equal(badSince.status, 400, 'since= that is neither: 400');
  // A finished job's log comes from its result, without times: whole when since is before its first start.
  await waitFor('a to finish', async () => ((await c.get<JobView>('n1', `/v1/jobs/${a.body.id}`)).body.state === 'succeeded' ? true : undefined), 20_000);
  await new Promise((r) => setTimeout(r, 1500));
  t.match((await cli('logs', '--since', '1h', a.body.id)).stdout, /exit code 0/);
  const later = await cli('logs', '--since', '1s', a.body.id);
  t.equal(later.stdout, '', 'since after its start: its untimed log is left out');
  t.match(later.stderr, /no time per line/, 'and stderr says so');
  t.equal((await cli('logs', '--since', '1h', a.body.id)).stderr, '', 'no note when nothing is left out');

  const cancel = await cli('cancel', 'train-1');
  t.equal(cancel.status, 0, cancel.stderr);
  t.equal(cancel.stdout.trim(), `${id} cancelled`, 'cancel by name prints the id');
  const second = await cli('submit', '--name', 'train-1', '--env', 'FAKE_SECONDS=0.3', '--', 'true');
  t.equal(second.status, 0, 'a final job frees its name');
  t.equal((await cli('wait', 'train-1')).status, 0, 'wait by name follows the open job of it');
  t.match((await cli('status', 'train-1')).stdout, second.stdout.trim(), 'the name names the newest job now');
});

t.test('nodes drain moves the jobs off a node and keeps new ones away; undrain; errors', async (t) => {
  const { c } = await startedCluster(t);
  const admin = { ...process.env, ...(await c.cliEnv()), WORKRS_SERVER: c.url('n1') };
  const submitEnv = { ...process.env, ...(await c.cliEnv((await c.createToken('submit')).token)), WORKRS_SERVER: c.url('n1') };
  const cli = (e: NodeJS.ProcessEnv, ...args: string[]): Promise<Ran> => run(e, args);
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push((await cli(submitEnv, 'submit', '--env', 'FAKE_SECONDS=600', '--', 'sleep', '600')).stdout.trim());
  const placed = await waitFor('the jobs to run', async () => {
    const jobs = await Promise.all(ids.map(async (id) => (await c.get<JobView>('n1', `/v1/jobs/${id}`)).body));
    return jobs.every((j) => j.state === 'running') ? jobs : undefined;
  }, 20_000);
  const victim = placed[0]?.node ?? 'n1';
  const moving = placed.filter((j) => j.node === victim).map((j) => j.id);

  t.equal((await cli(submitEnv, 'nodes', 'drain', victim)).status, 2, 'a submit token may not drain: 403, exit 2');
  t.equal((await cli(admin, 'nodes', 'drain', 'n9')).status, 1, 'an unknown node: 404, exit 1');
  const drain = await cli(admin, 'nodes', 'drain', victim, '--json');
  t.equal(drain.status, 0, drain.stderr);
  t.same(JSON.parse(drain.stdout), { id: victim, draining: true, running: 0 }, 'drain waits until no job runs there');
  for (const id of moving) {
    // Drained means none runs there; the scheduler places each elsewhere a round later.
    const j = await waitFor(`${id} to run elsewhere`, async () => {
      const view = (await c.get<JobView>('n2', `/v1/jobs/${id}`)).body;
      return view.state === 'running' ? view : undefined;
    }, 20_000);
    t.not(j.node, victim, `${id} moved off`);
    t.equal(j.attempts.length, 2, 'one attempt ended there, one elsewhere');
    t.match(j.attempts.at(-1)?.reason, `node ${victim} drained`);
  }
  const nodes = await cli(admin, 'nodes');
  t.match(nodes.stdout, new RegExp(`^${victim}\\s+\\w+\\s+alive,draining\\s`, 'm'), 'nodes shows the drain');
  const view = (await c.get<ClusterView>('n3', '/v1/cluster')).body;
  t.match(view.nodes.find((n) => n.id === victim), { draining: true, running: 0 });
  const later = (await cli(submitEnv, 'submit', '--env', 'FAKE_SECONDS=600', '--', 'sleep', '600')).stdout.trim();
  const laterJob = await waitFor('the new job to run', async () => {
    const j = (await c.get<JobView>('n1', `/v1/jobs/${later}`)).body;
    return j.state === 'running' ? j : undefined;
  }, 20_000);
  t.not(laterJob.node, victim, 'nothing new goes to a draining node');
  // Asked of another node: a connection the harness kept to the victim dies with it.
  const other = ['n1', 'n2', 'n3'].find((n) => n !== victim) ?? 'n2';
  await c.kill(victim);
  c.start(victim);
  await c.allReady();
  const restarted = await waitFor(`${victim} to be alive again`, async () => {
    const n = (await c.get<ClusterView>(other, '/v1/cluster')).body.nodes.find((x) => x.id === victim);
    return n?.state === 'alive' ? n : undefined;
  }, 20_000);
  t.equal(restarted.draining, true, 'the drain outlasts a crash and restart of the node');

  const undo = await cli(admin, 'nodes', 'undrain', victim);
  t.equal(undo.status, 0, undo.stderr);
  t.match(undo.stdout, `${victim} undrained`);
  t.equal((await c.get<ClusterView>(other, '/v1/cluster')).body.nodes.find((n) => n.id === victim)?.draining, false);
  const noWait = await cli(admin, 'nodes', 'drain', victim, '--no-wait');
  t.equal(noWait.status, 0);
  t.match(noWait.stdout, `${victim} draining`);
  t.equal((await cli(admin, 'nodes', 'drain', victim, '--undo')).status, 0, '--undo undrains');
  t.equal((await c.get<ClusterView>(other, '/v1/cluster')).body.nodes.find((n) => n.id === victim)?.draining, false);
});
