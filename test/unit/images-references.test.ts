// Image references in the replicated state: normalized on both sides, each naming one
// image blob at a time (the newest import wins, re-importing old bytes included), and
// the rows GET /v1/images shows.
import t from 'tap';
import { findImageBlob, imageRows, isReference, normalizeReference } from '../../src/images/references.js';
import { ClusterState } from '../../src/state/machine.js';
import { join, Log } from './state-fixtures.js';

function image(id: string, name: string | undefined, holders = ['n1', 'n2']): Parameters<Log['ok']>[0] {
  return { type: 'blobAdded', id, kind: 'image', bytes: 1000, holders, ...(name === undefined ? {} : { name }) };
}

function cluster(): Log {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(join('n3'));
  return log;
}

t.test('references are normalized as Docker shows them', async (t) => {
  t.equal(normalizeReference('busybox'), 'busybox:latest');
  t.equal(normalizeReference('docker.io/library/busybox'), 'busybox:latest');
  t.equal(normalizeReference('docker.io/me/tool:2'), 'me/tool:2');
  t.equal(normalizeReference('workrs/busybox:1'), 'workrs/busybox:1');
  t.equal(normalizeReference('localhost:5000/x'), 'localhost:5000/x:latest', 'a registry port is not a tag');
  t.equal(normalizeReference('localhost:5000/x:3'), 'localhost:5000/x:3');
  t.equal(normalizeReference('x@sha256:00'), 'x@sha256:00', 'digests are left alone');
  t.ok(isReference('workrs-test/img:1'));
  t.notOk(isReference('a b:1'));
  t.notOk(isReference('x@sha256:00'));
  t.notOk(isReference(`x:${'1'.repeat(300)}`));
});

t.test('a job image finds the blob that provides it, in any spelling', async (t) => {
  const log = cluster();
  log.ok(image('sha256:aa', 'busybox:latest workrs-test/a:1'));
  t.equal(findImageBlob(log.state.blobs, 'busybox')?.id, 'sha256:aa');
  t.equal(findImageBlob(log.state.blobs, 'docker.io/library/busybox:latest')?.id, 'sha256:aa');
  t.equal(findImageBlob(log.state.blobs, 'workrs-test/a:1')?.id, 'sha256:aa');
  t.equal(findImageBlob(log.state.blobs, 'workrs-test/a:2'), null);
});

t.test('a newer import of a reference takes it; re-importing the old bytes takes it back', async (t) => {
  const log = cluster();
  log.ok(image('sha256:old', 'app:1 app:latest'));
  log.ok(image('sha256:new', 'app:1', ['n2', 'n3']));
  t.equal(log.state.blobs.get('sha256:old')?.name, 'app:latest', 'the old blob keeps only what the new one does not provide');
  t.equal(findImageBlob(log.state.blobs, 'app:1')?.id, 'sha256:new');
  log.ok(image('sha256:new', 'app:latest app:1'));
  t.equal(log.state.blobs.get('sha256:old')?.name, null, 'left with no reference');
  log.ok(image('sha256:old', 'app:1 app:latest'));
  t.equal(findImageBlob(log.state.blobs, 'app:1')?.id, 'sha256:old', 'the same bytes imported again win again');
  t.equal(log.state.blobs.get('sha256:new')?.name, null);
  // A holder added without a name (a node that fetched the image) changes no reference.
  log.ok(image('sha256:new', undefined, ['n1']));
  t.equal(findImageBlob(log.state.blobs, 'app:1')?.id, 'sha256:old');
  t.same(log.state.blobs.get('sha256:new')?.holders, ['n2', 'n3', 'n1']);
  // Other blob kinds never take image references.
  log.ok({ type: 'blobAdded', id: 'in', kind: 'input', bytes: 3, holders: ['n1'], name: 'app:1' });
  t.equal(findImageBlob(log.state.blobs, 'app:1')?.id, 'sha256:old');
});

t.test('every replica of the log agrees on which blob a reference names, also after a snapshot', async (t) => {
  const log = cluster();
  log.ok(image('sha256:a', 'x:1 y:1'));
  log.ok(image('sha256:b', 'y:1 z:1'));
  log.ok(image('sha256:a', 'x:1 y:1'));
  const replay = new ClusterState();
  for (const e of log.entries) replay.applyBytes(e.index, e.data);
  replay.checkInvariants();
  const restored = ClusterState.restore(log.state.snapshot());
  for (const s of [replay, restored]) {
    t.same(imageRows(s.blobs), imageRows(log.state.blobs));
    t.equal(findImageBlob(s.blobs, 'y:1')?.id, 'sha256:a');
  }
});

t.test('the list: one row per reference, sorted, then blobs whose references moved on', async (t) => {
  const log = cluster();
  log.ok(image('sha256:b', 'b:1 a:1'), { at: 1000 });
  log.ok(image('sha256:c', 'c:1'), { at: 2000 });
  log.ok(image('sha256:d', 'c:1', ['n3']), { at: 3000 });
  log.ok({ type: 'blobAdded', id: 'ckpt', kind: 'checkpoint', bytes: 5, holders: ['n1'] });
  t.same(imageRows(log.state.blobs), [
    { name: 'a:1', blob: 'sha256:b', bytes: 1000, holders: ['n1', 'n2'], addedAt: 1000 },
    { name: 'b:1', blob: 'sha256:b', bytes: 1000, holders: ['n1', 'n2'], addedAt: 1000 },
    { name: 'c:1', blob: 'sha256:d', bytes: 1000, holders: ['n3'], addedAt: 3000 },
    { name: null, blob: 'sha256:c', bytes: 1000, holders: ['n1', 'n2'], addedAt: 2000 },
  ]);
});
