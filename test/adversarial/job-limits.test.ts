// Someone with a submit token submits jobs that try to consume the boxes: real
// `workrs start --runtime docker` nodes on the machine's engine, their built-in
// defaults unless said otherwise.
//  - memory: a job that names no limit allocates 1.5 GiB; the default limit (1 GiB,
//    no swap) stops it (OOM-killed, exit 137) instead of the box paying for it. A
//    job growing without end would be the real attack; the test keeps the allocation
//    fixed, so that a build without limits (where it succeeds) does not take the
//    shared test machine down either;
//  - a spec asking for more memory than the box has is refused at submission (400);
//  - output: a job prints 256 MiB. Docker's log of it stays rotated on disk, and the
//    node streams it (the log of the running job, the result's export) instead of
//    holding it whole: the node's memory does not grow with it;
//  - results: a job writes outputs beyond the node's cap (WORKRS_MAX_RESULT_MB=2, set
//    through the environment so the same command line starts every build); the job
//    fails with the reason in its record, never a node crash or a disk filled.
// Node ids lim1..lim3 keep the containers apart from other tests on the engine.
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import t from 'tap';
import { connectDocker } from '../../src/worker/docker-endpoint.js';
import { containerName } from '../../src/worker/docker-names.js';
import { removeClusterContainers } from '../docker/cluster-containers.js';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster } from '../process/harness.js';
import { assertClusterHealthy, rssMiB } from './health.js';

const MIB = 1024 * 1024;
const docker = connectDocker();

interface JobView {
  state: string;
  exitCode: number | null;
  node: string | null;
  epoch: number;
  attempts?: Array<{ failure?: string | null }>;
}

/** Bytes of a container's json-file log on disk, rotated files included. */
async function logFilesBytes(logPath: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dirname(logPath))) if (name.startsWith(basename(logPath))) total += (await stat(join(dirname(logPath), name))).size;
  return total;
}

t.test('a job cannot take memory, disk or the node with it beyond the node limits', async (t) => {
  const c = await LocalCluster.create(['lim1', 'lim2', 'lim3']);
  for (const n of c.nodes.values()) n.args[n.args.indexOf('fake')] = 'docker';
  let failed = true;
  t.teardown(async () => {
    await c.destroy(failed);
    await removeClusterContainers(c);
  });
  // The nodes inherit this process's environment when they start.
  process.env.WORKRS_MAX_RESULT_MB = '2';
  c.startAll();
  delete process.env.WORKRS_MAX_RESULT_MB;
  const leader = await c.leader(60_000);
  await c.allReady(60_000);
  const { token: submitter } = await c.createToken('submit', { name: 'attacker' });
  const submit = async (node: string, spec: unknown): Promise<{ status: number; body: { id: string; error?: { code: string; message: string } } }> => c.post(node, '/v1/jobs', spec, {}, submitter);
  const finished = (id: string): Promise<JobView> =>
    waitFor(`job ${id} to finish`, async () => {
      const j = (await c.get<JobView>(leader, `/v1/jobs/${id}`)).body;
      return j.state === 'succeeded' || j.state === 'failed' ? j : undefined;
    }, 180_000, 250);

  // Memory: 1.5 GiB with no memoryMB in the spec.
  const hog = await submit(leader, { command: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=1536M', 'count=1'], checkpoint: { mode: 'off' } });
  t.equal(hog.status, 202);
  const hogDone = await finished(hog.body.id);
  t.equal(hogDone.state, 'failed', 'the job that took 1.5 GiB did not get it');
  t.equal(hogDone.exitCode, 137, 'killed by the memory limit (OOM: SIGKILL)');

  const huge = await submit(leader, { command: ['true'], memoryMB: 16 * 1024 * 1024 });
  t.equal(huge.status, 400, `a spec asking for 16 TiB of memory is refused at submission (${JSON.stringify(huge.body)})`);
  t.equal(huge.body.error?.code, 'RESOURCES_ABOVE_MAXIMUM');
  if (huge.status === 202) await c.request(leader, `/v1/jobs/${huge.body.id}`, { method: 'DELETE' });

  // Output: 256 MiB printed, then a pause to look at the container before it exits.
  const loud = await submit(leader, { command: ['sh', '-c', "dd if=/dev/zero bs=1048576 count=256 2>/dev/null | tr '\\0' x | fold -w 1000; echo END; sleep 20"], checkpoint: { mode: 'off' } });
  t.equal(loud.status, 202);
  const running = await waitFor('the loud job to run', async () => {
    const j = (await c.get<JobView>(leader, `/v1/jobs/${loud.body.id}`)).body;
    return j.state === 'running' && j.node !== null ? j : undefined;
  }, 60_000, 200);
  const node = running.node ?? '';
  const pid = c.node(node).proc?.pid ?? 0;
  const before = rssMiB(pid);
  let peak = before;
  let sampling = true;
  const sampler = (async () => {
    // Until the job is done, or the node is gone (a crash: the health check says so).
    while (sampling && c.node(node).proc !== null) {
      peak = Math.max(peak, rssMiB(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let loudDone: JobView;
  try {
    const info = await waitFor('its container', () => docker.getContainer(containerName({ jobId: loud.body.id, epoch: running.epoch })).inspect(), 60_000, 200);
    await waitFor('the job to print everything', async () => {
      const res = await c.request(node, `/v1/jobs/${loud.body.id}/logs`, {}, 60_000);
      const text = res.ok ? await res.text() : '';
      return text.endsWith('END\n') ? true : undefined;
    }, 180_000, 2000);
    const onDisk = await logFilesBytes(info.LogPath);
    t.ok(onDisk < 40 * MIB, `Docker keeps the log rotated on disk (${(onDisk / MIB).toFixed(1)} MiB of 256 MiB printed)`);
    loudDone = await finished(loud.body.id);
  } finally {
    sampling = false;
    await sampler;
  }
  t.equal(loudDone.state, 'succeeded');
  t.ok(peak - before < 100, `the node's memory did not grow with the job's output (${before.toFixed(0)} → ${peak.toFixed(0)} MiB)`);

  // Results: 8 MiB of outputs against a 2 MiB cap.
  const writer = await submit(leader, { command: ['sh', '-c', 'dd if=/dev/zero of=/work/big.bin bs=1048576 count=8 2>/dev/null; echo wrote'], outputs: ['big.bin'], checkpoint: { mode: 'off' } });
  t.equal(writer.status, 202);
  const writerDone = await finished(writer.body.id);
  t.equal(writerDone.state, 'failed', 'outputs over the cap fail the job');
  t.match(writerDone.attempts?.at(-1)?.failure ?? '', /outputs exceed this node's limit of 2 MiB per result/, 'and its record says why');
  const result = await c.request(leader, `/v1/jobs/${writer.body.id}/result`, {}, 60_000);
  t.equal(result.status, 200, 'its result (the log) is there');
  t.ok((await result.arrayBuffer()).byteLength < 2 * MIB, 'without the outputs');

  await assertClusterHealthy(t, c);
  failed = t.counts.fail > 0;
});
