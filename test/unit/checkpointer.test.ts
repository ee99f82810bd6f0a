// The checkpoint loop's bookkeeping (src/worker/checkpointer.ts) with a scripted
// runtime, on simulated time: each checkpoint reports how long its attempt ran (ranMs,
// freezes excluded) and the count goes on when the policy turns checkpoints off and on
// again; a graceful stop takes one last checkpoint; a checkpoint under way stays
// visible (inFlight) after its attempt is untracked, until it is decided.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import type { PlacedBlob } from '../../src/blobs/replicated.js';
import type { Command } from '../../src/state/commands.js';
import type { Assignment } from '../../src/state/views.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { Checkpointer } from '../../src/worker/checkpointer.js';
import { FakeRuntime } from '../../src/worker/fake-runtime.js';
import type { ReportSink } from '../../src/worker/report-sink.js';
import type { CheckpointResult, RunKey } from '../../src/worker/runtime.js';
import { advance } from './manual-time.js';
import { spec } from './state-fixtures.js';

/** How long each scripted capture freezes the job, in simulated ms. */
const FREEZE_MS = 150;
const KEY = { jobId: 'j1', epoch: 1 };

function assignment(policy: Assignment['policy']): Assignment {
  return { jobId: 'j1', epoch: 1, spec: spec({ estimateSeconds: 100 }), inputs: {}, policy, fromCheckpoint: null };
}

const every = (seconds: number): Assignment['policy'] => ({ mode: 'auto', intervalSeconds: seconds, reason: 'test' });
const OFF: Assignment['policy'] = { mode: 'off', intervalSeconds: null, reason: 'test' };

type Committed = Extract<Command, { type: 'checkpointCommitted' }>;

/** A checkpointer over a scripted runtime call; what it proposes lands in `sent`. */
function makeCheckpointer(clock: ManualClock, checkpoint: (key: RunKey, name: string) => Promise<CheckpointResult>, sent: Committed[]): Checkpointer {
  return new Checkpointer({
    nodeId: 'n1',
    runtime: { checkpoint },
    blobs: {
      putFolder: async <T>(_dir: string, _kind: 'checkpoint', register: (blob: PlacedBlob) => Promise<T>): Promise<{ blob: PlacedBlob; registered: T }> => {
        const blob: PlacedBlob = {
          id: `b${sent.length}`,
          kind: 'checkpoint',
          bytes: 10,
          chunks: 1,
          newChunks: 1,
          newBytes: 10,
          reusedBytes: 0,
          dedupeRatio: 0,
          manifestBytes: 100,
          holders: ['n1', 'n2'],
        };
        return { blob, registered: await register(blob) };
      },
    },
    proposer: { send: async (cmd: Command) => (sent.push(cmd as Committed), { ok: true, value: {} }) } as unknown as ReportSink,
    logger: pino({ level: 'silent' }),
    clock,
  });
}

/** A capture that freezes the job FREEZE_MS of simulated time; records when each began. */
function freezingCapture(clock: ManualClock, startedAt: number[]): (key: RunKey, name: string) => Promise<CheckpointResult> {
  return async (_key, name) => {
    startedAt.push(clock.monotonic());
    await clock.sleep(FREEZE_MS);
    // No folder to remove: the scripted blob store keeps nothing.
    return { bundleDir: '', name, durationMs: FREEZE_MS + 5, frozenMs: FREEZE_MS, bytes: 10, criuBytes: 5, imageBytes: 5, logOffset: 0 };
  };
}

t.test('ranMs: run time up to each capture, earlier freezes excluded; seq survives a pause of the policy', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const startedAt: number[] = [];
  const checkpointer = makeCheckpointer(clock, freezingCapture(clock, startedAt), sent);
  t.teardown(() => checkpointer.untrackAll());
  checkpointer.track(assignment(every(0.5)));
  await advance(clock, 1200);
  t.same(startedAt, [500, 1000], 'a capture every 500 ms from track()');
  t.equal(sent.length, 2);
  checkpointer.track(assignment(OFF));
  await advance(clock, 600);
  t.equal(sent.length, 2, 'no checkpoint while the policy is off');
  checkpointer.track(assignment(every(0.5)));
  await advance(clock, 650);
  t.same(startedAt, [500, 1000, 2300], 'back on: the next one interval after the policy came back (at 1800 ms)');
  t.same(sent.map((c) => c.seq), [1, 2, 3], 'the count goes on after checkpoints were off');
  // From track() (at 0) to each capture, less the earlier captures' freezes.
  t.same(sent.map((c) => c.ranMs), [500, 1000 - FREEZE_MS, 2300 - 2 * FREEZE_MS], 'ranMs of each');
  t.same(sent.map((c) => c.frozenMs), [FREEZE_MS, FREEZE_MS, FREEZE_MS]);

  checkpointer.untrack(KEY);
  await advance(clock, 1000);
  t.equal(sent.length, 3, 'nothing once untracked');
  checkpointer.track(assignment(every(0.5)));
  await advance(clock, 700);
  t.equal(sent[3]?.seq, 1, 'an attempt that ended here and is tracked again starts over (a new run)');
  t.equal(sent[3]?.ranMs, 500, 'with a new clock');
});

t.test('a capture that takes longer than the interval: the next one is skipped, not queued', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const startedAt: number[] = [];
  const checkpointer = makeCheckpointer(
    clock,
    async (_key, name) => {
      startedAt.push(clock.monotonic());
      await clock.sleep(700);
      return { bundleDir: '', name, durationMs: 700, frozenMs: 0, bytes: 10, criuBytes: 5, imageBytes: 5, logOffset: 0 };
    },
    sent,
  );
  t.teardown(() => checkpointer.untrackAll());
  checkpointer.track(assignment(every(0.5)));
  await advance(clock, 2600);
  t.same(startedAt, [500, 1500, 2500], 'the tick at 1000 ms found one under way');
  t.same(sent.map((c) => c.seq), [1, 2]);
});

t.test('a new interval re-arms the timer from now', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const startedAt: number[] = [];
  const checkpointer = makeCheckpointer(clock, freezingCapture(clock, startedAt), sent);
  t.teardown(() => checkpointer.untrackAll());
  checkpointer.track(assignment(every(1)));
  await advance(clock, 700);
  checkpointer.track(assignment(every(2)));
  checkpointer.track(assignment(every(2)));
  await advance(clock, 4800);
  t.same(startedAt, [2700, 4700], 'every 2 s from the change, not 1 s from the start');
});

t.test('ranMs leaves out the time the attempt was frozen by self-fencing', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const checkpointer = makeCheckpointer(clock, async (_key, name) => ({ bundleDir: '', name, durationMs: 1, frozenMs: 0, bytes: 10, criuBytes: 5, imageBytes: 5, logOffset: 0 }), sent);
  t.teardown(() => checkpointer.untrackAll());
  checkpointer.track(assignment(every(0.6)));
  checkpointer.addFrozen(KEY, 400);
  await advance(clock, 650);
  t.equal(sent.length, 1);
  t.equal(sent[0]?.ranMs, 200, 'the 600 ms to the capture less the 400 ms frozen');
});

t.test('inFlight(): a checkpoint under way stays visible after its attempt is untracked, until it is decided', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const checkpointer = makeCheckpointer(
    clock,
    async (_key, name) => {
      await clock.sleep(300);
      return { bundleDir: '', name, durationMs: 300, frozenMs: 0, bytes: 10, criuBytes: 5, imageBytes: 5, logOffset: 0 };
    },
    sent,
  );
  t.teardown(() => checkpointer.untrackAll());
  checkpointer.track(assignment(every(1)));
  t.equal(checkpointer.inFlight(KEY), null, 'nothing under way before the first capture');
  await advance(clock, 1100);
  const pending = checkpointer.inFlight(KEY);
  t.ok(pending, 'the capture at 1000 ms is under way');
  checkpointer.untrack(KEY); // the worker stopped the attempt (self-fencing)
  t.equal(checkpointer.inFlight(KEY), pending, 'still in flight once untracked: its commit may still land');
  await advance(clock, 250);
  t.equal(checkpointer.inFlight(KEY), null, 'decided');
  t.same(sent.map((c) => c.seq), [1], 'and it was proposed');
});

t.test('final(): waits for the capture under way, then takes one last checkpoint of each attempt', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const startedAt: number[] = [];
  const checkpointer = makeCheckpointer(clock, freezingCapture(clock, startedAt), sent);
  checkpointer.track(assignment(every(1)));
  await advance(clock, 1050); // the first capture is under way
  let finished: RunKey[] | null = null;
  void checkpointer.final(10_000).then((done) => (finished = done));
  await advance(clock, 100);
  t.equal(finished, null, 'not done while the capture under way is still frozen');
  await advance(clock, 300);
  t.same(finished, [KEY], 'the last checkpoint is committed');
  t.same(startedAt, [1000, 1150], 'the last capture began once the one under way was decided');
  t.same(sent.map((c) => c.seq), [1, 2]);
  await advance(clock, 5000);
  t.equal(sent.length, 2, 'no more checkpoints after final()');
});

t.test('final(): gives up on what is not done within its timeout', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const checkpointer = makeCheckpointer(clock, () => new Promise<CheckpointResult>(() => {}), sent);
  checkpointer.track(assignment(every(1)));
  let finished: RunKey[] | null = null;
  void checkpointer.final(2000).then((done) => (finished = done));
  await advance(clock, 1990);
  t.equal(finished, null);
  await advance(clock, 20);
  t.same(finished, [], 'nothing checkpointed, and the stop goes on');
});

t.test('with the fake runtime: each checkpoint captures the progress, a restore resumes from it', async (t) => {
  const clock = new ManualClock();
  const sent: Committed[] = [];
  const checkpointDir = await mkdtemp(join(tmpdir(), 'workrs-fake-cp-'));
  t.teardown(() => rm(checkpointDir, { recursive: true, force: true }));
  const runtime = new FakeRuntime({ clock, checkpointDir });
  const exits: number[] = [];
  const a = assignment(every(1));
  await runtime.start({ ...a, spec: { ...a.spec, env: { FAKE_SECONDS: '10' } } }, (code) => exits.push(code));
  const bundles: string[] = [];
  const checkpointer = makeCheckpointer(
    clock,
    async (key, name) => {
      const cp = await runtime.checkpoint(key, name);
      bundles.push(cp.bundleDir);
      return { ...cp, bundleDir: '' }; // kept for the restore below
    },
    sent,
  );
  t.teardown(() => checkpointer.untrackAll());
  checkpointer.track(a);
  await advance(clock, 3500);
  checkpointer.untrack(KEY);
  await runtime.stop(KEY);
  t.same(sent.map((c) => c.seq), [1, 2, 3]);
  // The node is lost; the next attempt resumes from the third checkpoint, at 3 s of 10.
  const next = { ...a, epoch: 2, spec: { ...a.spec, env: { FAKE_SECONDS: '10' } } };
  t.same(await runtime.restore(next, bundles[2]!, (code) => exits.push(code)), { restored: true });
  t.equal(runtime.progressMs({ jobId: 'j1', epoch: 2 }), 3000, 'resumed where the checkpoint was taken');
  await advance(clock, 6990);
  t.same(exits, [], 'not done before the 7 s it still had to run');
  await advance(clock, 10);
  t.same(exits, [0], 'done after 3 + 7 s of work');
});
