// The fault of acceptance tests 1 to 3 of issue 6: the box running a counting job is
// destroyed (workrs killed -9, every container on its own engine removed, its data
// folder deleted) while the job runs; the job must complete on another box. Each test
// file picks the victim (a follower or the leader) and the checkpoint mode, and adds
// the assertions of its own case; `assertResumed` holds those of a checkpointed job.
import type { JobView } from '../../src/state/views.js';
import { waitFor } from '../helpers/wait.js';
import { Boxes, IDS, countingLog, countingScript } from './acceptance.js';
import { execIn } from './fixtures.js';

interface T {
  teardown(fn: () => unknown): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
  ok(v: unknown, msg: string): void;
  equal(a: unknown, b: unknown, msg: string): void;
  not(a: unknown, b: unknown, msg: string): void;
}

export interface BoxLoss {
  boxes: Boxes;
  jobId: string;
  victim: string;
  /** A box that stays up, to read the job through. */
  via: string;
  /** The job as it was just before its box was destroyed. */
  before: JobView;
  done: JobView;
}

/** Lines the job has appended to /work/count in its first attempt's container. */
async function linesCounted(boxes: Boxes, box: string, jobId: string): Promise<number> {
  const out = await execIn(boxes.engine(box), { jobId, epoch: 1 }, ['sh', '-c', 'cat /work/count 2>/dev/null | wc -l']);
  return Number(out.trim());
}

export async function loseTheBoxOfAJob(t: T, opts: { lab: number; victim: 'leader' | 'follower'; checkpoint: 'interval' | 'off'; count: number }): Promise<BoxLoss> {
  const boxes = await Boxes.start(t, opts.lab);
  const leader = await boxes.leader();
  const victim = opts.victim === 'leader' ? leader : (IDS.find((id) => id !== leader) ?? 'n1');
  const via = IDS.find((id) => id !== victim) ?? 'n1';
  const checkpoint = opts.checkpoint === 'off' ? { mode: 'off' } : { mode: 'interval', intervalSeconds: 2 };
  const [jobId = ''] = await boxes.placeOn(victim, [{ command: countingScript(opts.count), checkpoint }], via);
  t.comment(`leader ${leader}; job ${jobId} on ${victim}`);

  // Work worth saving: a committed (replicated) checkpoint, or with checkpoints off a
  // count well under way, so that a restart visibly starts over.
  const before = await waitFor(opts.checkpoint === 'off' ? 'the job to count 20 lines' : 'a committed checkpoint', async () => {
    const j = await boxes.job(via, jobId);
    if (j.state !== 'running' || j.node !== victim) throw new Error(`job is ${j.state} on ${j.node}`);
    if (opts.checkpoint === 'off') return (await linesCounted(boxes, victim, jobId)) >= 20 ? j : undefined;
    return j.checkpoints.length > 0 ? j : undefined;
  }, 90_000, 200);
  const stillLeader = await boxes.leader();
  t.equal(stillLeader === victim, opts.victim === 'leader', `the victim ${victim} is ${opts.victim === 'leader' ? 'the leader' : 'a follower'} (leader: ${stillLeader})`);

  await boxes.destroy(victim);
  const done = await boxes.final(via, jobId);
  t.equal(done.state, 'succeeded', 'the job completed: its count and its file are exactly 1..n');
  t.equal(done.exitCode, 0, 'exit code 0');
  t.equal(done.attempts[0]?.node, victim, 'its first attempt ran on the destroyed box');
  t.not(done.attempts.at(-1)?.node, victim, `its last attempt ran on another box (${done.attempts.at(-1)?.node})`);
  return { boxes, jobId, victim, via, before, done };
}

/** The job of `loss` resumed from its replicated checkpoint, and its log shows every line of `countingScript(count)` once. */
export async function assertResumed(t: T, loss: BoxLoss, count: number): Promise<void> {
  const { boxes, jobId, victim, via, before, done } = loss;
  const held = before.checkpoints.at(-1)?.holders ?? [];
  t.ok(held.length >= 2 && held.includes(victim), `the checkpoint was replicated before the fault (holders ${held.join(', ')})`);
  const last = done.attempts.at(-1);
  t.ok(last?.fromCheckpoint, `the last attempt started from checkpoint ${JSON.stringify(last?.fromCheckpoint)}`);
  t.equal(last?.fromCheckpoint?.epoch, 1, "the checkpoint is the destroyed box's attempt's");
  const restored = boxes.logLines(last?.node ?? via).find((l) => l.msg === 'resumed from checkpoint' && l.job === jobId);
  t.ok(restored, `${last?.node} restored the CRIU image (not a restart from scratch)`);

  const log = await boxes.logs(via, jobId);
  t.equal(log.status, 200, 'GET /v1/jobs/:id/logs answers');
  t.equal(log.text.split('\n').filter((l) => l === 'START').length, 1, 'START appears once in the log');
  t.equal(log.text, countingLog(count), 'the log holds every line once: cut at the checkpoint the job resumed from');
}
