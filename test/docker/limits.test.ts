// What a job may consume, on the machine's Docker engine: the node's default memory,
// CPU and pids limits on a job that names none (no swap beyond memory), its log rotated
// by Docker and streamed by the node (the node's memory does not grow with a job's
// output), a spec above the node's maximum refused at submission, and outputs beyond
// the result cap failing the job with the reason. Real Docker: these tests FAIL without it.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import t from 'tap';
import { DockerRuntime } from '../../src/worker/docker-runtime.js';
import { containerName } from '../../src/worker/docker-names.js';
import { DEFAULT_JOB_LIMITS, logKeepBytes, type JobLimits } from '../../src/worker/job-limits.js';
import { rssMiB } from '../adversarial/health.js';
import { BINARY } from '../process/harness.js';
import { waitFor } from '../helpers/wait.js';
import { dockerCluster, finishedJob } from './cluster-containers.js';
import { mainEngine, testLogger } from './engines.js';
import { assignment, containerOf, execIn, Exits, removeNodeContainers, uid } from './fixtures.js';

const MIB = 1024 * 1024;
const engine = await mainEngine();
const { docker } = engine;

/** Prints `mib` MiB of 'x' in lines of 1000, then END. */
const printing = (mib: number, then = ''): string[] => ['sh', '-c', `dd if=/dev/zero bs=1048576 count=${mib} 2>/dev/null | tr '\\0' x | fold -w 1000; echo END${then}`];

/** Samples `pid`'s resident memory every 100 ms until `done` settles; the highest seen, in MiB. */
async function peakRss<T>(pid: number, done: Promise<T>): Promise<{ value: T; peakMiB: number }> {
  let peakMiB = rssMiB(pid);
  let settled = false;
  const sampler = (async () => {
    while (!settled) {
      peakMiB = Math.max(peakMiB, rssMiB(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    return { value: await done, peakMiB };
  } finally {
    settled = true;
    await sampler;
  }
}

/** Bytes of a container's json-file log on disk, rotated files included. */
async function logFilesBytes(logPath: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dirname(logPath))) if (name.startsWith(basename(logPath))) total += (await stat(join(dirname(logPath), name))).size;
  return total;
}

t.test('a job without resources gets the node defaults, no swap, a pids limit and a rotated log; the log is streamed, not gathered', async (t) => {
  const limits: JobLimits = { ...DEFAULT_JOB_LIMITS, defaultMemoryMB: 96, defaultCpus: 0.5, pidsLimit: 64, logFileMB: 1, logFiles: 2 };
  const stagingDir = await mkdtemp(join(tmpdir(), 'workrs-limits-'));
  const nodeId = `limits-${uid()}`;
  const runtime = new DockerRuntime({ docker, nodeId, stagingDir, logger: testLogger, limits });
  t.teardown(async () => {
    runtime.detach();
    await removeNodeContainers(docker, nodeId);
    await rm(stagingDir, { recursive: true, force: true });
  });
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  const exits = new Exits();
  await runtime.start(assignment(key.jobId, 1, { command: printing(96, '; sleep 600') }), exits.onExit);
  const info = await containerOf(docker, key).inspect();
  t.equal(info.HostConfig.Memory, 96 * MIB, 'Memory: the node default');
  t.equal(info.HostConfig.MemorySwap, 96 * MIB, 'MemorySwap = Memory: no swap');
  t.equal((info.HostConfig as { NanoCpus?: number }).NanoCpus, 0.5e9, 'NanoCpus: the node default');
  t.equal(info.HostConfig.PidsLimit, 64, 'PidsLimit');
  t.same(info.HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '2' } }, 'json-file log, rotated');
  t.equal((await execIn(docker, key, ['cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes'])).trim(), String(96 * MIB), 'the kernel enforces it');

  const before = rssMiB(process.pid);
  await waitFor('the job to print its 96 MiB', async () => ((await runtime.logBytes(key)).toString().endsWith('END\n') ? true : undefined), 180_000, 1000);
  t.ok((await logFilesBytes(info.LogPath)) <= 2 * 1024 * 1024 + 64 * 1024, `Docker keeps at most 2 files of 1 MiB on disk (${await logFilesBytes(info.LogPath)} bytes)`);
  const { value: streamed, peakMiB } = await peakRss(process.pid, (async () => {
    let bytes = 0;
    for await (const chunk of await runtime.logs(key, { follow: false })) bytes += (chunk as Buffer).length;
    return bytes;
  })());
  t.ok(streamed > 0 && streamed <= logKeepBytes(limits), `the log read back is Docker's rotated tail (${streamed} bytes)`);
  t.ok(peakMiB - before < 64, `reading it did not grow this process's memory (${before.toFixed(0)} → ${peakMiB.toFixed(0)} MiB)`);

  await runtime.kill(key);
  await waitFor('the exit', () => (exits.codes.length > 0 ? true : undefined), 30_000, 100);
  const tarPath = join(stagingDir, 'result.tar');
  const exported = await runtime.exportResult(key, exits.codes[0] ?? -1, [], tarPath);
  t.same(exported, { missing: [], failure: null });
  const unpacked = await mkdtemp(join(tmpdir(), 'workrs-limits-result-'));
  t.teardown(() => rm(unpacked, { recursive: true, force: true }));
  t.equal(spawnSync('tar', ['-xf', tarPath, '-C', unpacked]).status, 0);
  const logBytes = (await stat(join(unpacked, 'stdout.log'))).size;
  t.ok(logBytes > 0 && logBytes <= logKeepBytes(limits), `the result's stdout.log is bounded (${logBytes} bytes)`);
});

interface JobView {
  state: string;
  exitCode: number | null;
  node: string | null;
  epoch: number;
  attempts: Array<{ failure: string | null }>;
}

t.test('through a cluster: defaults on the container, the maximum refused with 400, outputs over the cap fail the job with the reason, a long log does not grow the node', async (t) => {
  const { c, passed } = await dockerCluster(t, { jobMemoryMb: 128, maxJobMemoryMb: 512, maxJobCpus: 1, maxResultMb: 1, jobLogFileMb: 2, jobLogFiles: 2 });

  const above = await c.post<{ error: { code: string; message: string } }>('n1', '/v1/jobs', { command: ['true'], memoryMB: 1024 });
  t.equal(above.status, 400, 'memoryMB above the node maximum: 400');
  t.equal(above.body.error.code, 'RESOURCES_ABOVE_MAXIMUM');
  t.match(above.body.error.message, /memoryMB: asks for 1024 MB, more than this node's maximum of 512 MB/);
  t.equal((await c.post<unknown>('n2', '/v1/jobs', { command: ['true'], cpus: 2 })).status, 400, 'cpus above it: 400');
  const env = { ...process.env, ...(await c.cliEnv()) };
  const cli = spawnSync(BINARY, ['submit', '--server', c.url('n3'), '--memory', '2g', '--', 'true'], { env, encoding: 'utf8' });
  t.not(cli.status, 0, 'the CLI exits non-zero');
  t.match(cli.stderr, /maximum of 512 MB/, `and says why (${cli.stderr.trim()})`);

  const sleeper = (await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sleep', '600'], checkpoint: { mode: 'off' } })).body.id;
  const running = await waitFor('the sleeper to run', async () => {
    const j = (await c.get<JobView>('n1', `/v1/jobs/${sleeper}`)).body;
    return j.state === 'running' && j.node ? j : undefined;
  }, 60_000, 200);
  const info = await waitFor('its container', () => docker.getContainer(containerName({ jobId: sleeper, epoch: running.epoch })).inspect(), 60_000, 200);
  t.equal(info.HostConfig.Memory, 128 * MIB, 'the default memory of --job-memory-mb');
  t.equal(info.HostConfig.MemorySwap, 128 * MIB, 'no swap');
  t.equal((info.HostConfig as { NanoCpus?: number }).NanoCpus, 1e9, 'one CPU by default');
  t.equal(info.HostConfig.PidsLimit, 4096);
  t.same(info.HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-size': '2m', 'max-file': '2' } });
  await c.request('n1', `/v1/jobs/${sleeper}`, { method: 'DELETE' });

  const big = (await c.post<{ id: string }>('n2', '/v1/jobs', { command: ['sh', '-c', 'echo writing; dd if=/dev/zero of=/work/big.bin bs=1048576 count=3 2>/dev/null; echo small > /work/small.txt'], outputs: ['small.txt', 'big.bin'] })).body.id;
  const failed = await finishedJob<JobView>(c, 'n3', big);
  t.equal(failed.state, 'failed', 'outputs over the cap: the job fails');
  t.equal(failed.exitCode, 0, 'though its process exited 0');
  t.match(failed.attempts.at(-1)?.failure, /outputs exceed this node's limit of 1 MiB per result \(--max-result-mb\), at \/work\/big\.bin/, 'the record says why');
  const status = spawnSync(BINARY, ['status', big, '--server', c.url('n1')], { env, encoding: 'utf8' });
  t.match(status.stdout, /failure\s+the job's outputs exceed/, '`workrs status` shows it');
  const resultDir = join(c.dir, 'big-result');
  const res = spawnSync(BINARY, ['result', big, '-o', resultDir, '--server', c.url('n1')], { env, encoding: 'utf8' });
  t.equal(res.status, 0, `the result is there (${res.stderr.trim()})`);
  t.same((await readdir(resultDir)).sort(), ['exit-code', 'stdout.log'], 'with the log and exit code only');

  const loud = (await c.post<{ id: string }>('n1', '/v1/jobs', { command: printing(160, '; sleep 5'), checkpoint: { mode: 'off' } })).body.id;
  const node = await waitFor('the loud job to run', async () => (await c.get<JobView>('n1', `/v1/jobs/${loud}`)).body.node ?? undefined, 60_000, 200);
  const pid = c.node(node).proc?.pid ?? 0;
  const before = rssMiB(pid);
  const { value: done, peakMiB } = await peakRss(pid, (async () => {
    // Read its log while it prints, and wait through the result's export.
    await waitFor('some output', async () => ((await c.request(node, `/v1/jobs/${loud}/logs`)).ok ? true : undefined), 60_000, 500);
    const drained = await c.request(node, `/v1/jobs/${loud}/logs`, {}, 60_000).then((r) => r.arrayBuffer());
    t.ok(drained.byteLength <= 4 * MIB, `the log of a running job is Docker's rotated tail (${drained.byteLength} bytes)`);
    return finishedJob<JobView>(c, 'n2', loud);
  })());
  t.equal(done.state, 'succeeded');
  t.ok(peakMiB - before < 80, `the node's memory did not grow with 160 MiB of output (${before.toFixed(0)} → ${peakMiB.toFixed(0)} MiB)`);
  const log = await c.request('n3', `/v1/jobs/${loud}/logs`, {}, 60_000).then((r) => r.text());
  t.ok(log.length <= 4 * MIB && log.endsWith('END\n'), `the finished job's log is the last 4 MiB, to its end (${log.length} bytes)`);
  passed();
});
