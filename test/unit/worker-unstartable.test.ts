// A start that can never succeed (src/worker/unstartable.ts, e.g. an image no engine
// has and no import provides) ends the attempt with its exit code instead of being
// retried for ever; any other start failure is retried, and does not keep the other
// assignments from starting.
import { Readable } from 'node:stream';
import t from 'tap';
import pino from 'pino';
import { Proposer } from '../../src/node/proposer.js';
import { decodeEnvelopeBytes, type Command } from '../../src/state/commands.js';
import type { Assignment } from '../../src/state/views.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import type { ContainerRuntime, RunKey } from '../../src/worker/runtime.js';
import { EXIT_CANNOT_START, UnstartableError } from '../../src/worker/unstartable.js';
import { Worker } from '../../src/worker/worker.js';
import { flush } from './manual-time.js';
import { spec } from './state-fixtures.js';

function assignment(jobId: string, image: string): Assignment {
  return { jobId, epoch: 1, spec: spec({ image }), inputs: {}, policy: { mode: 'off', intervalSeconds: null, reason: 'test' }, fromCheckpoint: null };
}

/** Starts what it is given, except images named missing/* (never) and flaky/* (not the first time). */
class ScriptedRuntime implements ContainerRuntime {
  readonly kind = 'fake' as const;
  readonly runs = new Map<string, RunKey>();
  private readonly tried = new Set<string>();
  async start(a: Assignment): Promise<void> {
    if (a.spec.image.startsWith('missing/')) throw new UnstartableError(`image ${a.spec.image} is nowhere`);
    if (a.spec.image.startsWith('flaky/') && !this.tried.has(a.jobId)) {
      this.tried.add(a.jobId);
      throw new Error('the engine did not answer');
    }
    this.runs.set(a.jobId, { jobId: a.jobId, epoch: a.epoch });
  }
  async stop(key: RunKey): Promise<void> {
    this.runs.delete(key.jobId);
  }
  async running(): Promise<RunKey[]> {
    return [...this.runs.values()];
  }
  async kill(key: RunKey): Promise<void> {
    this.runs.delete(key.jobId);
  }
  async freeze(): Promise<void> {}
  async thaw(): Promise<void> {}
  async logs(): Promise<Readable> {
    return Readable.from([]);
  }
  async exportResult(_key: RunKey, _exitCode: number, outputs: readonly string[]): Promise<{ missing: string[]; failure: string | null }> {
    return { missing: [...outputs], failure: null };
  }
}

t.test('an unstartable attempt is reported as exited with its code; others start; a transient failure is retried', async (t) => {
  const proposed: Command[] = [];
  const proposer = new Proposer({ propose: async (data) => (proposed.push(decodeEnvelopeBytes(data).cmd), { ok: true, value: {} }) }, 'wk', 'n1');
  const runtime = new ScriptedRuntime();
  const assignments = [assignment('j-missing', 'missing/img:1'), assignment('j-flaky', 'flaky/img:1'), assignment('j-ok', 'workrs/busybox:1')];
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => assignments,
    leaseValid: () => true,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    logger: pino({ level: 'silent' }),
    clock: new ManualClock(),
  });
  // The node's Proposer is the worker's ReportSink (src/worker/report-sink.ts) as it is.
  worker.poke();
  await worker.settled();
  await flush();
  const exited = proposed.find((c) => c.type === 'jobExited');
  t.same(exited, { type: 'jobExited', jobId: 'j-missing', epoch: 1, node: 'n1', exitCode: EXIT_CANNOT_START, failure: 'image missing/img:1 is nowhere' }, 'with the reason, for the record');
  t.ok(runtime.runs.has('j-ok'), 'the healthy job started');
  t.notOk(runtime.runs.has('j-flaky'), 'the flaky job did not start the first time');
  worker.poke();
  await worker.settled();
  t.ok(runtime.runs.has('j-flaky'), 'the flaky job started on a later reconcile');
  worker.poke();
  await worker.settled();
  await flush();
  t.equal(proposed.filter((c) => c.type === 'jobExited').length, 1, 'the failed attempt is not tried again');
  t.same(proposed.filter((c) => c.type === 'jobStarted').map((c) => (c as { jobId: string }).jobId).sort(), ['j-flaky', 'j-ok']);
});
