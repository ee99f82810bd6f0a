// Issue 6, acceptance 3: a job submitted with checkpoints off loses its box (a
// follower's, destroyed as in acceptance 1) after it has counted a while. With no
// checkpoint to resume from it restarts from scratch on another box, and still
// completes exactly once: one final state, exit code 0, a fresh count in its log, and
// no copy of it left running on any engine.
import t from 'tap';
import { IDS, countingLog } from './acceptance.js';
import { loseTheBoxOfAJob } from './box-loss.js';

const COUNT = 150;

t.test('a job without checkpoints restarts from scratch after its box is destroyed, and completes once', async (t) => {
  const { boxes, jobId, via, before, done } = await loseTheBoxOfAJob(t, { lab: 3, victim: 'follower', checkpoint: 'off', count: COUNT });
  t.equal(before.checkpoints.length, 0, 'no checkpoint was taken');
  t.equal(done.attempts.length, 2, 'two attempts: the lost one and the one that completed');
  const last = done.attempts.at(-1);
  t.equal(last?.fromCheckpoint, null, 'the last attempt started from scratch');
  t.equal(done.epoch, last?.epoch, "the job's result is its last attempt's");
  t.ok(done.attempts.every((a) => a.endedAt !== null), 'every attempt has ended');

  const log = await boxes.logs(via, jobId);
  t.equal(log.status, 200, 'GET /v1/jobs/:id/logs answers');
  t.equal(log.text.slice(log.text.lastIndexOf('START')), countingLog(COUNT), 'the completing attempt counted afresh from 1, each line once');
  for (const id of IDS.filter((id) => id !== before.node)) t.notOk(await boxes.runsOn(id, jobId), `no copy of the job still runs on ${id}`);
});
