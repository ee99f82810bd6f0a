// The worker's exit reporting: the result is published first, the exit is proposed
// until the state machine decides (also across a lost lease), a fenced report is
// counted, and an attempt whose exit is pending never runs a second time.
import t from 'tap';
import pino from 'pino';
import type { Proposer } from '../../src/node/proposer.js';
import type { Command } from '../../src/state/commands.js';
import { validateJobSpec } from '../../src/state/spec.js';
import type { Assignment } from '../../src/state/views.js';
import { FakeRuntime } from '../../src/worker/fake-runtime.js';
import type { RunKey } from '../../src/worker/runtime.js';
import { Worker } from '../../src/worker/worker.js';
import { waitFor } from '../helpers/wait.js';

function assignment(jobId: string, epoch: number): Assignment {
  const parsed = validateJobSpec({ command: ['true'], env: { FAKE_SECONDS: '0.05' } });
  if (!parsed.ok) throw new Error('bad spec');
  return { jobId, epoch, spec: parsed.spec, inputs: {}, policy: { mode: 'off', intervalSeconds: null, reason: 'test' }, fromCheckpoint: null };
}

type Answer = { ok: true } | { ok: false; code: string; message: string } | 'unreachable';

/** A proposer whose answers the test scripts; records what was proposed. */
function scriptedProposer(answer: (cmd: Command) => Answer): { proposer: Proposer; sent: Command[] } {
  const sent: Command[] = [];
  const proposer = {
    send: async (cmd: Command) => {
      sent.push(cmd);
      const a = answer(cmd);
      if (a === 'unreachable') throw new Error('no leader');
      return a.ok ? { ok: true, value: null } : a;
    },
  } as unknown as Proposer;
  return { proposer, sent };
}

/** A fake runtime that counts its starts. */
function countingRuntime(): { runtime: FakeRuntime; starts: () => number } {
  const runtime = new FakeRuntime();
  let starts = 0;
  const start = runtime.start.bind(runtime);
  runtime.start = async (...args) => {
    starts++;
    return start(...args);
  };
  return { runtime, starts: () => starts };
}

t.test('an exit is reported with its result, across a lost lease, until fenced; never run twice', async (t) => {
  const { runtime, starts } = countingRuntime();
  let partitioned = false;
  const { proposer, sent } = scriptedProposer((cmd) => {
    if (cmd.type !== 'jobExited') return { ok: true };
    return partitioned ? 'unreachable' : { ok: false, code: 'STALE_EPOCH', message: 'job j1 is at epoch 2' };
  });
  let leaseValid = true;
  const published: RunKey[] = [];
  const rejected: string[] = [];
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => [assignment('j1', 1)],
    leaseValid: () => leaseValid,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    publishResult: async (key) => {
      published.push(key);
      return { blob: 'result-blob-1', failure: null };
    },
    onReportRejected: (what, code) => rejected.push(`${what}:${code}`),
    logger: pino({ level: 'silent' }),
  });
  partitioned = true;
  worker.poke();
  await waitFor('the exit to be proposed', () => (sent.some((c) => c.type === 'jobExited') ? true : undefined), 10_000, 20);
  // The lease lapses (a partition), then comes back while the report is still pending.
  leaseValid = false;
  worker.poke();
  await new Promise((r) => setTimeout(r, 200));
  leaseValid = true;
  for (let i = 0; i < 5; i++) {
    worker.poke();
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(starts(), 1, 'the attempt whose exit is pending was not started again');
  partitioned = false; // healed: the fence answers
  await waitFor('the rejection', () => (rejected.length > 0 ? true : undefined), 20_000, 50);
  t.same(rejected, ['jobExited:STALE_EPOCH'], 'the fenced report is counted');
  const exits = sent.filter((c): c is Extract<Command, { type: 'jobExited' }> => c.type === 'jobExited');
  t.ok(exits.length >= 2, `proposed again after failures (${exits.length} times)`);
  t.ok(exits.every((c) => c.resultBlob === 'result-blob-1' && c.epoch === 1 && c.exitCode === 0), 'every proposal carries the result blob');
  t.equal(published.length, 1, 'the result was published once');
  t.same(await runtime.running(), [], 'the attempt is gone from the runtime');
});

t.test('an accepted exit is proposed once', async (t) => {
  const runtime = new FakeRuntime();
  const { proposer, sent } = scriptedProposer(() => ({ ok: true }));
  let assigned = [assignment('j2', 3)];
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => assigned,
    leaseValid: () => true,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    publishResult: async () => ({ blob: 'blob-2', failure: null }),
    logger: pino({ level: 'silent' }),
  });
  worker.poke();
  await waitFor('the exit', () => (sent.some((c) => c.type === 'jobExited') ? true : undefined), 10_000, 20);
  assigned = [];
  await new Promise((r) => setTimeout(r, 300));
  t.equal(sent.filter((c) => c.type === 'jobExited').length, 1);
  t.equal(sent.filter((c) => c.type === 'jobStarted').length, 1);
});

t.test('a failed restore starts the attempt from scratch and says why in jobStarted', async (t) => {
  const runtime = new FakeRuntime();
  const { proposer, sent } = scriptedProposer(() => ({ ok: true }));
  const resumed: Assignment = { ...assignment('j3', 2), fromCheckpoint: { seq: 4, epoch: 1, blob: 'cp-blob', bytes: 10, logOffset: 0, holders: ['n2'] } };
  let prepared = 0;
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => [resumed],
    leaseValid: () => true,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    prepareCheckpoint: async () => {
      prepared++;
      return '/nonexistent-bundle-dir-for-the-test';
    },
    restore: async () => ({ restored: false, reason: 'criu: (00.01) Error: incompatible kernel' }),
    logger: pino({ level: 'silent' }),
  });
  worker.poke();
  const started = await waitFor('jobStarted', () => sent.find((c): c is Extract<Command, { type: 'jobStarted' }> => c.type === 'jobStarted'), 10_000, 20);
  t.equal(prepared, 1);
  t.equal(started.restoreError, 'criu: (00.01) Error: incompatible kernel');
  t.equal((await runtime.running()).length + sent.filter((c) => c.type === 'jobExited').length, 1, 'it ran from scratch instead');
});

t.test('timeoutSeconds kills the attempt, counted from the job\'s first start, and reports exit 124', async (t) => {
  const runtime = new FakeRuntime();
  const { proposer, sent } = scriptedProposer(() => ({ ok: true }));
  const parsed = validateJobSpec({ command: ['sleep', '100'], env: { FAKE_SECONDS: '100' }, timeoutSeconds: 2 });
  if (!parsed.ok) throw new Error('bad spec');
  // A resumed attempt: the job first started 1.5 s ago, so 0.5 s are left.
  const a: Assignment = { ...assignment('j4', 2), spec: parsed.spec, jobStartedAt: Date.now() - 1500 };
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => [a],
    leaseValid: () => true,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    logger: pino({ level: 'silent' }),
  });
  const t0 = Date.now();
  worker.poke();
  const exit = await waitFor('the exit', () => sent.find((c): c is Extract<Command, { type: 'jobExited' }> => c.type === 'jobExited'), 10_000, 20);
  t.equal(exit.exitCode, 124);
  t.ok(Date.now() - t0 < 9000, 'killed at the deadline from the first start, not after a fresh 2 s plus the 100 s run');
});

t.test('a lost lease freezes the attempts; back in time they run on (not restarted); lost for longer they stop', async (t) => {
  const { runtime, starts } = countingRuntime();
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let leaseValid = true;
  let assigned = [{ ...assignment('j1', 1), spec: { ...assignment('j1', 1).spec, env: { FAKE_SECONDS: '3600' } } }];
  const fences: string[] = [];
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => assigned,
    leaseValid: () => leaseValid,
    fenceStopAfterMs: 400,
    onFence: (what) => fences.push(what),
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    logger: pino({ level: 'silent' }),
  });
  const key = { jobId: 'j1', epoch: 1 };
  const settle = async (): Promise<void> => {
    worker.poke();
    await waitFor('a reconcile', async () => ((worker as unknown as { reconciling: boolean }).reconciling ? undefined : true), 5000, 5);
  };
  await settle();
  t.same(await runtime.running(), [key], 'running');

  // An election: no leader to renew with for a moment.
  leaseValid = false;
  await settle();
  t.ok(runtime.isFrozen(key), 'frozen at once');
  t.same(await runtime.running(), [key], 'not stopped');
  leaseValid = true;
  await settle();
  t.notOk(runtime.isFrozen(key), 'thawed when the lease is back');
  t.equal(starts(), 1, 'the same run goes on: not started again');
  t.same(fences, ['frozen', 'thawed']);

  // Lost for longer than fenceStopAfterMs: stopped for good.
  leaseValid = false;
  await settle();
  t.ok(runtime.isFrozen(key));
  await new Promise((r) => setTimeout(r, 450));
  await settle();
  t.same(await runtime.running(), [], 'stopped once the lease stayed lost');
  // The lease comes back, and the job was moved away meanwhile: nothing runs here.
  assigned = [];
  leaseValid = true;
  await settle();
  t.same(await runtime.running(), []);
  t.equal(starts(), 1);

  // Frozen, then the lease comes back with the job assigned elsewhere: stopped, not thawed.
  assigned = [{ ...assignment('j2', 1), spec: { ...assignment('j2', 1).spec, env: { FAKE_SECONDS: '3600' } } }];
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
  const runtime = new FakeRuntime();
  const { proposer } = scriptedProposer(() => ({ ok: true }));
  let leaseValid = true;
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => [{ ...assignment('j1', 1), spec: { ...assignment('j1', 1).spec, env: { FAKE_SECONDS: '3600' } } }],
    leaseValid: () => leaseValid,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    logger: pino({ level: 'silent' }),
  });
  worker.poke();
  await waitFor('the start', async () => ((await runtime.running()).length === 1 ? true : undefined), 5000, 10);
  leaseValid = false;
  worker.poke();
  await waitFor('the stop', async () => ((await runtime.running()).length === 0 ? true : undefined), 5000, 10);
  t.pass('stopped');
});
