// The worker's exit reporting: the result is published first, the exit is proposed
// until the state machine decides (also across a lost lease), a fenced report is
// counted, and an attempt whose exit is pending never runs a second time. Self-fencing
// freezes and stops attempts at the right simulated moments, also while a start is
// stuck; an attempt waits for its checkpoint in flight before it starts again. All on
// simulated time.
import t from 'tap';
import pino from 'pino';
import type { Command } from '../../src/state/commands.js';
import { validateJobSpec } from '../../src/state/spec.js';
import type { Assignment } from '../../src/state/views.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { FakeRuntime, type FakeRunEvent } from '../../src/worker/fake-runtime.js';
import type { Checkpointer } from '../../src/worker/checkpointer.js';
import type { ReportSink } from '../../src/worker/report-sink.js';
import type { RunKey } from '../../src/worker/runtime.js';
import { Worker, type WorkerOptions } from '../../src/worker/worker.js';
import { advance, advanceUntil } from './manual-time.js';

function assignment(jobId: string, epoch: number): Assignment {
  const parsed = validateJobSpec({ command: ['true'], env: { FAKE_SECONDS: '0.05' } });
  if (!parsed.ok) throw new Error('bad spec');
  return { jobId, epoch, spec: parsed.spec, inputs: {}, policy: { mode: 'off', intervalSeconds: null, reason: 'test' }, fromCheckpoint: null };
}

type Answer = { ok: true } | { ok: false; code: string; message: string } | 'unreachable';

/** A proposer whose answers the test scripts; records what was proposed. */
function scriptedProposer(answer: (cmd: Command) => Answer): { proposer: ReportSink; sent: Command[] } {
  const sent: Command[] = [];
  const proposer = {
    send: async (cmd: Command) => {
      sent.push(cmd);
      const a = answer(cmd);
      if (a === 'unreachable') throw new Error('no leader');
      return a.ok ? { ok: true, value: null } : a;
    },
  } as unknown as ReportSink;
  return { proposer, sent };
}

/** A worker on simulated time, with the options every test here shares. */
function makeWorker(clock: ManualClock, opts: Pick<WorkerOptions, 'runtime' | 'proposer' | 'assignments' | 'leaseValid'> & Partial<WorkerOptions>): Worker {
  return new Worker({
    nodeId: 'n1',
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    logger: pino({ level: 'silent' }),
    clock,
    random: () => 0.5,
    ...opts,
  });
}

/** A fake runtime that counts its starts. */
function countingRuntime(clock: ManualClock): { runtime: FakeRuntime; starts: () => number } {
  const runtime = new FakeRuntime({ clock });
  let starts = 0;
  const start = runtime.start.bind(runtime);
  runtime.start = async (...args) => {
    starts++;
    return start(...args);
  };
  return { runtime, starts: () => starts };
}

t.test('an exit is reported with its result, across a lost lease, until fenced; never run twice', async (t) => {
  const clock = new ManualClock();
  const { runtime, starts } = countingRuntime(clock);
  let partitioned = false;
  const { proposer, sent } = scriptedProposer((cmd) => {
    if (cmd.type !== 'jobExited') return { ok: true };
    return partitioned ? 'unreachable' : { ok: false, code: 'STALE_EPOCH', message: 'job j1 is at epoch 2' };
  });
  let leaseValid = true;
  const published: RunKey[] = [];
  const rejected: string[] = [];
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => [assignment('j1', 1)],
    leaseValid: () => leaseValid,
    publishResult: async (key) => {
      published.push(key);
      return { blob: 'result-blob-1', failure: null };
    },
    onReportRejected: (what, code) => rejected.push(`${what}:${code}`),
  });
  partitioned = true;
  worker.poke();
  await advanceUntil(clock, 'the exit to be proposed', () => (sent.some((c) => c.type === 'jobExited') ? true : undefined));
  t.equal(clock.monotonic(), 50, 'the fake run exited after its 50 simulated ms');
  // The lease lapses (a partition), then comes back while the report is still pending.
  leaseValid = false;
  worker.poke();
  await advance(clock, 200);
  leaseValid = true;
  for (let i = 0; i < 5; i++) {
    worker.poke();
    await advance(clock, 50);
  }
  t.equal(starts(), 1, 'the attempt whose exit is pending was not started again');
  const triesWhilePartitioned = sent.filter((c) => c.type === 'jobExited').length;
  partitioned = false; // healed: the fence answers
  await advanceUntil(clock, 'the rejection', () => (rejected.length > 0 ? true : undefined));
  t.same(rejected, ['jobExited:STALE_EPOCH'], 'the fenced report is counted');
  const exits = sent.filter((c): c is Extract<Command, { type: 'jobExited' }> => c.type === 'jobExited');
  t.ok(triesWhilePartitioned >= 1 && exits.length === triesWhilePartitioned + 1, `proposed again after failures (${triesWhilePartitioned} failed tries, then the answer)`);
  t.ok(exits.every((c) => c.resultBlob === 'result-blob-1' && c.epoch === 1 && c.exitCode === 0), 'every proposal carries the result blob');
  t.equal(published.length, 1, 'the result was published once');
  t.same(await runtime.running(), [], 'the attempt is gone from the runtime');
});

t.test('the exit report backs off while no leader answers: doubling delays, at most 10 s apart', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const triedAt: number[] = [];
  const { proposer } = scriptedProposer((cmd) => {
    if (cmd.type === 'jobExited') triedAt.push(clock.monotonic());
    return cmd.type === 'jobExited' ? 'unreachable' : { ok: true };
  });
  const worker = makeWorker(clock, { runtime, proposer, assignments: () => [assignment('j1', 1)], leaseValid: () => true });
  worker.poke();
  await advance(clock, 60_000, 1000);
  const gaps = triedAt.slice(1).map((at, i) => at - triedAt[i]!);
  // random() is 0.5: three quarters of 1, 2, 4, 8, 10, 10, … s.
  t.same(gaps.slice(0, 6), [750, 1500, 3000, 6000, 7500, 7500], `the delays between tries (${gaps.join(', ')} ms)`);
});

t.test('an accepted exit is proposed once', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const { proposer, sent } = scriptedProposer(() => ({ ok: true }));
  let assigned = [assignment('j2', 3)];
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => assigned,
    leaseValid: () => true,
    publishResult: async () => ({ blob: 'blob-2', failure: null }),
  });
  worker.poke();
  await advanceUntil(clock, 'the exit', () => (sent.some((c) => c.type === 'jobExited') ? true : undefined));
  worker.poke();
  await advance(clock, 100);
  assigned = [];
  worker.poke();
  await advance(clock, 300);
  t.equal(sent.filter((c) => c.type === 'jobExited').length, 1);
  t.equal(sent.filter((c) => c.type === 'jobStarted').length, 1);
  t.same(await runtime.running(), [], 'the exited container is removed once the exit is decided');
});

t.test('a failed restore starts the attempt from scratch and says why in jobStarted', async (t) => {
  const clock = new ManualClock();
  const events: FakeRunEvent[] = [];
  const runtime = new FakeRuntime({ clock, onEvent: (e) => events.push(e) });
  const { proposer, sent } = scriptedProposer(() => ({ ok: true }));
  const resumed: Assignment = { ...assignment('j3', 2), fromCheckpoint: { seq: 4, epoch: 1, blob: 'cp-blob', bytes: 10, logOffset: 0, holders: ['n2'] } };
  let prepared = 0;
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => [resumed],
    leaseValid: () => true,
    prepareCheckpoint: async () => {
      prepared++;
      return '/nonexistent-bundle-dir-for-the-test';
    },
    restore: async () => ({ restored: false, reason: 'criu: (00.01) Error: incompatible kernel' }),
  });
  worker.poke();
  const started = await advanceUntil(clock, 'jobStarted', () => sent.find((c): c is Extract<Command, { type: 'jobStarted' }> => c.type === 'jobStarted'), 60_000, 1);
  t.equal(prepared, 1);
  t.equal(started.restoreError, 'criu: (00.01) Error: incompatible kernel');
  t.same(events.map((e) => [e.type, e.progressMs]), [['start', 0]], 'it runs from scratch instead');
});

t.test('a restored attempt is reported started as soon as it runs, before the housekeeping after the start', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const { proposer, sent } = scriptedProposer(() => ({ ok: true }));
  const resumed: Assignment = { ...assignment('j4', 2), fromCheckpoint: { seq: 1, epoch: 1, blob: 'cp-blob', bytes: 10, logOffset: 0, holders: ['n1'] } };
  let released = false;
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => [resumed],
    leaseValid: () => true,
    prepareCheckpoint: async () => '/nonexistent-bundle-dir-for-the-test',
    restore: async () => ({ restored: true }),
    // Housekeeping that does not end (a slow disk): the report must not wait for it.
    releaseInputs: () => new Promise<void>(() => void (released = true)),
  });
  worker.poke();
  const started = await advanceUntil(clock, 'jobStarted', () => sent.find((c): c is Extract<Command, { type: 'jobStarted' }> => c.type === 'jobStarted'), 5_000, 1);
  t.same([started.jobId, started.epoch, started.restoreError], ['j4', 2, undefined], 'the resumed attempt is reported, restored');
  t.ok(released, 'the inputs were being released meanwhile');
});

t.test('timeoutSeconds kills the attempt, counted from the job\'s first start, and reports exit 124', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const { proposer, sent } = scriptedProposer(() => ({ ok: true }));
  const parsed = validateJobSpec({ command: ['sleep', '100'], env: { FAKE_SECONDS: '100' }, timeoutSeconds: 2 });
  if (!parsed.ok) throw new Error('bad spec');
  // A resumed attempt: the job first started 1.5 s ago, so 0.5 s are left.
  const a: Assignment = { ...assignment('j4', 2), spec: parsed.spec, jobStartedAt: clock.now() - 1500 };
  const worker = makeWorker(clock, { runtime, proposer, assignments: () => [a], leaseValid: () => true });
  worker.poke();
  await worker.settled();
  await advance(clock, 490);
  t.notOk(sent.some((c) => c.type === 'jobExited'), 'still running just before the deadline');
  const exit = await advanceUntil(clock, 'the exit', () => sent.find((c): c is Extract<Command, { type: 'jobExited' }> => c.type === 'jobExited'), 100, 1);
  t.equal(exit.exitCode, 124);
  t.equal(clock.monotonic(), 500, 'killed at the deadline from the first start, not after a fresh 2 s or the 100 s run');
});

t.test('a lost lease freezes the attempts; back in time they run on (not restarted); lost for longer they stop', async (t) => {
  const clock = new ManualClock();
  const { runtime, starts } = countingRuntime(clock);
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let leaseValid = true;
  let assigned = [longAssignment('j1')];
  const fences: string[] = [];
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => assigned,
    leaseValid: () => leaseValid,
    fenceStopAfterMs: 400,
    onFence: (what) => fences.push(what),
  });
  const key = { jobId: 'j1', epoch: 1 };
  const settle = async (): Promise<void> => {
    worker.poke();
    await worker.settled();
  };
  await settle();
  t.same(await runtime.running(), [key], 'running');
  await advance(clock, 1000);

  // An election: no leader to renew with for a moment.
  leaseValid = false;
  await settle();
  t.ok(runtime.isFrozen(key), 'frozen at once');
  t.same(await runtime.running(), [key], 'not stopped');
  await advance(clock, 300);
  t.equal(runtime.progressMs(key), 1000, 'no progress while frozen');
  leaseValid = true;
  await settle();
  t.notOk(runtime.isFrozen(key), 'thawed when the lease is back');
  t.equal(starts(), 1, 'the same run goes on: not started again');
  t.same(fences, ['frozen', 'thawed']);
  await advance(clock, 200);
  t.equal(runtime.progressMs(key), 1200, 'it runs on from where it was');

  // Lost for longer than fenceStopAfterMs: stopped for good.
  leaseValid = false;
  await settle();
  t.ok(runtime.isFrozen(key));
  await advance(clock, 390);
  await settle();
  t.same(await runtime.running(), [key], 'still frozen, not stopped, within fenceStopAfterMs');
  await advance(clock, 10);
  await settle();
  t.same(await runtime.running(), [], 'stopped once the lease stayed lost for fenceStopAfterMs');
  // The lease comes back, and the job was moved away meanwhile: nothing runs here.
  assigned = [];
  leaseValid = true;
  await settle();
  t.same(await runtime.running(), []);
  t.equal(starts(), 1);

  // Frozen, then the lease comes back with the job assigned elsewhere: stopped, not thawed.
  assigned = [longAssignment('j2')];
  await settle();
  leaseValid = false;
  await settle();
  t.ok(runtime.isFrozen({ jobId: 'j2', epoch: 1 }));
  assigned = [];
  leaseValid = true;
  await settle();
  t.same(await runtime.running(), [], 'a frozen run no longer assigned here is stopped, never thawed');
});

t.test('without fenceStopAfterMs a lost lease stops the attempts at once', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let leaseValid = true;
  const worker = makeWorker(clock, { runtime, proposer, assignments: () => [longAssignment('j1')], leaseValid: () => leaseValid });
  worker.poke();
  await worker.settled();
  t.equal((await runtime.running()).length, 1, 'started');
  leaseValid = false;
  worker.poke();
  await worker.settled();
  t.same(await runtime.running(), [], 'stopped');
});

t.test('ignoreLostLease (the unsafe mutant): a lost lease neither freezes nor stops what runs; nothing new starts', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let leaseValid = true;
  let assigned = [longAssignment('j1')];
  const worker = makeWorker(clock, { runtime, proposer, assignments: () => assigned, leaseValid: () => leaseValid, fenceStopAfterMs: 400, ignoreLostLease: true });
  const settle = async (): Promise<void> => {
    worker.poke();
    await worker.settled();
  };
  await settle();
  leaseValid = false;
  await settle();
  await advance(clock, 1000);
  await settle();
  t.same(runtime.executing(), [{ jobId: 'j1', epoch: 1 }], 'still executing a second after the lease was lost');
  t.equal(runtime.progressMs({ jobId: 'j1', epoch: 1 }), 1000);
  assigned = [longAssignment('j1'), longAssignment('j2')];
  await settle();
  t.same(await runtime.running(), [{ jobId: 'j1', epoch: 1 }], 'a new assignment does not start without a lease');
});

t.test('halt waits for the reconcile under way; nothing starts after it', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let releaseInputs: () => void = () => {};
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => [longAssignment('j1')],
    leaseValid: () => true,
    prepareInputs: () => new Promise((resolve) => (releaseInputs = () => resolve(new Map()))),
  });
  worker.poke();
  let halted = false;
  const halting = worker.halt().then(() => (halted = true));
  await advance(clock, 100);
  t.notOk(halted, 'halt waits while a reconcile is preparing inputs');
  releaseInputs();
  await halting;
  t.equal((await runtime.running()).length, 1, 'the reconcile under way finished its start');
  await runtime.stop({ jobId: 'j1', epoch: 1 });
  worker.poke();
  await worker.settled();
  t.same(await runtime.running(), [], 'a halted worker starts nothing');
});

t.test('a lost lease freezes and stops what runs even while a reconcile is stuck starting another attempt', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let leaseValid = true;
  let assigned = [longAssignment('j1')];
  let inputsAsked = 0;
  let releaseInputs: () => void = () => {};
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => assigned,
    leaseValid: () => leaseValid,
    fenceStopAfterMs: 400,
    // j2's input comes from a holder that does not answer (for its connect timeout, per holder).
    prepareInputs: (a) => {
      if (a.jobId !== 'j2') return Promise.resolve(new Map());
      inputsAsked++;
      return new Promise((resolve) => (releaseInputs = () => resolve(new Map())));
    },
  });
  const j1 = { jobId: 'j1', epoch: 1 };
  worker.poke();
  await worker.settled();
  assigned = [longAssignment('j1'), longAssignment('j2')];
  worker.poke();
  await advance(clock, 100);
  t.equal(inputsAsked, 1, 'the reconcile waits for j2\'s inputs');
  leaseValid = false;
  worker.poke();
  await advance(clock, 50);
  t.ok(runtime.isFrozen(j1), 'j1 frozen at the next poke, not after the start of j2');
  await advance(clock, 400);
  worker.poke();
  await advance(clock, 50);
  t.same(await runtime.running(), [], 'stopped once the lease stayed lost for fenceStopAfterMs');
  releaseInputs();
  await advance(clock, 100);
  await worker.settled();
  t.same(await runtime.running(), [], 'j2 does not start without a lease');
});

t.test('an attempt stopped while its checkpoint is in flight starts again only once that is decided, from it', async (t) => {
  const clock = new ManualClock();
  const { runtime, starts } = countingRuntime(clock);
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let leaseValid = true;
  const a = longAssignment('j1');
  let assigned: Assignment = a;
  let inFlight: Promise<void> | null = null;
  const checkpointer = { inFlight: () => inFlight, track: () => {}, untrack: () => {}, addFrozen: () => {} } as unknown as Checkpointer;
  const restoredFrom: number[] = [];
  const worker = makeWorker(clock, {
    runtime,
    proposer,
    assignments: () => [assigned],
    leaseValid: () => leaseValid,
    checkpointer,
    prepareCheckpoint: async () => '/nonexistent-bundle-dir-for-the-test',
    restore: async (x, _dir, onExit) => {
      restoredFrom.push(x.fromCheckpoint?.seq ?? 0);
      await runtime.start(x, onExit);
      return { restored: true };
    },
  });
  const settle = async (): Promise<void> => {
    worker.poke();
    await worker.settled();
  };
  await settle();
  t.equal(starts(), 1);
  // Checkpoint 1 is captured and proposed; the lease is lost (stopped at once), then back.
  let decide: () => void = () => {};
  inFlight = new Promise<void>((resolve) => (decide = resolve));
  leaseValid = false;
  await settle();
  t.same(await runtime.running(), [], 'stopped by self-fencing');
  leaseValid = true;
  await settle();
  await advance(clock, 500);
  await settle();
  t.equal(starts(), 1, 'not started again while its checkpoint is in flight');
  // The commit lands: the attempt's resume point is now that checkpoint.
  assigned = { ...a, fromCheckpoint: { seq: 1, epoch: 1, blob: 'cp-1', bytes: 10, logOffset: 0, holders: ['n1', 'n2'] } };
  inFlight = null;
  decide();
  await advance(clock, 50);
  await worker.settled();
  t.same(restoredFrom, [1], 'resumed from the checkpoint that was in flight, without another poke');
  t.same(await runtime.running(), [{ jobId: 'j1', epoch: 1 }]);
});

function longAssignment(jobId: string): Assignment {
  const a = assignment(jobId, 1);
  return { ...a, spec: { ...a.spec, env: { FAKE_SECONDS: '3600' } } };
}
