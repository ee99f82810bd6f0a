// Old checkpoints are garbage-collected and the one that matters is not: a job
// checkpointed every second on nodes whose blob gc runs every second (keeping blobs
// younger than 3 s) makes many checkpoints; the gc deletes bytes on the holders while
// the job runs; then the job's box is killed and the job still resumes from its
// newest checkpoint and completes.
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { dockerCluster, finishedJob, removeClusterContainers } from './cluster-containers.js';

interface JobView {
  state: string;
  node: string | null;
  attempts: Array<{ node: string; fromCheckpoint: { seq: number; epoch: number } | null }>;
  checkpoints: Array<{ seq: number; epoch: number }>;
}

const NODES = ['n1', 'n2', 'n3'];

function deletedBytes(metrics: string): number {
  const m = /^workrs_blob_gc_deleted_bytes_total(?:\{\})? (\d+)$/m.exec(metrics);
  return m ? Number(m[1]) : 0;
}

t.test('the blob gc deletes old checkpoints and keeps the resume point', async (t) => {
  const { c, passed } = await dockerCluster(t, { blobGcIntervalMs: 1000, blobGcMinAgeMs: 3000 });
  // 16 MB of memory that changes a little between checkpoints, and a count in the shell.
  const script = 'echo START; head -c 16000000 /dev/urandom > /dev/shm/ballast; i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo $i; echo $i > /dev/shm/last; sleep 0.1; done';
  const sub = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sh', '-c', script], checkpoint: { mode: 'interval', intervalSeconds: 1 } });
  t.equal(sub.status, 202);
  const id = sub.body.id;
  const running = await waitFor('four committed checkpoints', async () => {
    const j = (await c.get<JobView>('n1', `/v1/jobs/${id}`)).body;
    return j.checkpoints.length >= 4 && j.node ? j : undefined;
  }, 180_000, 200);
  const victim = running.node ?? 'n1';
  const freed = await waitFor('the gc to delete old checkpoint bytes on the job\'s node', async () => {
    const text = await (await c.request(victim, '/metrics')).text();
    return deletedBytes(text) > 0 ? deletedBytes(text) : undefined;
  }, 30_000, 250);
  t.ok(freed > 0, `the job's node deleted ${freed} bytes of old checkpoints while the job ran`);

  await c.kill(victim);
  await removeClusterContainers(c, victim);
  const survivor = NODES.find((n) => n !== victim) ?? 'n2';
  const done = await finishedJob<JobView>(c, survivor, id);
  t.equal(done.state, 'succeeded');
  const last = done.attempts.at(-1);
  t.ok(last?.fromCheckpoint, `resumed from checkpoint ${JSON.stringify(last?.fromCheckpoint)} after the gc ran`);
  const log = await (await c.request(survivor, `/v1/jobs/${id}/logs`)).text();
  t.same(log.split('\n').filter((l) => /^\d+$/.test(l)).map(Number), Array.from({ length: 400 }, (_, i) => i + 1), 'each count once: the resume point was intact');
  passed();
});
