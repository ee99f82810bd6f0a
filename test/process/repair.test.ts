// Re-replication on real processes: a job's uploaded file lives on two nodes; when one
// of them is killed, the other copies it to the third node (src/blobs/repair.ts), so a
// second loss cannot take the job's only copy.
import { join } from 'node:path';
import t from 'tap';
import { BlobStore } from '../../src/blobs/index.js';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster } from './harness.js';

async function storedBytes(c: LocalCluster, id: string): Promise<number> {
  const store = await BlobStore.open(join(c.node(id).dataDir, 'blobs'));
  return (await store.stat()).bytes;
}

function repairs(metrics: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith('workrs_blob_repairs_total'));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

t.test('a lost holder of a running job’s input is replaced by a copy on an alive node', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader();
  await c.allReady();
  const content = Buffer.from(`#!/bin/sh\n# ${'y'.repeat(400_000)}\n`);
  const form = new FormData();
  // Long enough to stay unfinished (its input stays needed) for the whole test.
  form.append('spec', JSON.stringify({ command: ['sh', 'job.sh'], files: ['job.sh'], env: { FAKE_SECONDS: '600' } }));
  form.append('file', new Blob([content]), 'job.sh');
  const res = await c.request('n1', '/v1/jobs', { method: 'POST', body: form }, 60_000);
  t.equal(res.status, 202, 'submitted to n1');
  const jobId = ((await res.json()) as { id: string }).id;
  // n1 stores the file and copies it to the first other alive node by id: n2.
  await c.kill('n2');
  const leader = await c.leader();
  t.not(leader, 'n2');
  const pushed = await waitFor('n1 to copy the file to another node', async () => {
    const n = repairs(await c.request('n1', '/metrics').then((r) => r.text()));
    return n > 0 ? n : undefined;
  }, 30_000, 200);
  t.equal(pushed, 1, 'one copy made: one was missing');
  const job = (await c.get<{ state: string }>(leader, `/v1/jobs/${jobId}`)).body;
  t.ok(job.state === 'running' || job.state === 'pending', `the job is unfinished (${job.state})`);
  await c.stop();
  t.ok((await storedBytes(c, 'n3')) >= content.length, 'n3 holds the file now');
  t.ok((await storedBytes(c, 'n1')) >= content.length, 'n1 still holds it');
  failed = false;
});
