// Jobs in real Docker containers through a real cluster: three `workrs start
// --runtime docker` processes on the host's engine run submitted jobs, with uploaded
// files in /work, report their exit codes, stream their logs and hand back their
// declared outputs as a result archive. Needs Docker: fails without it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BINARY } from '../process/harness.js';
import { waitFor } from '../helpers/wait.js';
import { dockerCluster } from './cluster-containers.js';

interface JobView {
  state: string;
  exitCode: number | null;
  node: string | null;
}

t.test('jobs run in Docker on the cluster, with uploaded files, and their exit codes come back', async (t) => {
  const { c, passed } = await dockerCluster(t);

  const form = new FormData();
  form.append('spec', JSON.stringify({ command: ['sh', 'job.sh'], files: ['job.sh', 'input.txt'] }));
  form.append('file', new Blob(['read x < input.txt; echo "got $x"; exit $((x + 1))\n']), 'job.sh');
  form.append('file', new Blob(['41\n']), 'input.txt');
  const submitted = await fetch(`${c.url('n1')}/v1/jobs`, { method: 'POST', body: form, headers: await c.authHeaders() });
  t.equal(submitted.status, 202);
  const { id } = (await submitted.json()) as { id: string };
  const plain = await c.post<{ id: string }>('n2', '/v1/jobs', { command: ['sh', '-c', 'echo hello; exit 0'] });

  const done = async (jobId: string): Promise<JobView> =>
    waitFor(`job ${jobId} to finish`, async () => {
      const j = (await c.get<JobView>('n3', `/v1/jobs/${jobId}`)).body;
      return j.state === 'succeeded' || j.state === 'failed' ? j : undefined;
    }, 60_000, 200);
  const withFiles = await done(id);
  t.equal(withFiles.state, 'failed', 'a non-zero exit makes the job failed');
  t.equal(withFiles.exitCode, 42, 'the script read its uploaded input (41) and exited 42');
  const hello = await done(plain.body.id);
  t.equal(hello.state, 'succeeded');
  t.equal(hello.exitCode, 0);

  // The same through the CLI: a script file uploaded with --file, --wait returns its exit code.
  const env = { ...process.env, ...(await c.cliEnv()) };
  const script = join(c.dir, 'job.sh');
  writeFileSync(script, 'echo from the CLI; exit 5\n');
  const cli = spawnSync(BINARY, ['submit', '--server', c.url('n3'), '--file', script, '--wait', '--', 'sh', 'job.sh'], { env, encoding: 'utf8', timeout: 120_000 });
  t.equal(cli.status, 5, `workrs submit --file … --wait exits with the job's code (stderr: ${cli.stderr.trim().split('\n').at(-1)})`);
  t.match(cli.stdout.trim(), /^j-/, 'and printed the job id');

  // Outputs and logs: followed while it runs, then the result archive from another node.
  const outputs = join(c.dir, 'outputs.sh');
  writeFileSync(outputs, 'mkdir -p out/deep; for i in 1 2 3 4 5; do echo line $i; sleep 0.4; done; echo oops >&2; echo 42 > out/deep/answer.txt; echo done > report.txt\n');
  const sub = spawnSync(BINARY, ['submit', '--server', c.url('n1'), '--file', outputs, '--output', 'out', '--output', 'report.txt', '--output', 'never-written.txt', '--', 'sh', 'outputs.sh'], { env, encoding: 'utf8' });
  const outId = sub.stdout.trim();
  const follow = spawnSync(BINARY, ['logs', '-f', outId, '--server', c.url('n2')], { env, encoding: 'utf8', timeout: 120_000 });
  t.equal(follow.status, 0, `logs -f (${follow.stderr.trim()})`);
  t.equal(follow.stdout, 'line 1\nline 2\nline 3\nline 4\nline 5\noops\n', 'the followed log holds stdout and stderr in order, each line once');
  await done(outId);
  const dir = join(c.dir, 'result');
  const res = spawnSync(BINARY, ['result', outId, '-o', dir, '--server', c.url('n3')], { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(res.status, 0, `result -o (${res.stderr.trim()})`);
  t.equal(readFileSync(join(dir, 'out/deep/answer.txt'), 'utf8'), '42\n', 'a declared folder, with its subfolders');
  t.equal(readFileSync(join(dir, 'report.txt'), 'utf8'), 'done\n', 'a declared file');
  t.equal(readFileSync(join(dir, 'stdout.log'), 'utf8'), follow.stdout, 'stdout.log');
  t.equal(readFileSync(join(dir, 'exit-code'), 'utf8'), '0\n', 'exit-code');
  t.notOk(existsSync(join(dir, 'never-written.txt')), 'an output the job never wrote is absent');
  passed();
});
