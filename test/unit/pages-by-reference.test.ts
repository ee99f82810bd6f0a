// The memory page images of a restore as links to the bundle's files (src/worker/pages-by-reference.ts).
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { checkpointFingerprint, removeCheckpointLeftovers } from '../../src/worker/ctrd-leftovers.js';
import { referenceFor, referencePages, unreferencePages } from '../../src/worker/pages-by-reference.js';

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-pages-ref-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A bundle's CRIU image folder and the engine folder made from it (a copy, as across mounts). */
async function bundleAndTarget(dir: string): Promise<{ bundle: string; target: string }> {
  const bundle = join(dir, 'bundle', 'checkpoint');
  await mkdir(bundle, { recursive: true });
  await writeFile(join(bundle, 'core-1.img'), 'core');
  await writeFile(join(bundle, 'pagemap-1.img'), 'pagemap');
  await writeFile(join(bundle, 'pages-1.img'), Buffer.alloc(200_000, 7));
  await writeFile(join(bundle, 'pages-12.img'), 'small pages');
  const target = join(dir, 'engine', 'containers', 'c', 'checkpoints', 'c1');
  await mkdir(join(target, '..'), { recursive: true });
  await cp(bundle, target, { recursive: true });
  return { bundle, target };
}

t.test('a reference climbs to the root and names the absolute path from there', async (t) => {
  const ref = referenceFor('/var/lib/workrs/standby-1/checkpoint/pages-1.img');
  t.match(ref, /^(\.\.\/){64}var\/lib\/workrs\/standby-1\/checkpoint\/pages-1\.img$/);
  t.throws(() => referenceFor('relative/pages-1.img'), /not an absolute path/);
});

t.test('page images become links that read the bundle, from the engine folder and from a copy of it elsewhere', async (t) => {
  const dir = await tempDir(t);
  const { bundle, target } = await bundleAndTarget(dir);
  await rm(join(target, 'pages-12.img')); // left out of the engine folder (linkTree's skip), or there: either way a link
  t.equal(await referencePages(target, bundle), 2);
  for (const name of ['pages-1.img', 'pages-12.img']) {
    t.ok((await lstat(join(target, name))).isSymbolicLink(), `${name} is a link`);
    t.same(await readFile(join(target, name)), await readFile(join(bundle, name)), `${name} reads the bundle's bytes`);
  }
  t.notOk((await lstat(join(target, 'core-1.img'))).isSymbolicLink(), 'other images stay files');
  // containerd's copy: the links unpacked as they are into a folder of another depth.
  const ctrd = join(dir, 'ctrd-checkpoint123');
  await cp(target, ctrd, { recursive: true, verbatimSymlinks: true });
  t.equal(await readlink(join(ctrd, 'pages-1.img')), await readlink(join(target, 'pages-1.img')));
  t.same(await readFile(join(ctrd, 'pages-1.img')), await readFile(join(bundle, 'pages-1.img')), 'the same link text resolves from there too');
  // Its fingerprint is the bundle's: the copy is found and removed after the start, and the bundle's pages stay.
  t.equal(await checkpointFingerprint(ctrd), await checkpointFingerprint(bundle));
  t.same(await removeCheckpointLeftovers(bundle, [dir]), [ctrd]);
  t.equal((await readFile(join(bundle, 'pages-1.img'))).length, 200_000, "removing the copy did not follow its links");
});

t.test('unreferencing puts the files back, and touches nothing else', async (t) => {
  const dir = await tempDir(t);
  const { bundle, target } = await bundleAndTarget(dir);
  t.equal(await unreferencePages(target, bundle), 0, 'no links: nothing to do');
  await referencePages(target, bundle);
  t.equal(await unreferencePages(target, bundle), 2);
  for (const name of await readdir(target)) {
    t.notOk((await lstat(join(target, name))).isSymbolicLink(), `${name} is a file`);
    t.same(await readFile(join(target, name)), await readFile(join(bundle, name)));
  }
  t.equal(await unreferencePages(target, bundle), 0);
});

t.test('a page image of the bundle that is itself a link is refused, not linked to', async (t) => {
  const dir = await tempDir(t);
  const { bundle, target } = await bundleAndTarget(dir);
  await writeFile(join(dir, 'secret'), 'not a page');
  await rm(join(bundle, 'pages-12.img'));
  await symlink(join(dir, 'secret'), join(bundle, 'pages-12.img'));
  await t.rejects(referencePages(target, bundle), /pages-12\.img is not a regular file: not linked/);
});
