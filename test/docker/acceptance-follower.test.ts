// Issue 6, acceptance 1, on real Docker + CRIU with every box on its own engine and
// network namespace: a job whose state lives only in memory (a shell counter) and that
// appends to a file is checkpointed every 2 s; after a committed checkpoint its box, a
// follower, is destroyed (workrs killed -9, its containers removed on its engine, its
// data folder deleted). The job resumes on another box from the replicated checkpoint,
// completes with the correct count and file, and its log shows every line once.
import t from 'tap';
import { assertResumed, loseTheBoxOfAJob } from './box-loss.js';

const COUNT = 200;

t.test("a follower's box is destroyed: its job resumes elsewhere from the replicated checkpoint", async (t) => {
  const loss = await loseTheBoxOfAJob(t, { lab: 1, victim: 'follower', checkpoint: 'interval', count: COUNT });
  await assertResumed(t, loss, COUNT);
});
