// The CLI against a real secure-mode cluster (HTTPS with the cluster CA, a submit
// token): submit --wait exits with the job's exit code, status/jobs/nodes print,
// errors map to docs/api.md's exit codes (1 not found, 2 usage, 3 unreachable), the
// API refuses requests without a valid token, and logs and results reach the CLI from
// every node. The TLS options and token commands: cli-tls.test.ts.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { BINARY, LocalCluster } from '../process/harness.js';

t.test('the CLI drives a secure cluster with a submit token', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.allReady();
  const tokenFile = join(c.dir, 'submit.token');
  writeFileSync(tokenFile, `${(await c.createToken('submit')).token}\n`, { mode: 0o600 });
  const caFile = c.caFile();
  const server = c.url('n2');
  const env = { ...process.env, WORKRS_TOKEN_FILE: tokenFile, WORKRS_CA_FILE: caFile };
  const cli = (...args: string[]) => spawnSync(BINARY, args, { encoding: 'utf8', timeout: 60_000, env: { ...env, WORKRS_SERVER: server } });

  const nodes = await (async () => {
    for (let i = 0; i < 100; i++) {
      const r = cli('nodes', '--json');
      if (r.status === 0 && (JSON.parse(r.stdout) as { nodes: Array<{ state: string }> }).nodes.filter((n) => n.state === 'alive').length === 3) return r;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error('the cluster never listed three alive nodes');
  })();
  t.equal(nodes.status, 0);

  const ok = cli('submit', '--wait', '--env', 'FAKE_SECONDS=0.5', '--', 'true');
  t.equal(ok.status, 0, `submit --wait of a succeeding job exits 0 (${ok.stderr})`);
  const id = ok.stdout.trim();
  t.match(id, /^j-[0-9a-f-]+$/, 'stdout is the job id alone');
  t.match(ok.stderr, /succeeded/, 'progress on stderr ends with the final state');

  const bad = cli('submit', '--wait', '--env', 'FAKE_SECONDS=0.2', '--env', 'FAKE_EXIT_CODE=7', '--', 'false');
  t.equal(bad.status, 7, 'submit --wait exits with the job exit code');

  t.equal(cli('wait', id).status, 0, 'wait of a succeeded job exits 0');
  const badId = bad.stdout.trim();
  const waited = cli('wait', '--json', badId);
  t.equal(waited.status, 7, "wait exits with the job's exit code");
  t.match(JSON.parse(waited.stdout) as unknown, { id: badId, state: 'failed', exitCode: 7 }, 'wait --json prints the final job');
  const long = cli('submit', '--env', 'FAKE_SECONDS=600', '--', 'sleep', '600');
  const longId = long.stdout.trim();
  const timedOut = cli('wait', '--timeout', '1s', longId);
  t.equal(timedOut.status, 124, 'wait --timeout past its time exits 124');
  t.match(timedOut.stderr, /timed out after 1s: job .* is running/);
  const cancelled = cli('cancel', '--json', longId);
  t.equal(cancelled.status, 0);
  t.match(JSON.parse(cancelled.stdout) as unknown, { id: longId }, 'cancel --json prints the answer');
  t.equal(cli('wait', longId).status, 1, 'wait of a cancelled job exits 1');
  const table = cli('jobs', '--limit', '2'); // of the three jobs so far
  t.match(table.stdout, /^ID\s+NAME\s+STATE\s+EXIT\s+AGE\s+NODE\s+COMMAND$/m, 'jobs has NAME, EXIT and AGE columns');
  t.match(table.stdout, new RegExp(`^${badId}\\s+-\\s+failed\\s+7\\s+\\d+s\\s`, 'm'), 'the failed job (no name) with its exit code and age');
  t.match(table.stderr, /2 jobs listed; more: use --all/, 'a cut list says so');

  const status = cli('status', id);
  t.equal(status.status, 0);
  t.match(status.stdout, /state\s+succeeded \(exit 0\)/);
  const jobs = cli('jobs', '--state', 'succeeded');
  t.match(jobs.stdout, new RegExp(id));
  t.equal(cli('status', 'j-does-not-exist').status, 1, 'an unknown job exits 1');
  t.equal(cli('submit', '--estimate', 'soon', '--', 'true').status, 2, 'a bad duration is a usage error');
  const unreachable = spawnSync(BINARY, ['jobs', '--server', 'http://127.0.0.1:1'], { encoding: 'utf8' });
  t.equal(unreachable.status, 3, 'no node answering exits 3');
  t.match(unreachable.stderr, /cannot reach the cluster/);
  // --server takes several nodes: a dead one is passed over, a submission included.
  // Ports nothing listens on (fetch refuses port 1 outright: 'bad port').
  const [closedA = 0, closedB = 0] = await freePorts(2);
  const dead = `https://127.0.0.1:${closedA}`;
  const refused = spawnSync(BINARY, ['jobs', '--server', `http://127.0.0.1:${closedB}`], { encoding: 'utf8' });
  t.match(refused.stderr, /no node answers there: start one, or name a running node's --api address with --server/, 'a refused connection names the fix');
  const listed = spawnSync(BINARY, ['jobs', '--server', `${dead},${server}`], { encoding: 'utf8', timeout: 60_000, env });
  t.equal(listed.status, 0, `jobs with a dead node first in --server answers from the next (${listed.stderr})`);
  t.match(listed.stdout, new RegExp(id));
  const past = spawnSync(BINARY, ['submit', '--server', ` ${dead} , ${server} `, '--env', 'FAKE_SECONDS=0.1', '--', 'true'], { encoding: 'utf8', timeout: 60_000, env });
  t.equal(past.status, 0, `submit goes to the node that answers (${past.stderr})`);
  t.match(past.stdout.trim(), /^j-[0-9a-f-]+$/);
  const none = spawnSync(BINARY, ['jobs', '--server', `http://127.0.0.1:${closedA},http://127.0.0.1:${closedB}`], { encoding: 'utf8' });
  t.equal(none.status, 3, 'no node of the list answering exits 3');
  t.match(none.stderr, `none of the 2 nodes of --server answers (http://127.0.0.1:${closedA}: `, 'naming each');
  t.match(none.stderr, `; http://127.0.0.1:${closedB}: `);
  t.equal(spawnSync(BINARY, ['jobs', '--server', ' , '], { encoding: 'utf8' }).status, 2, 'an empty list is a usage error');

  // spawnSync blocked this process for seconds: let it see the keep-alive sockets the
  // server closed meanwhile, or fetch would reuse one and fail with "other side closed".
  await new Promise((r) => setTimeout(r, 100));
  const anonymous = await fetch(`${server}/v1/jobs`);
  t.equal(anonymous.status, 401, 'the API refuses a request without the token');
  const wrong = await fetch(`${server}/v1/jobs`, { headers: { authorization: 'Bearer wrong' } });
  t.equal(wrong.status, 401, 'and one with a wrong token');
  const noToken = spawnSync(BINARY, ['jobs'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, WORKRS_CA_FILE: caFile, WORKRS_SERVER: server, WORKRS_TOKEN_FILE: '' } });
  t.equal(noToken.status, 2, `the CLI without a token exits 2 (${noToken.stderr.trim()})`);
  t.equal((await fetch(`${server}/healthz`)).status, 200, 'health checks need no token');
  t.equal((await fetch(`${server}/v1/jobs/${id}/logs`)).status, 401, 'logs need the token');
  t.equal((await fetch(`${server}/v1/jobs/${id}/result`)).status, 401, 'results need the token');

  // logs and result, asked of every node, whichever ran the job.
  const slow = cli('submit', '--env', 'FAKE_SECONDS=3', '--output', 'out.txt', '--', 'true');
  const slowId = slow.stdout.trim();
  const early = cli('result', slowId, '-o', join(c.dir, 'early'));
  t.equal(early.status, 1, `no result while the job runs (${early.stderr.trim()})`);
  t.match(early.stderr, /JOB_NOT_FINISHED/);
  const followed = spawnSync(BINARY, ['logs', '-f', slowId, '--server', c.url('n3')], { encoding: 'utf8', timeout: 60_000, env });
  t.equal(followed.status, 0, `logs -f ends when the job does (${followed.stderr})`);
  t.match(followed.stdout, new RegExp(`fake run of ${slowId} epoch 1[^]*exit code 0\\n$`), 'the whole output, streamed to its end');
  // The log ends when the container exits; the job is final once the worker has stored
  // its result and the cluster applied jobExited, a moment later.
  await waitFor('the job to be final', async () => {
    const state = (await c.get<{ state: string }>('n1', `/v1/jobs/${slowId}`)).body.state;
    return state === 'pending' || state === 'running' ? undefined : state;
  });
  for (const node of ['n1', 'n2', 'n3']) {
    const dir = join(c.dir, `result-${node}`);
    const r = spawnSync(BINARY, ['result', slowId, '-o', dir, '--server', c.url(node)], { encoding: 'utf8', timeout: 60_000, env });
    t.equal(r.status, 0, `result from ${node} (${r.stderr.trim()})`);
    t.equal(readFileSync(join(dir, 'exit-code'), 'utf8'), '0\n');
    t.equal(readFileSync(join(dir, 'stdout.log'), 'utf8'), followed.stdout, `${node}: stdout.log is the log`);
    t.equal(cli('logs', slowId).stdout, followed.stdout, 'logs of a finished job come from its result');
  }
  const whole = followed.stdout.split(/(?<=\n)/);
  t.ok(whole.length >= 2, 'the fake job printed lines');
  t.equal(cli('logs', '--tail', '1', slowId).stdout, whole.at(-1), 'logs --tail 1: the last line');
  t.equal(cli('logs', '-n', '2', slowId).stdout, whole.slice(-2).join(''), 'logs -n 2: the last two');
  t.equal(cli('logs', '--tail', '0', slowId).stdout, '', '--tail 0: nothing');
  t.equal(cli('logs', '--tail', '1000', slowId).stdout, followed.stdout, 'more lines than the log has: all of it');
  t.equal(cli('logs', '--tail', '99999999999999', slowId).stdout, followed.stdout, 'a huge --tail: all of it, nothing allocated for it');
  t.equal(cli('logs', '--tail', '1', '-f', slowId).stdout, whole.at(-1), '--tail with -f of a finished job: the tail, nothing twice');
  t.equal(cli('logs', '--tail', 'x', slowId).status, 2, 'a bad --tail is a usage error');
  const tar = spawnSync(BINARY, ['result', slowId], { env: { ...env, WORKRS_SERVER: server } });
  t.equal(tar.status, 0);
  t.equal(tar.stdout.subarray(257, 262).toString(), 'ustar', 'without -o the tar goes to stdout');
  t.equal(cli('logs', 'j-does-not-exist').status, 1, 'logs of an unknown job exit 1');
  t.equal(cli('submit', '--output', 'stdout.log', '--', 'true').status, 2, 'an output named like the result archive\'s own log is refused');

  // nodes remove: admin only; the node is gone from the listing. A follower here; the
  // leader removing itself: test/process/remove-leader.test.ts.
  const leaderNow = await c.leader();
  const gone = ['n3', 'n2', 'n1'].find((n) => n !== leaderNow) as string;
  const asker = ['n1', 'n2', 'n3'].find((n) => n !== gone) as string;
  const notAdmin = cli('nodes', 'remove', gone);
  t.equal(notAdmin.status, 2, `a submit token may not remove a node (${notAdmin.stderr.trim()})`);
  const adminFile = join(c.dir, 'admin.token');
  writeFileSync(adminFile, `${(await c.createToken('admin')).token}\n`, { mode: 0o600 });
  const removed = spawnSync(BINARY, ['nodes', 'remove', gone, '--token-file', adminFile], { encoding: 'utf8', timeout: 60_000, env: { ...env, WORKRS_SERVER: c.url(asker) } });
  t.equal(removed.status, 0, `nodes remove ${gone} (${removed.stderr.trim()})`);
  t.equal(removed.stdout, `${gone} left\n`);
  const after = await waitFor(`${gone} to be listed as left`, async () => {
    const r = spawnSync(BINARY, ['nodes', '--json', '--server', c.url(asker)], { encoding: 'utf8', timeout: 60_000, env });
    const list = (JSON.parse(r.stdout) as { nodes: Array<{ id: string; state: string }> }).nodes;
    return list.find((n) => n.id === gone)?.state === 'left' ? list : undefined;
  });
  t.ok(after, `the cluster lists ${gone} as left`);
  t.equal(spawnSync(BINARY, ['nodes', 'remove', 'nx', '--token-file', adminFile], { encoding: 'utf8', timeout: 60_000, env: { ...env, WORKRS_SERVER: c.url(asker) } }).status, 1, 'an unknown node exits 1');
  failed = false;
});
