// The check of an uploaded image tar (src/images/docker-save.ts, tar-index.ts): the
// images and references a docker save tar provides, and every way a body can fail to
// be one, each refused with INVALID_IMAGE and a message that says why.
import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { InvalidImageError, readDockerSave } from '../../src/images/docker-save.js';
import { tarMembers } from '../../src/images/tar-index.js';
import { layerBytes, writeDockerSaveTar } from '../helpers/docker-save-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'workrs-images-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const path = (): string => join(dir, `img-${++n}.tar`);

/** The subset of a tap Test the checks below use. */
interface Asserts {
  ok(value: unknown, message: string): unknown;
  equal(found: unknown, wanted: unknown, message: string): unknown;
  match(found: unknown, pattern: unknown, message: string): unknown;
}

async function refused(t: Asserts, file: string, message: RegExp): Promise<void> {
  const err = await readDockerSave(file).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof InvalidImageError, 'refused as INVALID_IMAGE');
  t.equal((err as InvalidImageError).code, 'INVALID_IMAGE', 'code INVALID_IMAGE');
  t.equal((err as InvalidImageError).httpStatus, 400, 'answered with 400');
  t.match((err as Error).message, message, `says why: ${(err as Error).message}`);
}

t.test('one image: its normalized references, config and layers', async (t) => {
  const file = path();
  await writeDockerSaveTar(file, [{ tags: ['workrs-test/a:1', 'busybox', 'docker.io/library/alpine:3'], layer: layerBytes('a', 300_000) }]);
  const got = await readDockerSave(file);
  t.same(got.references, ['workrs-test/a:1', 'busybox:latest', 'alpine:3']);
  t.equal(got.images.length, 1);
  t.match(got.images[0]?.config, /^[0-9a-f]{64}\.json$/);
  t.match(got.images[0]?.layers, [/^[0-9a-f]{64}\/layer\.tar$/]);
});

t.test('several images (docker save a b): all their references, each once', async (t) => {
  const file = path();
  await writeDockerSaveTar(file, [
    { tags: ['x:1', 'x:latest'], layer: layerBytes('x', 1000) },
    { tags: ['y:2', 'x:1'], layer: layerBytes('y', 1000) },
    { tags: null, layer: layerBytes('z', 1000) },
  ]);
  const got = await readDockerSave(file);
  t.same(got.references, ['x:1', 'x:latest', 'y:2']);
  t.same(got.images.map((i) => i.references), [['x:1', 'x:latest'], ['y:2', 'x:1'], []]);
});

t.test('long member names (PAX headers) are read', async (t) => {
  const file = path();
  const long = `${'d'.repeat(150)}/layer.tar`;
  await writeDockerSaveTar(file, [{ tags: ['long:1'], layer: layerBytes('l', 5000), layerPath: long }]);
  const got = await readDockerSave(file);
  t.same(got.images[0]?.layers, [long]);
});

/** A ustar header block by hand, for what the repo's tar writer does not produce. */
function header(name: string, type: string, size: number, sizeField?: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'ascii');
  if (sizeField) sizeField.copy(h, 124);
  else h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  h.write(type, 156, 'ascii');
  h.write('ustar  \0', 257, 'latin1'); // GNU magic
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

function pad(b: Buffer): Buffer {
  return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
}

t.test('GNU long names and base-256 sizes are read', async (t) => {
  const longName = `${'g'.repeat(130)}/layer.tar`;
  const layer = Buffer.from('layer content');
  const base256 = Buffer.alloc(12);
  base256[0] = 0x80;
  base256.writeUInt32BE(layer.length, 8);
  const manifest = Buffer.from(JSON.stringify([{ Config: 'c.json', RepoTags: ['gnu:1'], Layers: [longName] }]));
  const file = path();
  writeFileSync(
    file,
    Buffer.concat([
      header('././@LongLink', 'L', longName.length + 1),
      pad(Buffer.from(`${longName}\0`)),
      header('ignored-short-name', '0', 0, base256),
      pad(layer),
      header('./c.json', '0', 2),
      pad(Buffer.from('{}')),
      header('manifest.json', '0', manifest.length),
      pad(manifest),
      Buffer.alloc(1024),
    ]),
  );
  const handle = await open(file, 'r');
  const members = [];
  for await (const m of tarMembers(handle)) members.push(m);
  await handle.close();
  t.same(members.map((m) => [m.name, m.size]), [[longName, layer.length], ['c.json', 2], ['manifest.json', manifest.length]]);
  t.same((await readDockerSave(file)).references, ['gnu:1']);
});

t.test('a body that is not a tar is refused', async (t) => {
  const random = path();
  writeFileSync(random, layerBytes('not a tar', 4096));
  await refused(t, random, /not a tar archive from docker save: the block at offset 0 is not a tar header/);
  const text = path();
  writeFileSync(text, '{"hello": "world"}\n');
  await refused(t, text, /not a tar archive.*ends inside a header/);
  const empty = path();
  writeFileSync(empty, '');
  await refused(t, empty, /the file is empty/);
});

t.test('a tar cut short is refused', async (t) => {
  const file = path();
  await writeDockerSaveTar(file, [{ tags: ['cut:1'], layer: layerBytes('cut', 200_000) }]);
  truncateSync(file, Math.floor(statSync(file).size / 2));
  await refused(t, file, /cut short/);
});

t.test('a tar without manifest.json is refused', async (t) => {
  const file = path();
  await writeDockerSaveTar(file, [{ tags: ['m:1'], layer: layerBytes('m', 100) }], { manifest: null });
  await refused(t, file, /no manifest\.json/);
});

t.test('a manifest that is not JSON, or not a list of images, is refused', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['not json', /manifest\.json is not JSON/],
    ['{}', /must be a list of 1 to 1000 images/],
    ['[]', /must be a list of 1 to 1000 images/],
    ['[42]', /image 0 is not an object/],
    ['[{"Config": 7, "Layers": []}]', /image 0 Config must be a file name/],
  ];
  for (const [manifest, message] of cases) {
    const file = path();
    await writeDockerSaveTar(file, [{ tags: ['m:1'], layer: layerBytes('m', 100) }], { manifest });
    await refused(t, file, message);
  }
});

t.test('a manifest naming files the tar lacks is refused', async (t) => {
  const file = path();
  await writeDockerSaveTar(file, [{ tags: ['m:1'], layer: layerBytes('m', 100) }], { omitLayers: true });
  await refused(t, file, /Layers\[0\] names [0-9a-f]{64}\/layer\.tar, which the tar does not contain/);
});

t.test('images without a name, or with a bad one, are refused', async (t) => {
  const unnamed = path();
  await writeDockerSaveTar(unnamed, [{ tags: null, layer: layerBytes('u', 100) }]);
  await refused(t, unnamed, /have no name \(RepoTags\)/);
  const bad = path();
  await writeDockerSaveTar(bad, [{ tags: ['has space:1'], layer: layerBytes('b', 100) }]);
  await refused(t, bad, /RepoTags\[0\] is not an image reference/);
  const digest = path();
  await writeDockerSaveTar(digest, [{ tags: ['x@sha256:abc'], layer: layerBytes('d', 100) }]);
  await refused(t, digest, /is not an image reference/);
});
