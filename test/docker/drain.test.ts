// SIGTERM is a graceful stop (docs/api.md): the node takes a last checkpoint of its job,
// commits it, stops the container and exits; the job resumes elsewhere from that
// checkpoint, so what ran up to the SIGTERM is not redone.
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { clusterContainers, dockerCluster, finishedJob } from './cluster-containers.js';

interface JobView {
  state: string;
  node: string | null;
  attempts: Array<{ node: string; fromCheckpoint: { seq: number; epoch: number } | null; restoreError: string | null }>;
  checkpoints: Array<{ seq: number; epoch: number; at: number; logOffset: number }>;
}

const NODES = ['n1', 'n2', 'n3'];

t.test('SIGTERM checkpoints the running job, stops it, and it resumes elsewhere from that checkpoint', async (t) => {
  const { c, passed } = await dockerCluster(t);
  // Checkpoints every 10 minutes: only the SIGTERM makes one.
  const script = 'echo START; i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo $i; sleep 0.1; done';
  const sub = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sh', '-c', script], checkpoint: { mode: 'interval', intervalSeconds: 600 } });
  const id = sub.body.id;
  const running = await waitFor('the job to print', async () => {
    const j = (await c.get<JobView>('n1', `/v1/jobs/${id}`)).body;
    if (!j.node) return undefined;
    const log = await (await c.request(j.node, `/v1/jobs/${id}/logs`)).text();
    return log.split('\n').filter((l) => /^\d+$/.test(l)).length >= 30 ? j : undefined;
  }, 60_000, 200);
  const victim = running.node ?? 'n1';
  t.equal(running.checkpoints.length, 0, 'no checkpoint before the SIGTERM');

  const proc = c.node(victim).proc;
  const exited = new Promise<number | null>((resolve) => proc?.once('exit', (code) => resolve(code)));
  proc?.kill('SIGTERM');
  t.equal(await exited, 0, 'the node exited cleanly');
  t.same(await clusterContainers(c, victim), [], "the node stopped its job's container before leaving");

  const survivor = NODES.find((n) => n !== victim) ?? 'n2';
  const done = await finishedJob<JobView>(c, survivor, id);
  t.equal(done.state, 'succeeded');
  t.equal(done.checkpoints.length, 1, 'the SIGTERM made one checkpoint');
  const last = done.attempts.at(-1);
  t.same(last?.fromCheckpoint, { seq: 1, epoch: 1 }, 'and the job resumed from it');
  t.equal(last?.restoreError, null);
  const log = await (await c.request(survivor, `/v1/jobs/${id}/logs`)).text();
  const counts = log.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
  t.same(counts, Array.from({ length: 300 }, (_, i) => i + 1), 'every count once');
  const saved = Buffer.from(log).subarray(0, done.checkpoints[0]?.logOffset ?? 0).toString().split('\n').filter((l) => /^\d+$/.test(l)).length;
  t.ok(saved >= 30, `the checkpoint kept the ${saved} counts made before the SIGTERM`);
  passed();
});
