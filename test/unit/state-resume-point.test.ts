// Where an assigned attempt resumes: from the checkpoint it was assigned, until it
// commits checkpoints of its own; from then on (a box restarted under it starts it
// again) from its own newest one, so the work past them is not lost.
import t from 'tap';
import { assign, checkpoint, join, Log, submit } from './state-fixtures.js';

t.test('an attempt resumes from its own newest checkpoint once it has one, else from the one it was assigned', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  t.equal(log.state.assignmentsFor('n1')[0]?.fromCheckpoint, null, 'a first attempt starts from the image');
  log.ok(checkpoint('j1', 1, 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 2));
  t.match(log.state.assignmentsFor('n1')[0]?.fromCheckpoint, { epoch: 1, seq: 2 }, 'started again on its node: from its own newest checkpoint');

  log.ok({ type: 'nodeLost', node: 'n1' });
  log.ok(assign('j1', 'n2', 2, { seq: 1, epoch: 1 }));
  t.match(log.state.assignmentsFor('n2')[0]?.fromCheckpoint, { epoch: 1, seq: 1 }, 'the next attempt: from the checkpoint it was assigned');
  log.ok(checkpoint('j1', 2, 'n2', 1));
  t.match(log.state.assignmentsFor('n2')[0]?.fromCheckpoint, { epoch: 2, seq: 1 }, 'then from its own');
});
