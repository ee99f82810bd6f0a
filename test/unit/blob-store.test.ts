// The node-local blob store on real files in temp folders: folders and streams come
// back byte-identical, a missing or corrupt chunk is noticed, successive checkpoints
// share their unchanged chunks, gc keeps exactly what is referenced, and a chunk write
// cut short by a crash is invisible and cleaned at open.
import { createReadStream, utimesSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, chmodSync, symlinkSync, renameSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BlobStore } from '../../src/blobs/store.js';
import { BlobCorruptError, BlobIncompleteError, BlobManifestError, BlobNotFoundError, BlobUnsupportedFileError } from '../../src/blobs/errors.js';
import { encodeManifest, parseManifest, uniqueChunks } from '../../src/blobs/manifest.js';
import { checkpointVersions, collect, seededBytes, tempFolder } from './blob-fixtures.js';

const MiB = 1024 * 1024;

/** A checkpoint-like folder: a big page image, small metadata files, a nested folder, an empty file. */
function makeBundle(root: string, seed: number): Map<string, Buffer> {
  const files = new Map<string, Buffer>([
    ['pages-1.img', seededBytes(3 * MiB + 17, seed)],
    ['inventory.img', Buffer.from('{"criu":"3.17"}')],
    ['rootfs/changes.tar', seededBytes(700_000, seed + 1)],
    ['rootfs/deep/empty', Buffer.alloc(0)],
    ['log', Buffer.from('line 1\nline 2\n')],
  ]);
  for (const [path, data] of files) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), data);
  }
  chmodSync(join(root, 'log'), 0o640);
  chmodSync(join(root, 'inventory.img'), 0o755);
  return files;
}

function chunkFiles(storeDir: string): string[] {
  const root = join(storeDir, 'chunks');
  return readdirSync(root).flatMap((sub) => readdirSync(join(root, sub)).map((name) => join(root, sub, name)));
}

t.test('a folder comes back byte-identical, with its file modes', async (t) => {
  const dir = tempFolder(t);
  const src = join(dir, 'bundle');
  const files = makeBundle(src, 1);
  const store = await BlobStore.open(join(dir, 'store'));
  const put = await store.putFolder(src, 'checkpoint');
  t.match(put.id, /^sha256:[0-9a-f]{64}$/);
  t.equal(put.bytes, [...files.values()].reduce((n, b) => n + b.length, 0));
  t.equal(await store.has(put.id), true);

  const out = join(dir, 'restored');
  await store.exportFolder(put.id, out);
  for (const [path, data] of files) {
    t.equal(readFileSync(join(out, path)).equals(data), true, `${path} is byte-identical`);
  }
  t.equal(statSync(join(out, 'log')).mode & 0o777, 0o640, 'mode 0640 kept');
  t.equal(statSync(join(out, 'inventory.img')).mode & 0o777, 0o755, 'mode 0755 kept');
  t.same(readdirSync(dir).sort(), ['bundle', 'restored', 'store'], 'no staging folder left next to the target');

  const manifest = await store.manifest(put.id);
  t.same(manifest.files?.map((f) => f.path), ['inventory.img', 'log', 'pages-1.img', 'rootfs/changes.tar', 'rootfs/deep/empty'], 'files sorted by path');
  t.equal((await store.putFolder(src, 'checkpoint')).id, put.id, 'the same folder gives the same id');
  await t.rejects(store.exportFolder(put.id, out), { code: 'BLOB_TARGET_EXISTS' }, 'a non-empty target is refused');
});

t.test('a stream and a buffer come back byte-identical', async (t) => {
  const dir = tempFolder(t);
  const data = seededBytes(5 * MiB + 3, 2);
  writeFileSync(join(dir, 'result.tar'), data);
  const store = await BlobStore.open(join(dir, 'store'));
  const put = await store.putStream(createReadStream(join(dir, 'result.tar')), 'result');
  t.equal(put.bytes, data.length);
  t.ok(put.chunks > 5, `${put.chunks} chunks`);
  t.equal((await collect(await store.readStream(put.id))).equals(data), true, 'stream content identical');

  const small = await store.putBuffer(Buffer.from('tiny result'), 'result');
  t.equal((await collect(await store.readStream(small.id))).toString(), 'tiny result');
  const empty = await store.putBuffer(Buffer.alloc(0), 'input');
  t.equal((await collect(await store.readStream(empty.id))).length, 0, 'an empty blob reads back empty');
  t.equal(await store.has(empty.id), true);
  await t.rejects(store.exportFolder(put.id, join(dir, 'x')), { code: 'BLOB_KIND_MISMATCH' });
});

t.test('deleting a chunk: has() turns false and exportFolder fails clearly, leaving no target', async (t) => {
  const dir = tempFolder(t);
  const src = join(dir, 'bundle');
  makeBundle(src, 3);
  const store = await BlobStore.open(join(dir, 'store'));
  const put = await store.putFolder(src, 'checkpoint');
  const manifest = await store.manifest(put.id);
  const victim = uniqueChunks(manifest)[1];
  if (victim === undefined) throw new Error('bundle has fewer than 2 chunks');
  const victimPath = chunkFiles(store.dir).find((p) => p.endsWith(victim.hash));
  if (victimPath === undefined) throw new Error('victim chunk not on disk');
  renameSync(victimPath, join(dir, 'aside'));

  t.equal(await store.has(put.id), false);
  t.same((await store.missingChunks(put.id)).map((c) => c.hash), [victim.hash]);
  const target = join(dir, 'restored');
  const err = await store.exportFolder(put.id, target).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof BlobIncompleteError, 'a BlobIncompleteError');
  t.match(String((err as Error).message), new RegExp(`incomplete: 1 of ${uniqueChunks(manifest).length} chunks missing \\(first: ${victim.hash}\\)`));
  t.equal(existsSync(target), false, 'no half-written target');

  renameSync(join(dir, 'aside'), victimPath);
  t.equal(await store.has(put.id), true, 'whole again once the chunk is back');
});

t.test('a corrupted chunk: has() false when verifying, reads fail with BlobCorruptError', async (t) => {
  const dir = tempFolder(t);
  const store = await BlobStore.open(join(dir, 'store'));
  const data = seededBytes(2 * MiB, 4);
  const put = await store.putBuffer(data, 'result');
  const first = (await store.manifest(put.id)).chunks[0];
  if (first === undefined) throw new Error('no chunk');
  const path = store.chunkPath(first.hash);
  const bytes = readFileSync(path);
  bytes[100] = (bytes[100] ?? 0) ^ 0xff; // same size, one bit pattern flipped
  writeFileSync(path, bytes);
  t.equal(await store.has(put.id, { verify: false }), true, 'sizes alone do not see it');
  t.equal(await store.has(put.id), false, 'hashing does');
  t.same((await store.missingChunks(put.id, { verify: true })).map((c) => c.hash), [first.hash]);
  await t.rejects(collect(await store.readStream(put.id)), BlobCorruptError);
});

t.test('dedupe: a changed 20 MB checkpoint stores only a small fraction of new bytes', async (t) => {
  const dir = tempFolder(t);
  const { v1, v2 } = checkpointVersions(20 * MiB, 5);
  const store = await BlobStore.open(join(dir, 'store'));

  const p1 = await store.putBuffer(v1, 'checkpoint');
  t.equal(p1.newBytes, v1.length, 'the first put stores everything');
  const p2 = await store.putBuffer(v2, 'checkpoint');
  t.same(store.lastPut, p2, 'lastPut is the latest put');
  const newFraction = p2.newBytes / p2.bytes;
  t.comment(`stream: v2 ${p2.bytes} bytes, new ${p2.newBytes} (${(newFraction * 100).toFixed(1)}%), reused ${p2.reusedBytes}, dedupe ratio ${p2.dedupeRatio.toFixed(3)}, ${p2.newChunks} new of ${p2.chunks} chunks`);
  t.ok(newFraction < 0.25, `new bytes ${(newFraction * 100).toFixed(1)}% < 25%`);
  t.equal(p2.newBytes + p2.reusedBytes, p2.bytes);

  // The same as folders (a checkpoint bundle whose page image changed), in a fresh store.
  const fstore = await BlobStore.open(join(dir, 'fstore'));
  for (const [name, data] of [['b1', v1], ['b2', v2]] as const) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'pages-1.img'), data);
    writeFileSync(join(dir, name, 'inventory.img'), `{"version":"${name}"}`);
  }
  await fstore.putFolder(join(dir, 'b1'), 'checkpoint');
  const f2 = await fstore.putFolder(join(dir, 'b2'), 'checkpoint');
  t.comment(`folder: v2 ${f2.bytes} bytes, new ${f2.newBytes} (${((f2.newBytes / f2.bytes) * 100).toFixed(1)}%), dedupe ratio ${f2.dedupeRatio.toFixed(3)}`);
  t.ok(f2.newBytes / f2.bytes < 0.25, 'folder blob dedupes as well');
  const out = join(dir, 'out2');
  await fstore.exportFolder(f2.id, out);
  t.equal(readFileSync(join(out, 'pages-1.img')).equals(v2), true, 'v2 exports byte-identical from shared chunks');
});

t.test('a chunk repeated within one put (zero pages) is written once', async (t) => {
  const dir = tempFolder(t);
  const store = await BlobStore.open(join(dir, 'store'));
  const data = Buffer.concat([Buffer.alloc(4 * MiB), seededBytes(300_000, 10)]);
  const put = await store.putBuffer(data, 'checkpoint');
  const distinct = uniqueChunks(await store.manifest(put.id));
  t.ok(put.chunks > distinct.length, `${put.chunks} chunk references, ${distinct.length} distinct`);
  t.equal(put.newChunks, distinct.length, 'each distinct chunk written once');
  t.equal(put.newBytes, distinct.reduce((n, c) => n + c.bytes, 0));
  t.equal(put.reusedBytes, data.length - put.newBytes, 'the repeats count as reused');
  t.equal((await collect(await store.readStream(put.id))).equals(data), true);
});

t.test('gc keeps every chunk a kept blob references and deletes the rest', async (t) => {
  const dir = tempFolder(t);
  const store = await BlobStore.open(join(dir, 'store'));
  const { v1, v2 } = checkpointVersions(4 * MiB, 6);
  const a = await store.putBuffer(v1, 'checkpoint');
  const b = await store.putBuffer(v2, 'checkpoint'); // shares most chunks with a
  const c = await store.putBuffer(seededBytes(2 * MiB, 7), 'result'); // shares none
  const before = await store.stat();

  const r1 = await store.gc(new Set([b.id]));
  t.equal(await store.has(b.id), true, 'kept blob b is whole');
  t.equal(await store.has(a.id), false, 'a is gone');
  t.equal(await store.has(c.id), false, 'c is gone');
  await t.rejects(store.manifest(a.id), BlobNotFoundError, "a's manifest was deleted");
  const bChunks = uniqueChunks(await store.manifest(b.id)).length;
  const after = await store.stat();
  t.equal(after.chunks, bChunks + 1, 'what is left: b\'s chunks and its manifest');
  t.equal(r1.deletedChunks, before.chunks - after.chunks);
  t.equal(r1.keptBytes, after.bytes);
  t.same(r1.absentKept, []);
  t.equal((await collect(await store.readStream(b.id))).equals(v2), true, 'b reads back intact after gc');

  const r2 = await store.gc(new Set([a.id]));
  t.same(r2.absentKept, [a.id], 'a kept id with no manifest is reported');
  t.same(await store.stat(), { chunks: 0, bytes: 0 }, 'nothing kept: the store is empty');
});

t.test('gc waits for a running put', async (t) => {
  const dir = tempFolder(t);
  const store = await BlobStore.open(join(dir, 'store'));
  const data = seededBytes(3 * MiB, 8);
  let release = (): void => {};
  const gate = new Promise<void>((r) => (release = r));
  async function* slow(): AsyncGenerator<Buffer> {
    yield data.subarray(0, MiB);
    await gate;
    yield data.subarray(MiB);
  }
  const putting = store.putStream(slow(), 'result');
  await new Promise((r) => setTimeout(r, 50));
  let gcDone = false;
  const collecting = store.gc(new Set()).then((r) => {
    gcDone = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 50));
  t.equal(gcDone, false, 'gc has not run while the put is under way');
  release();
  const put = await putting;
  await collecting;
  t.equal(await store.has(put.id), false, 'gc ran after the put (and, not told to keep it, deleted it)');
});

t.test('crash safety: a half-written chunk is invisible and cleaned at open', async (t) => {
  const dir = tempFolder(t);
  const storeDir = join(dir, 'store');
  let store = await BlobStore.open(storeDir);
  const put = await store.putBuffer(seededBytes(2 * MiB, 9), 'checkpoint');
  const before = await store.stat();
  // As if the process died while writing one of the blob's chunks: its bytes only
  // partly in a temp file, never renamed into place.
  const victim = (await store.manifest(put.id)).chunks[2];
  if (victim === undefined) throw new Error('blob has fewer than 3 chunks');
  const tmpFile = join(storeDir, 'tmp', `${victim.hash}.4242.1`);
  renameSync(store.chunkPath(victim.hash), tmpFile);
  truncateSync(tmpFile, Math.floor(victim.bytes / 2));
  writeFileSync(join(storeDir, 'tmp', 'f'.repeat(64) + '.4242.2'), 'half of some other chunk');

  t.equal(await store.has(put.id), false, 'the blob is incomplete');
  t.same((await store.missingChunks(put.id)).map((c) => c.hash), [victim.hash], 'the half-written chunk counts as missing');
  t.same(await store.stat(), { chunks: before.chunks - 1, bytes: before.bytes - victim.bytes }, 'temp files are not counted');

  store = await BlobStore.open(storeDir);
  t.same(readdirSync(join(storeDir, 'tmp')), [], 'open removed the temp files');
  t.equal(await store.has(put.id), false);
  const again = await store.putBuffer(seededBytes(2 * MiB, 9), 'checkpoint');
  t.equal(again.id, put.id);
  t.equal(again.newChunks, 1, 'putting it again writes just the lost chunk');
  t.equal(await store.has(put.id), true);
});

t.test('folders with symlinks are refused; manifests are checked at the boundary', async (t) => {
  const dir = tempFolder(t);
  mkdirSync(join(dir, 'b'));
  writeFileSync(join(dir, 'b', 'f'), 'x');
  symlinkSync('/etc/passwd', join(dir, 'b', 'link'));
  const store = await BlobStore.open(join(dir, 'store'));
  await t.rejects(store.putFolder(join(dir, 'b'), 'checkpoint'), BlobUnsupportedFileError);

  const hash = 'a'.repeat(64);
  const folder = (path: string): Buffer =>
    encodeManifest({ version: 1, kind: 'checkpoint', bytes: 1, chunks: [], files: [{ path, mode: 0o644, bytes: 1, chunks: [{ hash, bytes: 1 }] }] });
  for (const bad of ['../escape', '/abs', 'a/../../b', 'a//b', './a', 'a\\b']) {
    t.throws(() => parseManifest(folder(bad), 'test'), BlobManifestError, `path ${JSON.stringify(bad)} refused`);
  }
  t.ok(parseManifest(folder('a/b/c'), 'test').files, 'a nested relative path is fine');
  t.throws(() => parseManifest(Buffer.from('{"version":1,"kind":"result","bytes":5,"chunks":[{"hash":"' + hash + '","bytes":4}]}'), 'test'), /chunks add up to 4/);
  t.throws(() => parseManifest(Buffer.from('{"version":2,"kind":"result","bytes":0,"chunks":[]}'), 'test'), /version/);
  t.throws(() => parseManifest(Buffer.from('{"version":1,"kind":"weird","bytes":0,"chunks":[]}'), 'test'), /kind/);
  await t.rejects(store.manifest('sha256:nothex'), BlobManifestError);
});

t.test('gc keeps a blob stored lately even when its chunks are old and keep omits it', async (t) => {
  const dir = tempFolder(t);
  const store = await BlobStore.open(join(dir, 'store'));
  const { v1, v2 } = checkpointVersions(4 * MiB, 6);
  const old = await store.putBuffer(v1, 'checkpoint');
  // Make every file an hour old; a fresh process sees `old` as any blob found on disk.
  const anHourAgo = new Date(Date.now() - 3_600_000);
  const age = (folder: string): void => {
    for (const e of readdirSync(folder, { withFileTypes: true })) {
      const p = join(folder, e.name);
      if (e.isDirectory()) age(p);
      else utimesSync(p, anHourAgo, anHourAgo);
    }
  };
  age(join(dir, 'store'));
  const reopened = await BlobStore.open(join(dir, 'store'));
  const fresh = await reopened.putBuffer(v2, 'checkpoint'); // reuses most of old's (old) chunks
  const r = await reopened.gc(new Set(), { minAgeMs: 60_000 });
  t.ok(r.deletedChunks > 0, 'old-only chunks went');
  t.equal(await reopened.has(fresh.id), true, 'the blob stored a moment ago is whole, its reused old chunks too');
  t.equal((await collect(await reopened.readStream(fresh.id))).equals(v2), true);
  t.equal(await reopened.has(old.id, { verify: false }), false, 'the old blob is gone');
  await reopened.gc(new Set(), { minAgeMs: 0 });
  t.equal(await reopened.has(fresh.id, { verify: false }), false, 'with no minimum age, nothing unkept survives');
});
