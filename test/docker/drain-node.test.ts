// `workrs nodes drain` with real Docker and CRIU: the drained node's worker takes a
// last checkpoint of its job, commits it and stops the container; the job resumes on
// another node from that checkpoint, and its output has every count exactly once. The
// drained node stays a member and takes nothing new until undrained. And `logs?since=`
// cuts the running attempt's output by Docker's time per line, leaving out what the
// attempt inherited from its checkpoint unless `since` is before the job's first start.
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { clusterContainers, dockerCluster, finishedJob } from './cluster-containers.js';

interface JobView {
  state: string;
  node: string | null;
  startedAt: number | null;
  attempts: Array<{ node: string; fromCheckpoint: { seq: number; epoch: number } | null; restoreError: string | null; reason: string }>;
  checkpoints: Array<{ seq: number; epoch: number; logOffset: number }>;
}

const NODES = ['n1', 'n2', 'n3'];
const counts = (log: string): number[] => log.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);

t.test('a drained node checkpoints its job, stops it, and the job resumes elsewhere from that checkpoint, exactly once', async (t) => {
  const { c, passed } = await dockerCluster(t);
  // Checkpoints every 10 minutes: only the drain makes one.
  const script = 'echo START; i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo $i; sleep 0.1; done';
  const sub = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sh', '-c', script], name: 'counter', checkpoint: { mode: 'interval', intervalSeconds: 600 } });
  const id = sub.body.id;
  const running = await waitFor('the job to print', async () => {
    const j = (await c.get<JobView>('n1', `/v1/jobs/counter`)).body;
    if (!j.node) return undefined;
    const log = await (await c.request(j.node, `/v1/jobs/${id}/logs`)).text();
    return counts(log).length >= 30 ? j : undefined;
  }, 60_000, 200);
  const victim = running.node ?? 'n1';
  t.equal(running.checkpoints.length, 0, 'no checkpoint before the drain');

  // Docker's time per line: the last second holds only the newest counts.
  const recent = counts(await (await c.request(victim, `/v1/jobs/${id}/logs?since=${((Date.now() - 1000) / 1000).toFixed(3)}`)).text());
  t.ok(recent.length > 0 && recent.length <= 15 && (recent[0] ?? 0) > 10, `since a second ago: the newest counts only (${recent.slice(0, 3).join(',')}…)`);

  const other = NODES.find((n) => n !== victim) ?? 'n2';
  const drain = await c.request(other, `/v1/cluster/nodes/${victim}/drain`, { method: 'POST' });
  t.equal(drain.status, 200);
  const moved = await waitFor('the job to run elsewhere', async () => {
    const j = (await c.get<JobView>(other, `/v1/jobs/${id}`)).body;
    return j.state === 'running' && j.node !== null && j.node !== victim && j.attempts.length === 2 ? j : undefined;
  }, 90_000, 250);
  t.same(await clusterContainers(c, victim), [], 'the drained node stopped and removed its container');
  t.equal(moved.checkpoints.length, 1, 'the drain made one checkpoint');
  t.match(moved.attempts[1], { fromCheckpoint: { seq: 1, epoch: 1 }, reason: `node ${victim} drained` }, 'the job resumes from it');

  // The resumed attempt inherited its output up to the checkpoint: that has no time.
  await waitFor('the resumed attempt to print', async () => {
    const log = await (await c.request(moved.node ?? other, `/v1/jobs/${id}/logs`)).text();
    return counts(log).length > (moved.checkpoints[0]?.logOffset ?? 0) / 4 + 20 ? true : undefined;
  }, 60_000, 250);
  const sinceNow = counts(await (await c.request(moved.node ?? other, `/v1/jobs/${id}/logs?since=${((Date.now() - 1000) / 1000).toFixed(3)}`)).text());
  t.ok(sinceNow.length > 0 && (sinceNow[0] ?? 0) > 30, `since after the resume: not the inherited counts (first ${sinceNow[0]})`);
  const sinceStart = counts(await (await c.request(other, `/v1/jobs/${id}/logs?since=${Math.floor((running.startedAt ?? 0) / 1000) - 1}`)).text());
  t.same(sinceStart.slice(0, 5), [1, 2, 3, 4, 5], 'since before the first start: the inherited output too');

  const view = (await c.get<{ nodes: Array<{ id: string; state: string; draining: boolean; running: number }> }>(other, '/v1/cluster')).body;
  t.match(view.nodes.find((n) => n.id === victim), { state: 'alive', draining: true, running: 0 }, 'still a member, draining, empty');

  const done = await finishedJob<JobView>(c, other, id);
  t.equal(done.state, 'succeeded');
  t.equal(done.attempts.length, 2, 'exactly one move');
  t.equal(done.attempts[1]?.restoreError, null);
  const log = await (await c.request(other, `/v1/jobs/${id}/logs`)).text();
  t.same(counts(log), Array.from({ length: 400 }, (_, i) => i + 1), 'every count exactly once');
  const saved = counts(Buffer.from(log).subarray(0, done.checkpoints[0]?.logOffset ?? 0).toString()).length;
  t.ok(saved >= 30, `the checkpoint kept the ${saved} counts made before the drain`);

  // Nothing new goes to the drained node; undrained, it takes jobs again.
  const quick = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sh', '-c', 'echo hi'] });
  const q = await finishedJob<JobView>(c, other, quick.body.id);
  t.not(q.attempts[0]?.node, victim, 'a new job does not go to the draining node');
  t.equal((await c.request(other, `/v1/cluster/nodes/${victim}/drain`, { method: 'DELETE' })).status, 200);
  passed();
});
