// Draining a node: setDraining is replicated (and survives a snapshot and the node's
// rejoin), the state machine and the scheduler place nothing on a draining node,
// jobDrained (fenced like every report) puts the job back to pending and the scheduler
// resumes it elsewhere from its newest checkpoint; the worker of a draining node takes
// a last checkpoint of each attempt, stops it, proposes jobDrained, and starts nothing.
import pino from 'pino';
import t from 'tap';
import { plan, type PlanInput } from '../../src/scheduler/plan.js';
import type { Command } from '../../src/state/commands.js';
import { ClusterState } from '../../src/state/machine.js';
import { validateJobSpec } from '../../src/state/spec.js';
import type { Assignment } from '../../src/state/views.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import type { Checkpointer } from '../../src/worker/checkpointer.js';
import { FakeRuntime } from '../../src/worker/fake-runtime.js';
import type { ReportSink } from '../../src/worker/report-sink.js';
import { Worker } from '../../src/worker/worker.js';
import { advanceUntil } from './manual-time.js';
import { assign, checkpoint, hex, join, Log, submit, T0 } from './state-fixtures.js';

function input(log: Log, nodes: string[]): PlanInput {
  return { now: T0, lastSeenMs: new Map(nodes.map((n) => [n, T0])), nodeTimeoutMs: 3000, suspectAfterMs: 1000 };
}

t.test('setDraining: replicated, repeated without change, kept across a rejoin and a snapshot, undone; unknown and left nodes refused', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  t.same(log.ok({ type: 'setDraining', node: 'n1', draining: true }), { node: 'n1', draining: true });
  t.same(log.ok({ type: 'setDraining', node: 'n1', draining: true }), { node: 'n1', draining: true });
  log.ok(join('n1'));
  t.equal(log.state.nodes.get('n1')?.draining, true, 'a restart (rejoin) keeps the drain');
  t.match(log.state.nodesView(), [{ id: 'n1', draining: true }]);
  const restored = ClusterState.restore(log.state.snapshot());
  t.equal(hex(restored.snapshot()), hex(log.state.snapshot()));
  t.equal(restored.nodes.get('n1')?.draining, true);
  log.ok({ type: 'setDraining', node: 'n1', draining: false });
  t.equal(log.state.nodes.get('n1')?.draining, false);
  t.match(log.apply({ type: 'setDraining', node: 'n9', draining: true }), { ok: false, code: 'NODE_UNKNOWN' });
  log.ok({ type: 'nodeLeft', node: 'n1' });
  t.match(log.apply({ type: 'setDraining', node: 'n1', draining: true }), { ok: false, code: 'NODE_LEFT' });
});

t.test('nothing is placed on a draining node: plan skips it, assignJob refuses it (NODE_DRAINING)', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok({ type: 'setDraining', node: 'n1', draining: true });
  log.ok(submit('j1'));
  t.match(log.apply(assign('j1', 'n1', 1)), { ok: false, code: 'NODE_DRAINING' });
  const commands = plan(log.state, input(log, ['n1', 'n2']));
  t.match(commands, [{ type: 'assignJob', jobId: 'j1', node: 'n2' }]);
  log.ok({ type: 'setDraining', node: 'n2', draining: true });
  t.same(plan(log.state, input(log, ['n1', 'n2'])), [], 'every node draining: the job waits');
});

t.test('jobDrained: fenced; the attempt ends (drained), the job is pending, and resumes elsewhere from its newest checkpoint', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  log.ok(checkpoint('j1', 1, 'n1', 1, ['n1', 'n2']));
  log.ok({ type: 'setDraining', node: 'n1', draining: true });
  t.same(plan(log.state, input(log, ['n1', 'n2'])), [], 'the scheduler leaves the running job to its worker');
  t.match(log.apply({ type: 'jobDrained', jobId: 'j1', epoch: 1, node: 'n2' }), { ok: false, code: 'STALE_EPOCH' }, 'only from the attempt');
  log.ok(checkpoint('j1', 1, 'n1', 2, ['n1', 'n2']));
  t.same(log.ok({ type: 'jobDrained', jobId: 'j1', epoch: 1, node: 'n1' }), { jobId: 'j1', epoch: 1, state: 'pending' });
  t.match(log.apply({ type: 'jobDrained', jobId: 'j1', epoch: 1, node: 'n1' }), { ok: false, code: 'STALE_EPOCH' }, 'a repeat changes nothing');
  t.match(log.state.jobView('j1')?.attempts, [{ node: 'n1', epoch: 1 }]);
  t.equal(log.state.attempts.get('j1')?.[0]?.end, 'drained');
  const commands = plan(log.state, input(log, ['n1', 'n2']));
  t.same(commands, [{ type: 'assignJob', jobId: 'j1', node: 'n2', epoch: 2, fromCheckpoint: { seq: 2, epoch: 1 }, reason: 'node n1 drained' }]);
  for (const c of commands) log.ok(c);
  t.match(log.apply({ type: 'checkpointCommitted', jobId: 'j1', epoch: 1, node: 'n1', seq: 3, blob: 'late', bytes: 1, durationMs: 1, logOffset: 1, holders: ['n1'] }), { ok: false, code: 'STALE_EPOCH' }, "the drained attempt's late checkpoint is fenced off");
});

function longAssignment(jobId: string, mode: 'off' | 'interval' = 'interval'): Assignment {
  const parsed = validateJobSpec({ command: ['true'], env: { FAKE_SECONDS: '3600' } });
  if (!parsed.ok) throw new Error('bad spec');
  return { jobId, epoch: 1, spec: parsed.spec, inputs: {}, policy: { mode, intervalSeconds: mode === 'off' ? null : 600, reason: 'test' }, fromCheckpoint: null };
}

t.test("a draining node's worker: last checkpoint, stop, jobDrained for each attempt; nothing starts; a failed proposal is retried", async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const sent: Command[] = [];
  let reachable = false;
  const proposer = {
    send: async (cmd: Command) => {
      sent.push(cmd);
      if (!reachable) throw new Error('no leader');
      return { ok: true, value: {} };
    },
  } as unknown as ReportSink;
  const lastTaken: string[] = [];
  const checkpointer = {
    inFlight: () => null,
    track: () => {},
    untrack: () => {},
    addFrozen: () => {},
    last: async (a: Assignment) => {
      lastTaken.push(a.jobId);
      return a.policy.mode !== 'off';
    },
  } as unknown as Checkpointer;
  let assigned = [longAssignment('j1'), longAssignment('j2', 'off')];
  let draining = false;
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => assigned,
    leaseValid: () => true,
    draining: () => draining,
    checkpointer,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    logger: pino({ level: 'silent' }),
    clock,
    random: () => 0.5,
  });
  worker.poke();
  await advanceUntil(clock, 'both to run', async () => ((await runtime.running()).length === 2 ? true : undefined));
  draining = true;
  worker.poke();
  await worker.settled();
  t.same(lastTaken.sort(), ['j1', 'j2'], 'a last checkpoint asked of each (the checkpointer skips a policy off)');
  t.same(await runtime.running(), [], 'both stopped');
  t.same(sent.filter((c) => c.type === 'jobDrained').length, 2, 'jobDrained proposed for each');
  reachable = true;
  worker.poke();
  await worker.settled();
  t.same(sent.filter((c) => c.type === 'jobDrained').length, 4, 'proposed again once the first could not be');
  t.same(lastTaken.length, 2, 'no second checkpoint: the attempts were stopped already');
  t.same(await runtime.running(), [], 'and nothing started again');
  worker.poke();
  await worker.settled();
  t.same(sent.filter((c) => c.type === 'jobDrained').length, 4, 'an accepted jobDrained is not proposed again');
  // Applied: the attempts are no longer assigned here; a new one would not start while draining.
  assigned = [{ ...longAssignment('j3'), epoch: 1 }];
  worker.poke();
  await worker.settled();
  t.same(await runtime.running(), [], 'nothing starts on a draining node');
  draining = false;
  assigned = [longAssignment('j4')];
  worker.poke();
  await advanceUntil(clock, 'j4 to start once undrained', async () => ((await runtime.running()).length === 1 ? true : undefined));
  await worker.halt();
});
