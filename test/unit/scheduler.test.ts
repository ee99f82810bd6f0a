// plan(): leases → node states, lost nodes' jobs re-queued with a new epoch from the
// newest reachable committed checkpoint, pending jobs placed within capacity; pure,
// deterministic and idempotent.
import t, { type Test } from 'tap';
import type { Command } from '../../src/state/commands.js';
import { plan, type PlanInput } from '../../src/scheduler/plan.js';
import { assign, checkpoint, join, Log, submit, T0 } from './state-fixtures.js';

const TIMEOUT = 3000;
const SUSPECT = 1500;

/** A lease table where every node was heard from `ago` ms before T0, except those given. */
function leases(log: Log, overrides: Record<string, number> = {}, ago = 100): PlanInput {
  const lastSeenMs = new Map<string, number>();
  for (const id of log.state.nodes.keys()) lastSeenMs.set(id, T0 - (overrides[id] ?? ago));
  return { now: T0, lastSeenMs, nodeTimeoutMs: TIMEOUT, suspectAfterMs: SUSPECT };
}

/** Proposes and applies `commands` as the leader would; every one must be accepted. */
function applyAll(t: Test, log: Log, commands: Command[]): void {
  for (const cmd of commands) {
    const r = log.apply(cmd, { clientId: 'sched-n1-t1' });
    t.ok(r.ok, `${cmd.type} ${JSON.stringify(cmd)} is accepted: ${r.ok ? '' : `${r.code} ${r.message}`}`);
  }
}

/** plan, apply what it says, and check that planning again finds nothing left to do. */
function settle(t: Test, log: Log, input: PlanInput): Command[] {
  const commands = plan(log.state, input);
  t.same(plan(log.state, input), commands, 'planning twice on the same state gives the same commands');
  applyAll(t, log, commands);
  t.same(plan(log.state, input), [], 'after they apply, plan has nothing more to do');
  return commands;
}

const assignments = (cmds: Command[]) =>
  cmds.flatMap((c) => (c.type === 'assignJob' ? [`${c.jobId}→${c.node}@${c.epoch}${c.fromCheckpoint ? ` from ${c.fromCheckpoint.epoch}/${c.fromCheckpoint.seq}` : ''}`] : []));

t.test('placement: pending jobs go oldest first to the least loaded alive node, ties by node id', async (t) => {
  const log = new Log();
  log.ok(join('n2', 2));
  log.ok(join('n1', 2));
  log.ok(join('n3', 4));
  for (const id of ['j1', 'j2', 'j3', 'j4']) log.ok(submit(id));
  const cmds = settle(t, log, leases(log));
  // Loads as running/slots: all 0 → n1 (id); then n2 and n3 at 0 → n2; then n3 (0/4); then n3 1/4 < n1 1/2.
  t.same(assignments(cmds), ['j1→n1@1', 'j2→n2@1', 'j3→n3@1', 'j4→n3@1']);
  t.same(
    cmds.map((c) => c.type === 'assignJob' && c.reason),
    ['new job', 'new job', 'new job', 'new job'],
  );
});

t.test('capacity: never more jobs on a node than its slots; the rest stay pending until a slot frees', async (t) => {
  const log = new Log();
  log.ok(join('n1', 1));
  log.ok(join('n2', 1));
  for (const id of ['j1', 'j2', 'j3']) log.ok(submit(id));
  t.same(assignments(settle(t, log, leases(log))), ['j1→n1@1', 'j2→n2@1']);
  t.equal(log.state.jobs.get('j3')?.state, 'pending');
  log.ok({ type: 'jobExited', jobId: 'j2', epoch: 1, node: 'n2', exitCode: 0 });
  t.same(assignments(settle(t, log, leases(log))), ['j3→n2@1']);
});

t.test('a full cluster does not read its queue: a round with no free slot looks at no pending job', async (t) => {
  const log = new Log();
  log.ok(join('n1', 1));
  log.ok(join('n2', 1));
  for (let i = 0; i < 50; i++) log.ok(submit(`j${String(i).padStart(2, '0')}`));
  t.same(assignments(settle(t, log, leases(log))), ['j00→n1@1', 'j01→n2@1']);
  const state = log.state;
  const original = state.pendingJobs.bind(state);
  let reads = 0;
  state.pendingJobs = () => {
    reads++;
    return original();
  };
  t.same(plan(state, leases(log)), [], 'nothing to place');
  t.equal(reads, 0, 'and the queue of 48 was not read');
  log.ok({ type: 'jobExited', jobId: 'j01', epoch: 1, node: 'n2', exitCode: 0 });
  t.same(assignments(plan(state, leases(log))), ['j02→n2@1'], 'a slot frees: the oldest queued job takes it');
  t.equal(reads, 1, 'the queue is read once a slot is free');
});

t.test('capacity: declared memory must fit the node; a big job waiting does not block a smaller younger one', async (t) => {
  const log = new Log();
  log.ok(join('n1', 4, 1024));
  log.ok(submit('small-1', { memoryMB: 512 }));
  log.ok(submit('big', { memoryMB: 800 }));
  log.ok(submit('small-2', { memoryMB: 512 }));
  t.same(assignments(settle(t, log, leases(log))), ['small-1→n1@1', 'small-2→n1@1']);
  t.equal(log.state.jobs.get('big')?.state, 'pending');
});

t.test('a node with zero slots gets nothing; no alive node means nothing is placed', async (t) => {
  const log = new Log();
  log.ok(join('n1', 0));
  log.ok(submit('j1'));
  t.same(settle(t, log, leases(log)), []);
});

t.test('requeue after loss: a node silent past nodeTimeout is lost, and its jobs get a new epoch on an alive node', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  t.same(settle(t, log, leases(log, { n1: TIMEOUT })), [{ type: 'nodeSuspect', node: 'n1' }], 'silent for exactly nodeTimeoutMs: suspect, not yet lost');
  const cmds = settle(t, log, leases(log, { n1: TIMEOUT + 1 }));
  t.same(cmds, [
    { type: 'nodeLost', node: 'n1' },
    { type: 'assignJob', jobId: 'j1', node: 'n2', epoch: 2, fromCheckpoint: null, reason: 'node n1 lost' },
  ]);
  t.match(log.state.jobView('j1'), { state: 'running', node: 'n2', epoch: 2, attempts: [{ node: 'n1', epoch: 1 }, { node: 'n2', epoch: 2, reason: 'node n1 lost' }] });
});

t.test('requeue from the newest committed checkpoint', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(join('n3'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n2']));
  log.ok(checkpoint('j1', 1, 'n1', 2, ['n1', 'n3']));
  const cmds = settle(t, log, leases(log, { n1: 10_000 }));
  t.same(assignments(cmds), ['j1→n3@2 from 1/2'], 'checkpoint 2, on n3 which holds it');
  t.same(log.state.assignmentsFor('n3')[0]?.fromCheckpoint, { seq: 2, epoch: 1, blob: 'ckpt-j1-1-2', bytes: 2000, logOffset: 20, holders: ['n1', 'n3'] });
});

t.test('prefer a holder of the checkpoint’s blob over a less loaded node', async (t) => {
  const log = new Log();
  log.ok(join('n1', 4));
  log.ok(join('n2', 4));
  log.ok(join('n3', 4));
  log.ok(submit('busy'));
  log.ok(assign('busy', 'n3', 1));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n3']));
  t.same(assignments(settle(t, log, leases(log, { n1: 10_000 }))), ['j1→n3@2 from 1/1'], 'n3 runs one job, n2 none, but n3 holds the checkpoint');
});

t.test('holders are the blob’s current ones: a replica added later counts', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(join('n3'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1'], 'ck'));
  log.ok({ type: 'blobAdded', id: 'ck', kind: 'checkpoint', bytes: 1000, holders: ['n3'] });
  t.same(assignments(settle(t, log, leases(log, { n1: 10_000 }))), ['j1→n3@2 from 1/1']);
});

t.test('when every holder of the newest checkpoint is lost, resume from an older reachable one, else start over', async (t) => {
  const log = new Log();
  for (const id of ['n1', 'n2', 'n3', 'n4']) log.ok(join(id));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n3']));
  log.ok(checkpoint('j1', 1, 'n1', 2, ['n1', 'n2']));
  // n1 and n2 die together: checkpoint 2 is gone, checkpoint 1 is on n3.
  t.same(assignments(settle(t, log, leases(log, { n1: 10_000, n2: 10_000 }))), ['j1→n3@2 from 1/1']);
  // Then n3 dies too, before j1 checkpoints again: nothing reachable, start over on n4.
  t.same(assignments(settle(t, log, leases(log, { n1: 10_000, n2: 10_000, n3: 10_000 }))), ['j1→n4@3']);
});

t.test('a job whose node is lost and no node is free stays pending (not lost), and is placed when a node frees', async (t) => {
  const log = new Log();
  log.ok(join('n1', 1));
  log.ok(join('n2', 1));
  log.ok(submit('j1'));
  log.ok(submit('j2'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(assign('j2', 'n2', 1));
  const cmds = settle(t, log, leases(log, { n1: 10_000 }));
  t.same(cmds, [{ type: 'nodeLost', node: 'n1' }]);
  t.match(log.state.jobView('j1'), { state: 'pending', node: null, epoch: 1 });
  log.ok({ type: 'jobExited', jobId: 'j2', epoch: 1, node: 'n2', exitCode: 0 });
  t.same(assignments(settle(t, log, leases(log, { n1: 10_000 }))), ['j1→n2@2']);
});

t.test('a suspect node (silent past suspectAfter) keeps its jobs and gets no new ones; heard again, it is alive', async (t) => {
  const log = new Log();
  log.ok(join('n1', 4));
  log.ok(join('n2', 1));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(submit('j2'));
  log.ok(submit('j3'));
  const cmds = settle(t, log, leases(log, { n1: SUSPECT + 1 }));
  t.same(cmds, [
    { type: 'nodeSuspect', node: 'n1' },
    { type: 'assignJob', jobId: 'j2', node: 'n2', epoch: 1, fromCheckpoint: null, reason: 'new job' },
  ]);
  t.match(log.state.jobView('j1'), { state: 'running', node: 'n1' });
  t.same(settle(t, log, leases(log)).slice(0, 2), [
    { type: 'nodeAlive', node: 'n1' },
    { type: 'assignJob', jobId: 'j3', node: 'n1', epoch: 1, fromCheckpoint: null, reason: 'new job' },
  ]);
});

t.test('a lost node heard from again is alive again, empty-handed: its old report is rejected, new jobs may go to it', async (t) => {
  const log = new Log();
  log.ok(join('n1', 1));
  log.ok(join('n2', 1));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  t.same(assignments(settle(t, log, leases(log, { n1: 10_000 }))), ['j1→n2@2']);
  log.ok(submit('j2'));
  t.same(settle(t, log, leases(log)), [
    { type: 'nodeAlive', node: 'n1' },
    { type: 'assignJob', jobId: 'j2', node: 'n1', epoch: 1, fromCheckpoint: null, reason: 'new job' },
  ]);
  t.match(log.apply({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0 }), { ok: false, code: 'STALE_EPOCH' });
});

t.test('a node missing from the lease table (a new leader has not heard from it yet) is never declared lost', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  t.same(plan(log.state, { now: T0 + 1e9, lastSeenMs: new Map(), nodeTimeoutMs: TIMEOUT, suspectAfterMs: SUSPECT }), []);
});

t.test('a node that left is not revived by heartbeats and its jobs are placed elsewhere', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'nodeLeft', node: 'n1' });
  t.same(settle(t, log, leases(log)), [{ type: 'assignJob', jobId: 'j1', node: 'n2', epoch: 2, fromCheckpoint: null, reason: 'node n1 left' }]);
});

t.test('idempotence: the commands of two identical plans applied twice open one attempt per job (the copies are STALE_EPOCH)', async (t) => {
  const log = new Log();
  log.ok(join('n1', 1));
  log.ok(join('n2', 1));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok(submit('j2'));
  const input = leases(log, { n1: 10_000 });
  const first = plan(log.state, input);
  const second = plan(log.state, input);
  t.same(second, first);
  for (const cmd of first) t.ok(log.apply(cmd).ok, `${cmd.type} applies`);
  const results = second.map((cmd) => log.apply(cmd));
  t.same(
    results.map((r) => (r.ok ? 'ok' : r.code)),
    ['ok', 'STALE_EPOCH'],
    'the repeated nodeLost is a no-op; the repeated assignment is refused',
  );
  t.same(assignments(first), ['j1→n2@2']);
  t.equal(log.state.jobs.get('j2')?.state, 'pending', 'j2 waits: n2 is full and n1 lost');
  t.same(plan(log.state, input), []);
});

t.test('plan is pure: it does not change the state', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('j1'));
  const before = Buffer.from(log.state.snapshot()).toString('hex');
  plan(log.state, leases(log, { n1: 10_000 }));
  plan(log.state, leases(log));
  t.equal(Buffer.from(log.state.snapshot()).toString('hex'), before);
});
