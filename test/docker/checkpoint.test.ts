// Checkpoint and restore on one engine with DockerRuntime: the one-instant capture
// (the CRIU capture hook copying the files while the dump holds the job frozen, and
// the pausing way: pause, CRIU dump, commit, unpause), the exported bundle, a restore
// into a NEW container, and a restore that fails with its reason. Real Docker + CRIU:
// these tests FAIL without them.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, cp, lstat, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { bundlePaths, readBundleMeta } from '../../src/worker/checkpoint-bundle.js';
import { removeCheckpointLeftovers } from '../../src/worker/ctrd-leftovers.js';
import { engineCheckpointDir } from '../../src/worker/docker-checkpoint.js';
import { jobFolderName, snapshotImageRef, standbyName } from '../../src/worker/docker-names.js';
import { PAGES_IMAGE, referenceFor } from '../../src/worker/pages-by-reference.js';
import { waitFor } from '../helpers/wait.js';
import { BASE_IMAGE, mainEngine } from './engines.js';
import { assignment, containerOf, COUNTING_JOB, execIn, Exits, numbersIn, testRuntime, uid } from './fixtures.js';
import { checkpointKillRestore } from './round-trip.js';

const engine = await mainEngine();
const { docker } = engine;
const node = await testRuntime(docker);
t.teardown(node.cleanup);
const { runtime } = node;

const pausingNode = await testRuntime(docker, undefined, { pausing: true });
t.teardown(pausingNode.cleanup);
const MODES = [
  { capture: 'hook', runtime },
  { capture: 'pause', runtime: pausingNode.runtime },
] as const;

for (const mode of MODES) {
  t.test(`checkpoint (leave running, ${mode.capture}), kill the original, restore into a new container: the count and the file continue exactly`, async (t) => {
    const side = { runtime: mode.runtime, docker, engine: 'the main engine' };
    const cp = await checkpointKillRestore(t, side, side);
    t.equal(cp.capture, mode.capture, `captured by ${mode.capture === 'hook' ? 'the CRIU hook (this test runs as root)' : 'pausing the job'}`);
  });
}

t.test('a restore from corrupted CRIU images fails with the reason and leaves nothing behind', async (t) => {
  const jobId = `j-${uid()}`;
  const first = { jobId, epoch: 1 };
  const second = { jobId, epoch: 2 };
  const spec = { command: COUNTING_JOB, memoryMB: 64 };
  await runtime.start(assignment(jobId, 1, spec), () => {});
  t.teardown(() => runtime.stop(first));
  await waitFor('the job to count', async () => (numbersIn((await runtime.logBytes(first)).toString()).length >= 3 ? true : undefined), 20_000, 50);
  const good = await runtime.checkpoint(first, 'cp1');
  t.teardown(() => runtime.stop(second));

  const bad = join(node.stagingDir, 'corrupted');
  await cp(good.bundleDir, bad, { recursive: true });
  const images = bundlePaths(bad).checkpoint;
  for (const name of await readdir(images)) {
    if (/^(core|pages|mm|pstree)-?.*\.img$/.test(name)) await writeFile(join(images, name), randomBytes(4096));
  }
  const exits = new Exits();
  const result = await runtime.restore(assignment(jobId, 2, spec), bad, exits.onExit);
  t.equal(result.restored, false, 'not restored');
  if (result.restored) return;
  t.comment(`reason: ${result.reason}`);
  t.match(result.reason, /criu failed/, "the reason is CRIU's failure as the engine reported it");
  t.match(result.reason, /restore/i);
  t.same(await runtime.running(), [first], 'only the original runs; the new epoch has no container');
  const gone = await containerOf(docker, second).inspect().then(() => 'exists', (err: { statusCode?: number }) => err.statusCode);
  t.equal(gone, 404, 'the failed container was removed');
  t.same(await removeCheckpointLeftovers(images), [], "containerd's copy of the bad images was removed too");
  t.same(exits.codes, [], 'a failed restore reports no exit');
  const ref = snapshotImageRef(first, 'cp1');
  const image = await docker.getImage(`${ref.repo}:${ref.tag}`).inspect().then(() => 'exists', (err: { statusCode?: number }) => err.statusCode);
  t.equal(image, 404, 'the snapshot image loaded for the failed restore was removed');

  // The caller's fallback: the same attempt can start from scratch.
  await runtime.start(assignment(jobId, 2, spec), () => {});
  await waitFor('the fresh start to print START', async () => ((await runtime.logBytes(second)).toString().startsWith('START\n0\n') ? true : undefined), 20_000, 50);
  t.pass('after a failed restore, start() runs the attempt from scratch');
});

t.test('linked pages CRIU cannot follow: the start fails, the restore places them and succeeds, and places them at once from then on', async (t) => {
  const warnings: string[] = [];
  const other = await testRuntime(docker, undefined, { logger: pino({ level: 'warn' }, { write: (line: string) => warnings.push((JSON.parse(line) as { msg: string }).msg) }) });
  t.teardown(other.cleanup);
  const jobId = `j-${uid()}`;
  const spec = { command: COUNTING_JOB, memoryMB: 64 };
  await other.runtime.start(assignment(jobId, 1, spec), () => {});
  t.teardown(() => other.runtime.stop({ jobId, epoch: 1 }));
  await waitFor('the job to count', async () => (numbersIn((await other.runtime.logBytes({ jobId, epoch: 1 })).toString()).length >= 3 ? true : undefined), 20_000, 50);
  const made = await other.runtime.checkpoint({ jobId, epoch: 1 }, 'cp1');
  await other.runtime.stop({ jobId, epoch: 1 });
  // A standby made from the bundle has its page images linked to the bundle's; they are
  // turned into links to nowhere, as on a host where containerd cannot see the node's folder.
  await other.runtime.prepareStandby(jobId, made.bundleDir, 'blob-1');
  const standby = await docker.getContainer(standbyName(jobId)).inspect();
  const { checkpointName } = await readBundleMeta(made.bundleDir);
  const target = engineCheckpointDir(((await docker.info()) as { DockerRootDir: string }).DockerRootDir, standby.Id, checkpointName);
  const pages = (await readdir(target)).filter((n) => PAGES_IMAGE.test(n));
  t.ok(pages.length > 0, 'the standby has page images');
  for (const name of pages) {
    t.ok((await lstat(join(target, name))).isSymbolicLink(), `${name} is a link to the bundle`);
    await rm(join(target, name));
    await symlink(referenceFor(`/nonexistent/${uid()}/${name}`), join(target, name));
  }
  for (const epoch of [2, 3]) {
    const key = { jobId, epoch };
    const exits = new Exits();
    const result = await other.runtime.restore(assignment(jobId, epoch, spec), made.bundleDir, exits.onExit);
    if (!result.restored) throw new Error(`restore failed: ${result.reason}`);
    t.equal(result.fromStandby, epoch === 2, `epoch ${epoch}: ${epoch === 2 ? 'from the standby' : 'made anew'}`);
    t.equal(result.pages, 'placed', `epoch ${epoch}: restored with the pages placed in the engine folder`);
    await waitFor(`epoch ${epoch} to count on`, async () => (numbersIn((await other.runtime.logBytes(key)).toString()).length >= 8 ? true : undefined), 20_000, 50);
    t.notMatch((await other.runtime.logBytes(key)).toString().slice(1), /START/, `epoch ${epoch} resumed the count, not a fresh start`);
    await result.cleanedUp;
    t.same(await removeCheckpointLeftovers(bundlePaths(made.bundleDir).checkpoint), [], `epoch ${epoch}: containerd's copies were removed`);
    await other.runtime.stop(key);
  }
  t.equal(warnings.filter((m) => m.startsWith('the start with the memory pages linked to the bundle failed')).length, 1, 'only the first restore tried links');
  t.equal(warnings.filter((m) => m.startsWith('CRIU cannot read')).length, 1, 'the node said once that it stops linking pages');
});

t.test('a restore refuses a bundle of another job, or one newer than the attempt', async (t) => {
  const jobId = `j-${uid()}`;
  const first = { jobId, epoch: 1 };
  await runtime.start(assignment(jobId, 1, { command: COUNTING_JOB }), () => {});
  t.teardown(() => runtime.stop(first));
  await waitFor('the job to count', async () => (numbersIn((await runtime.logBytes(first)).toString()).length >= 2 ? true : undefined), 20_000, 50);
  const bundle = await runtime.checkpoint(first, 'cp1');
  const otherJob = await runtime.restore(assignment(`j-${uid()}`, 2, { command: COUNTING_JOB }), bundle.bundleDir, () => {});
  t.match(otherJob, { restored: false, reason: new RegExp(`checkpoint of job ${jobId}`) });
  // The same epoch may resume (its box stopped it: a reboot); an earlier one never.
  const earlier = await runtime.restore(assignment(jobId, 0, { command: COUNTING_JOB }), bundle.bundleDir, () => {});
  t.match(earlier, { restored: false, reason: /can only resume that epoch or a later one, not 0/ });
  const missing = await runtime.restore(assignment(jobId, 2, { command: COUNTING_JOB }), join(node.stagingDir, 'no-such-bundle'), () => {});
  t.match(missing, { restored: false, reason: /no readable bundle metadata/ });
  await t.rejects(runtime.checkpoint(first, 'cp1'), /exists already/, 'a checkpoint name is not reused within an attempt');
  await t.rejects(runtime.checkpoint(first, 'x'), /invalid checkpoint name/);
});

for (const mode of MODES) t.test(`the filesystem comes back as it was at the dump (${mode.capture}): deletions of image files, replaced directories, owners, modes, links, fifos`, async (t) => {
  const { runtime } = mode;
  // An image with two directories of its own, so that deleting from it (a whiteout)
  // and replacing one whole (an opaque directory) are changes against a lower layer.
  const image = `workrs-test/fsbase:${uid()}`;
  const [repo, tag] = image.split(':') as [string, string];
  const maker = await docker.createContainer({ Image: BASE_IMAGE, Cmd: ['sh', '-c', 'mkdir /data /data2 && echo a > /data/a && echo b > /data/b && echo x > /data2/x && echo y > /data2/y'], HostConfig: { NetworkMode: 'none' } });
  await maker.start();
  await maker.wait();
  await maker.commit({ repo, tag });
  await maker.remove({ force: true });
  t.teardown(() => docker.getImage(image).remove({ force: true }).catch(() => {}));

  const jobId = `j-${uid()}`;
  const first = { jobId, epoch: 1 };
  const second = { jobId, epoch: 2 };
  const script = [
    'set -e',
    'rm -rf /data; mkdir /data; echo new > /data/c',
    'rm /data2/x',
    'mkdir -p /work; echo hello > /work/a; chown 1234:5678 /work/a; chmod 640 /work/a',
    'ln -s /work/a /work/link; ln /work/a /work/hard; mkfifo /work/fifo',
    'echo READY',
    'while true; do sleep 0.1; done',
  ].join('\n');
  const spec = { image, command: ['sh', '-c', script], memoryMB: 64 };
  await runtime.start(assignment(jobId, 1, spec), () => {});
  t.teardown(() => runtime.stop(first));
  await waitFor('the job to change its files', async () => ((await runtime.logBytes(first)).toString().includes('READY') ? true : undefined), 20_000, 50);
  const cp1 = await runtime.checkpoint(first, 'cp1');
  t.equal(cp1.capture, mode.capture, `captured by ${mode.capture}`);
  const meta = await readBundleMeta(cp1.bundleDir);
  t.equal(meta.filesystem, 'layer', 'on overlay2 the bundle holds the one layer the job wrote');
  await t.resolves(access(bundlePaths(cp1.bundleDir).layer), 'layer.tar is there');
  t.ok(cp1.imageBytes < 64 * 1024, `and it is small (${cp1.imageBytes} bytes)`);
  await runtime.stop(first);

  const restored = await runtime.restore(assignment(jobId, 2, spec), cp1.bundleDir, () => {});
  t.teardown(() => runtime.stop(second));
  t.equal(restored.restored, true, `restored (${restored.restored ? '' : restored.reason})`);
  const probe = 'ls /data; echo --; ls /data2; echo --; stat -c "%u:%g %a %h" /work/a; readlink /work/link; test -p /work/fifo && echo fifo; cat /work/hard';
  t.equal(await execIn(docker, second, ['sh', '-c', probe]), 'c\n--\ny\n--\n1234:5678 640 2\n/work/a\nfifo\nhello\n',
    'only the new file in the replaced directory, the deleted one stays deleted, owner, mode and links as they were');

  // The tag now names another image (a newer import): the layer must not be applied to it.
  const other = await docker.createContainer({ Image: BASE_IMAGE, Cmd: ['sh', '-c', 'mkdir /data && echo other > /data/a'], HostConfig: { NetworkMode: 'none' } });
  await other.start();
  await other.wait();
  await other.commit({ repo, tag });
  await other.remove({ force: true });
  const third = { jobId, epoch: 3 };
  t.teardown(() => runtime.stop(third));
  const refused = await runtime.restore(assignment(jobId, 3, spec), cp1.bundleDir, () => {});
  t.match(refused, { restored: false, reason: /not the one the checkpoint was taken on/ }, 'a restore onto a different image of the same name is refused (the attempt starts from scratch instead)');
});

t.test('a job fenced while its hooked checkpoint files the dump away is paused at once, not when the call returns', async (t) => {
  // 300 MB: the engine files the dump away for seconds after CRIU let the job go.
  const bytes = 300_000_000;
  const jobId = `j-${uid()}`;
  const key = { jobId, epoch: 1 };
  const command = ['sh', '-c', `dd if=/dev/urandom bs=${bytes} count=1 iflag=fullblock 2>/dev/null | { head -c 1 >/dev/null; echo FILLED; while true; do echo T; usleep 50000; done; }`];
  await runtime.start(assignment(jobId, 1, { command, memoryMB: 600 }), () => {});
  t.teardown(() => runtime.stop(key));
  await waitFor('the job to fill its memory', async () => ((await runtime.logBytes(key)).toString().includes('FILLED') ? true : undefined), 60_000, 100);
  const container = containerOf(docker, key);
  const copy = join(node.stagingDir, jobFolderName(jobId), 'e1-c1', '.capture');
  let returned = false;
  const checkpoint = runtime.checkpoint(key, 'c1').finally(() => {
    returned = true;
  });
  // The hook's copy made (CRIU still holds the job then), then the job's own output
  // moving on: the dump is over and the job runs again, while the call goes on.
  await waitFor("the hook's copy", () => (existsSync(join(copy, 'done')) ? true : undefined), 60_000, 5);
  const atCopy = (await runtime.logBytes(key)).length;
  await waitFor('the job to run again', async () => ((await runtime.logBytes(key)).length > atCopy + 4 ? true : undefined), 60_000, 20);
  t.equal(returned, false, 'the checkpoint call is still filing the dump away');
  await runtime.freeze(key);
  t.equal((await container.inspect()).State.Paused, true, 'freeze() paused the job at once');
  t.equal(returned, false, 'before the checkpoint call returned');
  const cp = await checkpoint;
  t.equal(cp.capture, 'hook');
  t.equal((await container.inspect()).State.Paused, true, 'the finished checkpoint leaves the fenced job paused');
  await runtime.thaw(key);
  t.equal((await container.inspect()).State.Paused, false, 'thaw() lets it run again');
});
