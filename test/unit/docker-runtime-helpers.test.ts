// The pure parts of the Docker runtime, without Docker: names and labels, the tar
// writer for input files (checked against the system's tar), bundle metadata parsing,
// the merged log, which containerd leftovers count as ours, and that a restored
// attempt's first checkpoint waits for the restore's cleanup.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { promisify } from 'node:util';
import t from 'tap';
import { parseBundleMeta, type BundleMeta } from '../../src/worker/checkpoint-bundle.js';
import { checkpointFingerprint, removeCheckpointLeftovers } from '../../src/worker/ctrd-leftovers.js';
import { exportCheckpoint } from '../../src/worker/docker-capture.js';
import type { DockerContext } from '../../src/worker/docker-context.js';
import { RESTORE_NONCE_FILE } from '../../src/worker/docker-checkpoint.js';
import { stoppedByTheBox } from '../../src/worker/docker-containers.js';
import { mergeDockerLog } from '../../src/worker/docker-logs.js';
import { containerName, runKeyFromLabels, runKeyOf, runLabels, snapshotImageRef, standbyName } from '../../src/worker/docker-names.js';
import { tarStream } from '../../src/worker/tar-pack.js';
import { systemClock } from '../../src/util/clock.js';

const execFileP = promisify(execFile);

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('container names and snapshot references are valid for Docker whatever the job id', async (t) => {
  t.equal(containerName({ jobId: 'j-0d3a', epoch: 2 }), 'workrs-j-0d3a-e2');
  const odd = containerName({ jobId: 'job with spaces/and:colons', epoch: 1 });
  t.match(odd, /^workrs-[a-zA-Z0-9_.-]+-e1$/);
  t.not(odd, containerName({ jobId: 'job_with_spaces_and_colons', epoch: 1 }), 'distinct ids keep distinct names');
  t.ok(containerName({ jobId: 'x'.repeat(256), epoch: 9 }).length < 160, 'long ids are shortened');
  const ref = snapshotImageRef({ jobId: 'j-ABC_def', epoch: 3 }, 'cp7');
  t.match(ref.repo, /^workrs-snap\/[a-z0-9]+(?:[._-][a-z0-9]+)*$/, 'repository: lowercase components');
  t.equal(ref.tag, 'e3-cp7');
  t.equal(snapshotImageRef({ jobId: 'j-0d3a', epoch: 1 }, 'cp1').repo, 'workrs-snap/j-0d3a', 'a plain id is kept as is');
});

t.test("an exit its box caused is told from the job's own", async (t) => {
  for (const code of [137, 143, 255]) t.ok(stoppedByTheBox({ Running: false, OOMKilled: false, ExitCode: code }), `exit ${code}: the engine's stop or a lost container`);
  for (const code of [0, 1, 2, 42, 139, 254]) t.notOk(stoppedByTheBox({ Running: false, OOMKilled: false, ExitCode: code }), `exit ${code} is the job's`);
  t.notOk(stoppedByTheBox({ Running: false, OOMKilled: true, ExitCode: 137 }), 'killed for memory: the job\'s end');
  t.notOk(stoppedByTheBox({ Running: true, OOMKilled: false, ExitCode: 137 }), 'still running: no exit at all');
});

t.test('labels carry the exact job id and epoch, and malformed ones are not ours', async (t) => {
  const labels = runLabels({ jobId: 'j/ü 1', epoch: 12 }, 'n1');
  t.same(runKeyFromLabels(labels), { jobId: 'j/ü 1', epoch: 12 });
  t.equal(runKeyFromLabels({ 'workrs.job': 'j', 'workrs.epoch': '0' }), null);
  t.equal(runKeyFromLabels({ 'workrs.job': 'j', 'workrs.epoch': '1e3' }), null);
  t.equal(runKeyFromLabels({ 'workrs.epoch': '1' }), null);
  t.equal(runKeyFromLabels(undefined), null);
});

t.test("a claimed standby container's attempt comes from its name, and only an exact attempt name counts", async (t) => {
  const odd = 'job with spaces/and:colons';
  const standby = { 'workrs.job': odd, 'workrs.standby': 'b1', 'workrs.node': 'n1' };
  t.same(runKeyOf(standby, `/${containerName({ jobId: odd, epoch: 7 })}`), { jobId: odd, epoch: 7 }, 'renamed to the attempt: its key');
  t.equal(runKeyOf(standby, `/${standbyName(odd)}`), null, 'unclaimed: no attempt');
  t.equal(runKeyOf(standby, `/${containerName({ jobId: 'another', epoch: 7 })}`), null, "another job's name does not count");
  t.equal(runKeyOf(standby, '/workrs-job_with_spaces_and_colons-e7'), null, 'a name that only looks alike does not count');
  t.equal(runKeyOf(standby, `/${containerName({ jobId: odd, epoch: 7 })}-e8`), null);
  t.equal(runKeyOf({ 'workrs.job': 'j' }, '/workrs-j-e3'), null, 'without the standby label the name is not read');
  t.equal(runKeyOf({ ...standby, 'workrs.epoch': 'x' }, `/${containerName({ jobId: odd, epoch: 7 })}`), null, 'a malformed epoch label is not overridden by the name');
  t.same(runKeyOf(runLabels({ jobId: 'j', epoch: 2 }, 'n1'), '/anything'), { jobId: 'j', epoch: 2 }, 'labels first');
  for (const [a, b] of [['standby-x', 'x'], ['x-e1', 'x'], ['x', 'x-standby'], ['x-standby', 'x']]) {
    t.not(standbyName(a as string), containerName({ jobId: b as string, epoch: 1 }), `the standby of ${a} never has the name of an attempt of ${b}`);
  }
});

t.test('the tar writer makes archives the system tar extracts exactly, long names included', async (t) => {
  const dir = await tempDir(t);
  const longName = `${'é'.repeat(60)}.bin`; // 124 bytes: needs a PAX path record
  await writeFile(join(dir, 'small'), 'hello\n');
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;
  await writeFile(join(dir, 'big'), big);
  const archive = join(dir, 'a.tar');
  await pipeline(
    tarStream([
      { kind: 'dir', name: 'work', mode: 0o755 },
      { kind: 'file', name: 'work/small.txt', mode: 0o644, sourcePath: join(dir, 'small') },
      { kind: 'file', name: `work/${longName}`, mode: 0o600, sourcePath: join(dir, 'big') },
    ]),
    createWriteStream(archive),
  );
  const out = join(dir, 'out');
  await mkdir(out);
  await execFileP('tar', ['-xf', archive, '-C', out]);
  t.equal(await readFile(join(out, 'work/small.txt'), 'utf8'), 'hello\n');
  t.ok((await readFile(join(out, 'work', longName))).equals(big), 'the long-named file, byte for byte');
  const { stdout } = await execFileP('tar', ['-tvf', archive]);
  t.match(stdout, /-rw------- 0\/0 +70000 /, 'mode, root owner and size from the header');
});

const META: BundleMeta = {
  version: 1,
  jobId: 'j-1',
  epoch: 2,
  node: 'n1',
  checkpointName: 'cp1',
  createdAt: 1_700_000_000_000,
  logOffset: 41,
  snapshotImage: { ref: 'workrs-snap/j-1:e2-cp1', id: `sha256:${'a'.repeat(64)}` },
  run: { baseImage: 'workrs/busybox:1', cmd: ['sh', '-c', 'true'], env: ['A=1'], workingDir: '/work', memoryBytes: 64 << 20, nanoCpus: null },
  dockerVersion: '20.10.24',
  baseLayersOmitted: 1,
  filesystem: 'layer',
  baseDiffIds: [`sha256:${'b'.repeat(64)}`],
};

t.test('bundle metadata from another node is parsed strictly', async (t) => {
  t.same(parseBundleMeta(JSON.parse(JSON.stringify(META))), META, 'a valid one round-trips');
  const { baseLayersOmitted: _, ...older } = META;
  t.equal(parseBundleMeta(older).baseLayersOmitted, 0, 'a bundle from before slim images holds every layer');
  const { filesystem: __, baseDiffIds: ___, ...saved } = META;
  t.equal(parseBundleMeta(saved).filesystem, 'image', 'a bundle from before overlay layers holds a docker save image');
  t.equal(parseBundleMeta({ ...META, snapshotImage: null }).snapshotImage, null, 'a layer bundle from the capture hook names no snapshot image');
  const { snapshotImage: ____, ...noSnapshot } = META;
  const broken: Array<[string, unknown]> = [
    ['version', { ...META, version: 2 }],
    ['checkpointName', { ...META, checkpointName: '../x' }],
    ['logOffset', { ...META, logOffset: -1 }],
    ['id', { ...META, snapshotImage: { ...META.snapshotImage, id: 'latest' } }],
    ['snapshotImage', { ...META, filesystem: 'image', snapshotImage: null }],
    ['snapshotImage', noSnapshot],
    ['cmd', { ...META, run: { ...META.run, cmd: [] } }],
    ['workingDir', { ...META, run: { ...META.run, workingDir: 'work' } }],
    ['memoryBytes', { ...META, run: { ...META.run, memoryBytes: '64m' } }],
    ['baseLayersOmitted', { ...META, baseLayersOmitted: -1 }],
    ['filesystem', { ...META, filesystem: 'zfs' }],
    ['baseDiffIds', { ...META, baseDiffIds: ['latest'] }],
    ['root', [META]],
  ];
  for (const [field, value] of broken) t.throws(() => parseBundleMeta(value), new RegExp(field), `bad ${field} is refused`);
});

t.test('the merged log keeps stdout and stderr in the order written', async (t) => {
  const frame = (stream: number, text: string) => {
    const h = Buffer.alloc(8);
    h[0] = stream;
    h.writeUInt32BE(Buffer.byteLength(text), 4);
    return Buffer.concat([h, Buffer.from(text)]);
  };
  t.equal(mergeDockerLog(Buffer.concat([frame(1, 'a\n'), frame(2, 'err\n'), frame(1, 'b\n')])).toString(), 'a\nerr\nb\n');
  t.throws(() => mergeDockerLog(frame(1, 'abc').subarray(0, 9)), /claims 3 bytes/);
});

t.test("only containerd's copies of OUR checkpoint are removed", async (t) => {
  const dir = await tempDir(t);
  const ours = join(dir, 'bundle-checkpoint');
  const tmp = join(dir, 'tmp');
  await mkdir(ours);
  await mkdir(tmp);
  await writeFile(join(ours, 'core-1.img'), 'core of ours');
  await writeFile(join(ours, 'pages-1.img'), Buffer.alloc(100_000, 1));
  for (const [name, core] of [
    ['ctrd-checkpoint111', 'core of ours'],
    ['ctrd-checkpoint222', 'core of another job'],
    ['unrelated', 'core of ours'],
  ] as const) {
    await mkdir(join(tmp, name));
    await writeFile(join(tmp, name, 'core-1.img'), core);
    await writeFile(join(tmp, name, 'pages-1.img'), Buffer.alloc(100_000, 1));
  }
  // The copy of a start that had a nonce put in the folder first (startFromCheckpoint) is ours too.
  await mkdir(join(tmp, 'ctrd-checkpoint333'));
  await writeFile(join(tmp, 'ctrd-checkpoint333', 'core-1.img'), 'core of ours');
  await writeFile(join(tmp, 'ctrd-checkpoint333', 'pages-1.img'), Buffer.alloc(100_000, 1));
  await writeFile(join(tmp, 'ctrd-checkpoint333', RESTORE_NONCE_FILE), '0123abcd');
  t.same((await removeCheckpointLeftovers(ours, [tmp, join(dir, 'missing')])).sort(), [join(tmp, 'ctrd-checkpoint111'), join(tmp, 'ctrd-checkpoint333')]);
  t.same(await removeCheckpointLeftovers(ours, [tmp]), [], 'nothing more to remove');
});

t.test("containerd's copies are found by the fingerprint taken before the start, once the bundle is gone", async (t) => {
  const dir = await tempDir(t);
  const bundle = join(dir, 'bundle-checkpoint');
  const tmp = join(dir, 'tmp');
  for (const d of [bundle, join(tmp, 'ctrd-checkpoint444')]) {
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'core-1.img'), 'core of ours');
  }
  const fingerprint = await checkpointFingerprint(bundle);
  await rm(bundle, { recursive: true });
  t.same(await removeCheckpointLeftovers({ fingerprint }, [tmp]), [join(tmp, 'ctrd-checkpoint444')]);
});

t.test("a checkpoint of a restored attempt waits for the restore's cleanup (the engine copy it deletes has the same name)", async (t) => {
  let cleaned: () => void = () => {};
  const cleanup = new Promise<void>((resolve) => (cleaned = resolve));
  const asked: string[] = [];
  const ctx = {
    restoreCleanups: new Map([['j1@2', cleanup]]),
    clock: systemClock,
    containers: {
      engineInfo: async () => {
        asked.push('engineInfo');
        throw new Error('no engine in this test');
      },
    },
  } as unknown as DockerContext;
  const capture = exportCheckpoint(ctx, { jobId: 'j1', epoch: 2 }, 'c1');
  capture.catch(() => undefined);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(asked, [], 'nothing asked of the engine while the cleanup runs');
  cleaned();
  await t.rejects(capture, /no engine in this test/, 'then the capture goes ahead');
  t.same(asked, ['engineInfo']);
});
