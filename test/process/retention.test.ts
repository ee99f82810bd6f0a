// Retention on real nodes (a config file sets 1 s): a finished job is forgotten by
// the leader (GET answers 404 on every node), the blob of its uploaded input is
// forgotten and its chunks deleted from every node's disk; a running job and its
// input are kept.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BlobStore } from '../../src/blobs/index.js';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

async function submitWithFile(c: LocalCluster, via: string, content: Buffer, seconds: string): Promise<string> {
  const form = new FormData();
  form.append('spec', JSON.stringify({ command: ['sh', 'in.dat'], files: ['in.dat'], env: { FAKE_SECONDS: seconds } }));
  form.append('file', new Blob([content]), 'in.dat');
  const res = await c.request(via, '/v1/jobs', { method: 'POST', body: form }, 60_000);
  if (res.status !== 202) throw new Error(`submission refused: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

t.test('a finished job and its input are forgotten after jobRetentionSeconds; a running one is kept', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  const config = join(c.dir, 'retention.json');
  // A gc min age of 0 would let a gc run delete an upload's chunks between their write
  // and their registration (the min age is what protects them; 10 min by default).
  writeFileSync(config, JSON.stringify({ jobRetentionSeconds: 1, blobGcMinAgeMs: 1500, blobGcIntervalMs: 300 }));
  for (const n of c.nodes.values()) n.args.push('--config', config);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.allReady();

  const short = randomBytes(400_000);
  const long = randomBytes(300_000);
  const running = await submitWithFile(c, leader, long, '3600');
  const done = await submitWithFile(c, leader, short, '0.3');
  await waitFor('the short job to succeed', async () => ((await c.get<{ state: string }>(leader, `/v1/jobs/${done}`)).body.state === 'succeeded' ? true : undefined), 20_000, 100);
  t.pass('the short job succeeded');

  await waitFor('the finished job to be forgotten everywhere', async () => {
    const codes = await Promise.all(['n1', 'n2', 'n3'].map((id) => c.get(id, `/v1/jobs/${done}?stale=1`).then((r) => r.status, () => 0)));
    return codes.every((s) => s === 404) ? true : undefined;
  }, 30_000, 200);
  t.pass('GET /v1/jobs/:id of the finished job is 404 on every node');
  const list = await c.get<{ jobs: Array<{ id: string; state: string }> }>(leader, '/v1/jobs');
  t.same(list.body.jobs.map((j) => j.id), [running], 'the list holds the running job only');
  t.equal((await c.get<{ state: string }>(leader, `/v1/jobs/${running}`)).body.state, 'running', 'the running job is kept');

  const metrics = await (await c.request(leader, '/metrics')).text();
  t.match(metrics, /workrs_jobs_forgotten_total(\{\})? [1-9]/, 'the leader counts the forgotten job');
  await waitFor('the blob records of the finished job to go', async () => {
    const m = await (await c.request(leader, '/metrics')).text();
    return /workrs_blobs_forgotten_total(\{\})? [1-9]/.test(m) ? true : undefined;
  }, 20_000, 200);
  t.pass('the leader forgot blob records');

  // The chunk gc on each node deletes the input's chunks once older than the min age;
  // the running job's input stays on its two holders.
  await new Promise((r) => setTimeout(r, 3000));
  await c.stop();
  let holdersOfLong = 0;
  for (const id of ['n1', 'n2', 'n3']) {
    const store = await BlobStore.open(join(c.node(id).dataDir, 'blobs'));
    const stat = await store.stat();
    t.comment(`${id}: ${stat.bytes} bytes in ${stat.chunks} chunks`);
    t.ok(stat.bytes < short.length, `${id} no longer holds the forgotten input (${stat.bytes} bytes)`);
    if (stat.bytes >= long.length) holdersOfLong++;
  }
  t.equal(holdersOfLong, 2, "the running job's input is still on two nodes");
  failed = false;
});
