// The checkpoint → kill → restore-elsewhere scenario, shared by the one-engine and the
// two-engine tests: a job counting in memory and appending to a file is checkpointed
// while it runs, its container is killed, and a NEW container (possibly on another
// engine) resumes it. The job ends by printing its file, so the final log shows at
// once whether any line was lost or repeated, in memory or on disk.
import { readFile, readdir } from 'node:fs/promises';
import type Docker from 'dockerode';
import { bundlePaths, readBundleMeta } from '../../src/worker/checkpoint-bundle.js';
import { removeCheckpointLeftovers } from '../../src/worker/ctrd-leftovers.js';
import { listCheckpoints } from '../../src/worker/docker-checkpoint.js';
import type { DockerRuntime } from '../../src/worker/docker-runtime.js';
import type { CheckpointResult } from '../../src/worker/runtime.js';
import { snapshotImageRef } from '../../src/worker/docker-names.js';
import { waitFor } from '../helpers/wait.js';
import { assignment, containerOf, countingJob, countingJobLog, Exits, numbersIn, uid } from './fixtures.js';

export interface Side {
  runtime: DockerRuntime;
  docker: Docker;
  engine: string;
}

/** The subset of a tap Test this scenario uses. */
interface T {
  ok(v: unknown, msg: string): void;
  equal(a: unknown, b: unknown, msg: string): void;
  same(a: unknown, b: unknown, msg: string): void;
  comment(...args: unknown[]): void;
  teardown(fn: () => unknown): void;
}

const COUNT_TO = 60;
const EXIT_CODE = 5;

async function imageExists(docker: Docker, ref: string): Promise<boolean> {
  return docker
    .getImage(ref)
    .inspect()
    .then(
      () => true,
      (err: { statusCode?: number }) => {
        if (err.statusCode === 404) return false;
        throw err;
      },
    );
}

export async function checkpointKillRestore(t: T, source: Side, target: Side): Promise<CheckpointResult> {
  const jobId = `j-${uid()}`;
  const first = { jobId, epoch: 1 };
  const second = { jobId, epoch: 2 };
  const spec = { command: countingJob(COUNT_TO, EXIT_CODE), memoryMB: 64, cpus: 1 };
  const firstExits = new Exits();
  await source.runtime.start(assignment(jobId, 1, spec), firstExits.onExit);
  t.teardown(() => source.runtime.stop(first));
  await waitFor('the job to count to 15', async () => (numbersIn((await source.runtime.logBytes(first)).toString()).length >= 15 ? true : undefined), 20_000, 50);

  const cp = await source.runtime.checkpoint(first, 'cp1');
  t.comment(`checkpoint on ${source.engine}: durationMs=${cp.durationMs.toFixed(0)} frozenMs=${cp.frozenMs.toFixed(0)} bytes=${cp.bytes} (criu ${cp.criuBytes}, image tar ${cp.imageBytes}) logOffset=${cp.logOffset}`);
  const meta = await readBundleMeta(cp.bundleDir);
  const bundleLog = await readFile(bundlePaths(cp.bundleDir).log);
  t.equal(bundleLog.length, cp.logOffset, 'the bundle carries the log up to the offset');
  t.equal(meta.logOffset, cp.logOffset, 'meta.json has the same offset');
  t.ok((await readdir(bundlePaths(cp.bundleDir).checkpoint)).includes('inventory.img'), 'the bundle carries the CRIU images');
  const atCheckpoint = numbersIn(bundleLog.toString());
  const lastCounted = atCheckpoint.at(-1) ?? -1;
  t.ok(lastCounted >= 14, `the job had counted to ${lastCounted} at the checkpoint`);
  t.same(await source.runtime.running(), [first], 'the job kept running after the checkpoint (leave-running)');
  const ref = snapshotImageRef(first, 'cp1');
  t.equal(await imageExists(source.docker, `${ref.repo}:${ref.tag}`), false, 'the engine-side snapshot image is removed after the export');
  t.same(await listCheckpoints(containerOf(source.docker, first)), [], 'the engine-side checkpoint is removed after the export');

  // It goes on counting; its output past the offset must not appear in the job's log.
  await waitFor('the original to count past the checkpoint', async () => (numbersIn((await source.runtime.logBytes(first)).toString()).length >= atCheckpoint.length + 5 ? true : undefined), 20_000, 50);
  const originalLog = await source.runtime.logBytes(first);
  t.ok(originalLog.subarray(0, cp.logOffset).equals(bundleLog), "the bundle's log is the original's log cut at the offset");
  await source.runtime.stop(first);
  t.same(firstExits.codes, [], 'the killed original reports no exit');

  const snapshot = meta.snapshotImage;
  if (snapshot !== null && source.docker !== target.docker) t.equal(await imageExists(target.docker, snapshot.id), false, `the snapshot image is not on ${target.engine} before the restore`);
  const secondExits = new Exits();
  const restored = await target.runtime.restore(assignment(jobId, 2, spec), cp.bundleDir, secondExits.onExit);
  t.teardown(() => target.runtime.stop(second));
  if (!restored.restored) throw new Error(`restore on ${target.engine} failed: ${restored.reason}`);
  t.same(await target.runtime.running(), [second], `the new epoch runs on ${target.engine}`);
  t.equal(restored.pages, 'linked', "CRIU read the memory pages through links to the bundle's files, not from Docker's copies");
  const { leftoversRemoved } = await restored.cleanedUp;
  t.comment(`restore on ${target.engine}: durationMs=${restored.durationMs.toFixed(0)} (containerd copies removed: ${leftoversRemoved})`);
  t.ok(leftoversRemoved >= 1, "containerd's copy of the checkpoint was found and removed once the restore's cleanup settled");
  t.same(await removeCheckpointLeftovers(bundlePaths(cp.bundleDir).checkpoint), [], 'no copy of this checkpoint is left in the temp folders');

  await waitFor('the resumed job to finish', () => (secondExits.codes.length > 0 ? true : undefined), 30_000, 50);
  t.same(secondExits.codes, [EXIT_CODE], "the resumed job's exit code is reported once");
  // The resumed attempt's log: the bundle's (cut at the checkpoint's offset), then what
  // the restored processes wrote.
  const resumedLog = (await target.runtime.logBytes(second)).toString();
  t.equal(resumedLog.startsWith(bundleLog.toString()), true, "the resumed attempt's log begins with the checkpoint's");
  const sinceRestore = resumedLog.slice(bundleLog.toString().length);
  t.equal(sinceRestore.includes('START'), false, 'the resumed job did not start over');
  t.equal(numbersIn(sinceRestore)[0], lastCounted + 1, `the count continued from ${lastCounted}`);
  // The whole story: START once, every number once, and the file (printed at the end)
  // with every line once: memory and disk were captured at the same instant.
  t.equal(resumedLog, countingJobLog(COUNT_TO), 'START once, 0..59 once each in the log and in the file');

  await target.runtime.stop(second);
  if (snapshot !== null) t.equal(await imageExists(target.docker, snapshot.id), false, `stop() removed the snapshot image from ${target.engine}`);
  return cp;
}
