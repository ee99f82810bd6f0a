// The heart of Workrs on real Docker + CRIU: a job checkpointed every 2 s; its box is
// destroyed (workrs killed -9, its containers killed, its data folder deleted); the
// job resumes on another node from the newest replicated checkpoint and completes.
import { readFileSync, rmSync } from 'node:fs';
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { dockerCluster, finishedJob, removeClusterContainers } from './cluster-containers.js';

interface JobView {
  state: string;
  exitCode: number | null;
  node: string | null;
  epoch: number;
  attempts: Array<{ node: string; epoch: number; fromCheckpoint: { seq: number; epoch: number } | null }>;
  checkpoints: Array<{ seq: number; epoch: number; holders: string[] }>;
}


t.test('a job resumes from its replicated checkpoint after its box is destroyed', async (t) => {
  const { c, passed } = await dockerCluster(t);
  // State only in memory (the shell's i), and a file the job appends to.
  const script = 'echo START; i=0; while [ $i -lt 120 ]; do i=$((i+1)); echo $i; echo $i >> /work/count; sleep 0.1; done; test "$(wc -l < /work/count)" -eq 120';
  const sub = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sh', '-c', script], checkpoint: { mode: 'interval', intervalSeconds: 2 } });
  t.equal(sub.status, 202);
  const id = sub.body.id;
  const first = await waitFor('a committed checkpoint', async () => {
    const j = (await c.get<JobView>('n1', `/v1/jobs/${id}`)).body;
    return j.checkpoints.length > 0 && j.node ? j : undefined;
  }, 60_000, 100);
  const victim = first.node ?? 'n1';
  t.ok((first.checkpoints[0]?.holders.length ?? 0) >= 2, `checkpoint held by ${first.checkpoints[0]?.holders.join(', ')}`);

  // The box is gone: process, containers, data.
  await c.kill(victim);
  await removeClusterContainers(c, victim);
  rmSync(c.node(victim).dataDir, { recursive: true, force: true });
  const survivor = ['n1', 'n2', 'n3'].find((n) => n !== victim) ?? 'n2';
  const done = await finishedJob<JobView>(c, survivor, id);
  t.equal(done.state, 'succeeded', 'the job completed, its appended file exactly 120 lines long');
  const resumed = done.attempts.at(-1);
  t.not(resumed?.node, victim, 'on another node');
  t.ok(resumed?.fromCheckpoint, `the last attempt started from checkpoint ${JSON.stringify(resumed?.fromCheckpoint)}`);
  const log = readFileSync(c.node(resumed?.node ?? survivor).logFile, 'utf8');
  t.match(log, /resumed from checkpoint/, 'the node restored the CRIU image (not a restart from scratch)');
  const output = await (await c.request(survivor, `/v1/jobs/${id}/logs`)).text();
  t.equal(output.split('\n').filter((l) => l === 'START').length, 1, "the job's log shows its start marker once: the resumed attempt's log continues the checkpoint's");
  const counted = output.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
  t.same(counted, Array.from({ length: 120 }, (_, i) => i + 1), 'each count of the job appears once, in order, across the two attempts');
  passed();
});
