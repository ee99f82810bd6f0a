// A job submitted with files (multipart): each file becomes a blob held by two nodes
// before the submission is acknowledged; a spec whose file list does not match the
// upload is refused.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { BlobStore } from '../../src/blobs/index.js';
import { LocalCluster } from './harness.js';

t.test('uploaded files are stored as blobs on two nodes before the job is acknowledged', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader();
  await c.allReady();
  const content = Buffer.from(`#!/bin/sh\necho ${'x'.repeat(300_000)}\n`);
  const form = new FormData();
  form.append('spec', JSON.stringify({ command: ['sh', 'job.sh'], files: ['job.sh'], env: { FAKE_SECONDS: '0.2' } }));
  form.append('file', new Blob([content]), 'job.sh');
  const res = await c.request('n2', '/v1/jobs', { method: 'POST', body: form }, 60_000);
  t.equal(res.status, 202, 'multipart submission accepted');

  const mismatch = new FormData();
  mismatch.append('spec', JSON.stringify({ command: ['sh', 'job.sh'], files: ['other.sh'] }));
  mismatch.append('file', new Blob(['echo\n']), 'job.sh');
  const bad = await c.request('n2', '/v1/jobs', { method: 'POST', body: mismatch }, 60_000);
  t.equal(bad.status, 400);
  t.equal(((await bad.json()) as { error: { code: string } }).error.code, 'FILES_MISMATCH');

  await c.stop();
  let holders = 0;
  const expected = createHash('sha256').update(content).digest('hex');
  for (const id of ['n1', 'n2', 'n3']) {
    const store = await BlobStore.open(join(c.node(id).dataDir, 'blobs'));
    const stat = await store.stat();
    if (stat.bytes >= content.length) {
      holders++;
      t.comment(`${id} holds ${stat.bytes} bytes in ${stat.chunks} chunks`);
    }
  }
  t.equal(holders, 2, `the file (sha256 ${expected.slice(0, 12)}…) is held by exactly two nodes`);
  failed = false;
});
