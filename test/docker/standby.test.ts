// Standby containers (src/worker/docker-standby.ts): a takeover prepared ahead on a
// node that holds a job's checkpoint. A container made from the bundle and not
// started; a restore from that bundle claims it (renamed to the attempt's name, which
// carries the epoch) and only starts it; the job's count and file go on exactly. The
// claimed container is the attempt's for running(), adopt() and stop(); an unclaimed
// one is never an attempt, goes when replaced, when the job is restored from another
// bundle, and at adopt. Real Docker + CRIU: these tests FAIL without them.
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import t from 'tap';
import { DockerRuntime } from '../../src/worker/docker-runtime.js';
import { containerName, standbyName } from '../../src/worker/docker-names.js';
import { waitFor } from '../helpers/wait.js';
import { mainEngine, testLogger } from './engines.js';
import { assignment, COUNTING_JOB, execIn, Exits, isContiguousFrom, numbersIn, testRuntime, uid } from './fixtures.js';

const { docker } = await mainEngine();
const source = await testRuntime(docker);
t.teardown(source.cleanup);
const target = await testRuntime(docker);
t.teardown(target.cleanup);

const spec = { command: COUNTING_JOB, memoryMB: 64 };

/** A job counting on the source node, checkpointed; its bundle copied into the target's staging folder under `copies` names. */
async function checkpointedJob(t: { teardown(fn: () => unknown): void }, copies: string[]): Promise<{ jobId: string; counted: number; dirs: string[] }> {
  const jobId = `j-${uid()}`;
  const first = { jobId, epoch: 1 };
  await source.runtime.start(assignment(jobId, 1, spec), () => {});
  t.teardown(() => source.runtime.stop(first));
  await waitFor('the job to count', async () => (numbersIn((await source.runtime.logBytes(first)).toString()).length >= 10 ? true : undefined), 20_000, 50);
  const checkpoint = await source.runtime.checkpoint(first, 'cp1');
  const counted = numbersIn((await source.runtime.logBytes(first)).toString().slice(0, checkpoint.logOffset)).at(-1) ?? -1;
  const dirs: string[] = [];
  for (const name of copies) {
    const dir = join(target.stagingDir, `${name}-${uid()}`);
    await cp(checkpoint.bundleDir, dir, { recursive: true });
    dirs.push(dir);
  }
  return { jobId, counted, dirs };
}

async function inspectByName(name: string): Promise<Docker.ContainerInspectInfo | null> {
  return docker
    .getContainer(name)
    .inspect()
    .catch((err: { statusCode?: number }) => {
      if (err.statusCode === 404) return null;
      throw err;
    });
}

t.test('a restore claims the standby made from its bundle: only the start remains, and the count and file go on exactly', async (t) => {
  const { jobId, counted, dirs } = await checkpointedJob(t, ['standby']);
  const dir = dirs[0] as string;
  const second = { jobId, epoch: 2 };
  await target.runtime.prepareStandby(jobId, dir, 'blob-1');
  const standby = await inspectByName(standbyName(jobId));
  t.ok(standby, 'a standby container exists under the standby name');
  t.equal(standby?.State.Status, 'created', 'made, not started');
  t.equal(standby?.Config.Labels['workrs.standby'], 'blob-1', 'labelled with its checkpoint');
  t.equal(standby?.Config.Labels['workrs.epoch'], undefined, 'with no epoch');
  t.same(await target.runtime.running(), [], 'a standby is no attempt');
  t.same([...target.runtime.standbys()], [[jobId, dir]], 'the runtime knows it');

  await source.runtime.stop({ jobId, epoch: 1 }); // the box of the first attempt is gone
  const exits = new Exits();
  const result = await target.runtime.restore(assignment(jobId, 2, spec), dir, exits.onExit);
  t.teardown(() => target.runtime.stop(second));
  t.equal(result.restored, true, 'restored');
  if (!result.restored) return;
  t.comment(`restore from the standby: ${result.durationMs.toFixed(0)} ms, steps ${JSON.stringify(result.steps)}`);
  t.equal(result.fromStandby, true, 'from the standby');
  t.equal(result.containerId, standby?.Id, 'in the standby container itself');
  t.equal(result.steps?.container, undefined, 'no container was made at the restore');
  t.equal((await inspectByName(containerName(second)))?.Id, standby?.Id, "renamed to the attempt's name");
  t.same(target.runtime.standbys().size, 0, 'the standby is used up');

  await waitFor('the resumed job to count 10 more', async () => (numbersIn((await target.runtime.logBytes(second)).toString()).filter((n) => n > counted).length >= 10 ? true : undefined), 20_000, 50);
  const resumed = numbersIn((await target.runtime.logBytes(second)).toString());
  t.ok(isContiguousFrom(resumed, 0), `the log counts on without a gap or a repeat from ${counted} (inherited up to the checkpoint)`);
  const file = numbersIn(await execIn(docker, second, ['cat', '/work/count.txt']));
  t.ok(isContiguousFrom(file, 0), 'the file counts on without a gap or a repeat: it was captured at the instant of the memory');
  t.same(await target.runtime.running(), [second], 'the claimed container is the attempt');

  // The node's process restarts: the claimed container is adopted by its name.
  target.runtime.detach();
  const again = new DockerRuntime({ docker, nodeId: target.nodeId, stagingDir: target.stagingDir, logger: testLogger });
  t.teardown(() => again.detach());
  t.same(await again.adopt(() => {}), [second], 'adopted after a restart, its epoch read from its name');
  await again.stop(second);
  t.equal(await inspectByName(containerName(second)), null, 'stop() removes it');
  t.same(exits.codes, [], 'no exit was reported');
});

t.test('a standby goes when replaced, when the job is restored from another bundle, and at adopt', async (t) => {
  const { jobId, dirs } = await checkpointedJob(t, ['older', 'newer', 'cold', 'last']);
  const [older, newer, cold, last] = dirs as [string, string, string, string];
  const second = { jobId, epoch: 2 };
  await target.runtime.prepareStandby(jobId, older, 'blob-1');
  const first = (await inspectByName(standbyName(jobId)))?.Id;
  await target.runtime.prepareStandby(jobId, newer, 'blob-2');
  const replaced = await inspectByName(standbyName(jobId));
  t.not(replaced?.Id, first, 'a new checkpoint replaces the standby');
  t.equal(replaced?.Config.Labels['workrs.standby'], 'blob-2');
  const gone = await docker.getContainer(first as string).inspect().then(() => 'exists', (err: { statusCode?: number }) => err.statusCode);
  t.equal(gone, 404, 'the replaced container was removed');

  await source.runtime.stop({ jobId, epoch: 1 });
  const result = await target.runtime.restore(assignment(jobId, 2, spec), cold, () => {});
  t.teardown(() => target.runtime.stop(second));
  t.equal(result.restored, true, 'restored from another folder');
  if (!result.restored) return;
  t.equal(result.fromStandby, false, 'without the standby');
  t.equal(await inspectByName(standbyName(jobId)), null, 'the standby of another bundle was removed');
  t.same(await target.runtime.running(), [second]);
  await target.runtime.stop(second);

  await target.runtime.prepareStandby(jobId, last, 'blob-3');
  const again = new DockerRuntime({ docker, nodeId: target.nodeId, stagingDir: target.stagingDir, logger: testLogger });
  t.teardown(() => again.detach());
  t.same(await again.adopt(() => {}), [], 'nothing to adopt');
  t.equal(await inspectByName(standbyName(jobId)), null, 'adopt removed the standby the process before made');
});
