// Issue 17's reboot test: every workrs process and every dockerd of a 3-node Docker
// cluster die at once, then start again the way the service would (the engine first,
// workrs once it answers: workrs.service is ordered after docker.service). Each box
// runs a checkpointed counting job, and each box's engine meets a different fate:
// - n1's engine runs with --live-restore: its container survives, workrs adopts it;
// - n2's dockerd is killed -9 without live-restore: the new dockerd stops the container
//   it finds (exit 137), which is the box's doing, not the job's;
// - n3 loses power: every process of its engine and its container is killed -9 and its
//   exec root (a tmpfs under /run on a real box) is emptied: the engine reports the
//   container exited with 255.
// Every job must finish exactly once with its count intact: adopted where its
// container survived, resumed from its checkpoint where not (never failed with the
// code of the stop, never started over from scratch).
import t from 'tap';
import type { JobView } from '../../src/state/views.js';
import { metricValue } from '../helpers/prometheus.js';
import { waitFor } from '../helpers/wait.js';
import { Boxes, countingLog, countingScript, IDS } from './acceptance.js';
import { crashEngine, launch } from './engines.js';

const COUNT = 500;
const FATE: Record<string, 'adopted' | 'daemon' | 'box'> = { n1: 'adopted', n2: 'daemon', n3: 'box' };

t.test('a reboot of every box: each job finishes exactly once, adopted where its container survived, resumed from its checkpoint where not', async (t) => {
  const boxes = await Boxes.start(t, 5, { engineArgs: (id) => (FATE[id] === 'adopted' ? ['--live-restore'] : []) });
  const checkpoint = { mode: 'interval', intervalSeconds: 2 };
  const jobs = new Map<string, string>();
  for (const box of IDS) {
    const [id = ''] = await boxes.placeOn(box, [{ command: countingScript(COUNT), checkpoint }], IDS[0]);
    jobs.set(box, id);
  }
  t.comment(`jobs: ${[...jobs].map(([box, id]) => `${id} on ${box}`).join(', ')}`);

  // Work worth saving on every box: a committed checkpoint of each job, replicated.
  const before = new Map<string, JobView>();
  for (const [box, id] of jobs) {
    before.set(box, await waitFor(`a committed checkpoint of ${id}`, async () => {
      const j = await boxes.job(IDS[0], id);
      if (j.state !== 'running' || j.node !== box) throw new Error(`job ${id} is ${j.state} on ${j.node}`);
      return j.checkpoints.length > 0 ? j : undefined;
    }, 90_000, 200));
  }
  const survivor = (await boxes.containersOf('n1', jobs.get('n1') ?? ''))[0];
  t.ok(survivor, 'the n1 job has a container');

  // The reboot: all at once.
  const rebootAt = Date.now();
  await Promise.all(IDS.map(async (box) => {
    const spec = boxes.engineSpecs.get(box);
    if (!spec) throw new Error(`no engine spec for ${box}`);
    await Promise.all([boxes.cluster.kill(box), crashEngine(spec, FATE[box] === 'box' ? 'box' : 'daemon')]);
  }));
  t.comment(`every workrs and dockerd killed in ${Date.now() - rebootAt} ms`);
  // As the service would: the engine, then workrs once the engine answers.
  await Promise.all(IDS.map(async (box) => {
    const spec = boxes.engineSpecs.get(box);
    if (!spec) throw new Error(`no engine spec for ${box}`);
    const t0 = Date.now();
    await launch(spec);
    boxes.cluster.start(box);
    t.comment(`${box}: engine answered after ${Date.now() - t0} ms, workrs started`);
  }));
  await boxes.cluster.leader(60_000);

  // n1: adopted, the container that ran before the reboot (checked once the job is done,
  // from the engine's events: the container may be gone by then, its result taken).
  const n1Job = jobs.get('n1') ?? '';
  await waitFor('n1 to adopt its container', () => (boxes.logLines('n1').some((l) => l.msg === 'adopted containers that survived a restart of workrs') ? true : undefined), 60_000, 200);

  for (const [box, id] of jobs) {
    const done = await boxes.final(IDS[0], id, 240_000);
    t.equal(done.state, 'succeeded', `${box}'s job ${id} succeeded: its count and its file are exactly 1..${COUNT}`);
    t.equal(done.exitCode, 0, `${box}'s job exited 0`);
    t.ok(done.attempts.every((a) => a.restoreError === null), `no attempt of ${box}'s job fell back to a start from scratch`);
    const log = await boxes.logs(IDS[0], id);
    t.equal(log.text.split('\n').filter((l) => l === 'START').length, 1, `${box}'s job printed START once: it never started over`);
    t.equal(log.text, countingLog(COUNT), `${box}'s job's log holds every line once`);
    t.comment(`${box}: attempts ${done.attempts.map((a) => `${a.node}/${a.epoch}${a.fromCheckpoint ? ` from ${a.fromCheckpoint.epoch}.${a.fromCheckpoint.seq}` : ''}`).join(', ')}`);
  }

  const n1Events = await boxes.events('n1', n1Job, ['start', 'die'], rebootAt);
  t.same(n1Events.map((e) => [e.status, e.Actor.ID, e.Actor.Attributes.exitCode]), [['die', survivor?.Id, '0']], "n1's container survived the engine's restart: never started again, it ran the job to exit 0");
  const n1Done = await boxes.job(IDS[0], n1Job);
  t.equal(n1Done.attempts.length, 1, "n1's job kept its one attempt");

  // n2 and n3: their engines reported the stop (137, 255); the job resumed from a checkpoint.
  for (const box of ['n2', 'n3']) {
    const id = jobs.get(box) ?? '';
    const stopped = boxes.logLines(box).find((l) => l.job === id && typeof l.msg === 'string' && l.msg.includes('stopped by its box'));
    const resumedOn = IDS.filter((b) => boxes.logLines(b).some((l) => l.msg === 'resumed from checkpoint' && l.job === id));
    t.ok(resumedOn.length > 0, `${box}'s job resumed from its checkpoint (on ${resumedOn.join(', ')})`);
    t.comment(`${box}: ${stopped ? `the node saw its container stopped by the box (exit ${String(stopped.exitCode)})` : 'the job was taken over before the node came back'}`);
    const checkpointSeq = before.get(box)?.checkpoints.at(-1)?.seq ?? 0;
    const final = await boxes.job(IDS[0], id);
    t.ok(final.checkpoints.some((c) => c.seq >= checkpointSeq), `${box}'s checkpoint from before the reboot is kept`);
  }

  // Exactly once, from the engines' side: no container of a job still runs anywhere.
  for (const [, id] of jobs) {
    for (const box of IDS) t.notOk(await boxes.runsOn(box, id), `no container of ${id} still runs on ${box}`);
  }
  const restores = await Promise.all(IDS.map(async (box) => {
    const res = await boxes.cluster.request(box, '/metrics');
    const text = await res.text();
    return metricValue(text, 'workrs_restores_total{how="cold"}') + metricValue(text, 'workrs_restores_total{how="standby"}');
  }));
  t.ok(restores.reduce((a, b) => a + b, 0) >= 2, `the cluster restored at least two jobs from checkpoints (restores per node: ${restores.join(', ')})`);
});
