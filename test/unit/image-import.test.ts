// Who may take an image reference (src/images/cluster-images.ts and the state
// machine's blobAdded): an import may not move a reference the cluster has for other
// bytes unless it says replace, re-importing the same bytes is fine, and no import
// may name an image of the nodes' own build (workrs/…), replace or not. The refusal
// in apply holds even when two imports race past the gateway's check.
import { join } from 'node:path';
import t from 'tap';
import pino from 'pino';
import { BlobStore } from '../../src/blobs/index.js';
import { ClusterBlobs } from '../../src/blobs/replicated.js';
import { ClusterImages } from '../../src/images/cluster-images.js';
import { findImageBlob, isReservedReference } from '../../src/images/references.js';
import { DEFAULT_IMAGE } from '../../src/state/spec.js';
import { layerBytes, writeDockerSaveTar } from '../helpers/docker-save-fixture.js';
import { tempFolder } from './blob-fixtures.js';
import { join as joinNode, Log } from './state-fixtures.js';

async function setup(t: { teardown(fn: () => void): void }): Promise<{ dir: string; log: Log; images: ClusterImages; replications: () => number }> {
  const dir = tempFolder(t, 'workrs-image-import-');
  const store = await BlobStore.open(join(dir, 'store'));
  const log = new Log();
  log.apply(joinNode('n1'));
  log.apply(joinNode('n2'));
  let replications = 0;
  const blobs = new ClusterBlobs({
    cluster: { nodeId: 'n1', state: () => log.state, propose: async (cmd) => log.apply(cmd), caughtUp: () => true },
    store,
    transfer: {
      push: async () => replications++,
      fetch: async () => {},
    },
    replicas: 2,
    gcMinAgeMs: 0,
    logger: pino({ level: 'silent' }),
  });
  const images = new ClusterImages({ nodeId: 'n1', blobs, table: () => log.state.blobs, readBarrier: async () => {}, logger: pino({ level: 'silent' }) });
  return { dir, log, images, replications: () => replications };
}

async function tar(dir: string, file: string, tags: string[], seed: string): Promise<string> {
  const path = join(dir, file);
  await writeDockerSaveTar(path, [{ tags, layer: layerBytes(seed, 20_000) }]);
  return path;
}

t.test('the workrs/ namespace is reserved, however the reference is spelled', async (t) => {
  t.ok(isReservedReference(DEFAULT_IMAGE), 'the default job image');
  t.ok(isReservedReference('workrs/python:3'));
  t.ok(isReservedReference('docker.io/workrs/busybox:1'), 'Docker Hub spelling normalizes into it');
  t.ok(isReservedReference('workrs/anything'), 'a tag-less reference (normalized to :latest)');
  t.notOk(isReservedReference('workrs-test/a:1'));
  t.notOk(isReservedReference('myorg/workrs:1'));
});

t.test('an import that would move a reference is refused with 409 IMAGE_EXISTS unless it says replace', async (t) => {
  const { dir, log, images, replications } = await setup(t);
  const first = await images.importTar(await tar(dir, 'a.tar', ['app:1'], 'a'));
  const again = await images.importTar(await tar(dir, 'a-again.tar', ['app:1'], 'a'));
  t.equal(again.blob, first.blob, 'the same bytes again: accepted, the same blob');

  const other = await tar(dir, 'b.tar', ['app:1', 'extra:1'], 'b');
  const copies = replications();
  await t.rejects(images.importTar(other), { code: 'IMAGE_EXISTS', httpStatus: 409, message: /app:1 names image sha256:.*--replace/ });
  t.equal(replications(), copies, 'refused before any copy to another node');
  t.equal(findImageBlob(log.state.blobs, 'app:1')?.id, first.blob, 'the reference still names the first import');
  t.equal(findImageBlob(log.state.blobs, 'extra:1'), null, 'nothing of the refused tar was recorded');

  const replaced = await images.importTar(other, { replace: true });
  t.not(replaced.blob, first.blob);
  t.equal(findImageBlob(log.state.blobs, 'app:1')?.id, replaced.blob, 'with replace the reference moves');
  t.equal(log.state.blobs.get(first.blob)?.name, null, 'the first import is left without a name');

  const fresh = await images.importTar(await tar(dir, 'c.tar', ['new:1'], 'c'));
  t.same(fresh.images, ['new:1'], 'a reference nobody has needs no replace');
});

t.test('a tar naming an image of the nodes\u2019 own build is refused with 403 IMAGE_RESERVED, even with replace', async (t) => {
  const { dir, log, images, replications } = await setup(t);
  const hijack = await tar(dir, 'base.tar', ['mine:1', 'workrs/busybox:1'], 'evil');
  for (const replace of [false, true]) {
    await t.rejects(images.importTar(hijack, { replace }), { code: 'IMAGE_RESERVED', httpStatus: 403, message: /workrs\/busybox:1/ }, `replace ${replace}`);
  }
  const docker = await tar(dir, 'hub.tar', ['docker.io/workrs/python:3'], 'evil2');
  await t.rejects(images.importTar(docker, { replace: true }), { code: 'IMAGE_RESERVED' });
  t.equal(log.state.blobs.size, 0, 'nothing recorded');
  t.equal(replications(), 0, 'nothing copied');
});

t.test('the state machine decides in log order: of two racing imports without replace, the second is refused', async (t) => {
  const log = new Log();
  const add = (id: string, name: string, replace?: boolean) => log.apply({ type: 'blobAdded', id, kind: 'image', bytes: 10, holders: ['n1'], name, ...(replace === undefined ? {} : { replace }) });
  t.match(add('img-a', 'app:1 tool:2', false), { ok: true });
  t.match(add('img-b', 'tool:2', false), { ok: false, code: 'IMAGE_EXISTS', message: /tool:2 names image img-a/ });
  t.equal(log.state.blobs.has('img-b'), false, 'a refused blobAdded records nothing');
  t.match(add('img-a', 'app:1 tool:2', false), { ok: true }, 'the same blob again is no conflict');
  t.match(add('img-b', 'tool:2', true), { ok: true });
  t.equal(findImageBlob(log.state.blobs, 'tool:2')?.id, 'img-b');
  t.equal(log.state.blobs.get('img-a')?.name, 'app:1');
  t.match(add('img-c', 'app:1'), { ok: true }, 'an entry without the flag (proposed before it existed) moves the reference as it did');
  t.equal(findImageBlob(log.state.blobs, 'app:1')?.id, 'img-c');
  t.match(log.apply({ type: 'blobAdded', id: 'img-d', kind: 'image', bytes: 10, holders: ['n1'], name: 'x:1', replace: 'yes' as unknown as boolean }), { ok: false, code: 'INVALID_COMMAND' }, 'replace must be a boolean');
});
