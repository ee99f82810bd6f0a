// Issue 6, acceptance 2: acceptance 1 with the LEADER's box as the victim. The job is
// placed on the leader, checkpointed every 2 s; after a committed checkpoint the
// leader's box is destroyed (workrs killed -9, its containers removed on its own
// engine, its data folder deleted). The two survivors elect a new leader, which
// declares the old one lost and resumes the job from the replicated checkpoint.
import t from 'tap';
import { assertResumed, loseTheBoxOfAJob } from './box-loss.js';

const COUNT = 200;

t.test("the leader's box is destroyed: its job resumes elsewhere from the replicated checkpoint", async (t) => {
  const loss = await loseTheBoxOfAJob(t, { lab: 2, victim: 'leader', checkpoint: 'interval', count: COUNT });
  const newLeader = await loss.boxes.leader();
  t.not(newLeader, loss.victim, `the survivors elected a new leader (${newLeader})`);
  await assertResumed(t, loss, COUNT);
});
