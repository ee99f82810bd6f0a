// The fake runtime on simulated time (src/worker/fake-runtime.ts): an attempt's
// progress is the time it executed, frozen time excluded; it exits once its work is
// done; a checkpoint captures the progress and a restore goes on from it; every change
// is reported as an event, which the whole-node simulator checks its invariants on.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { validateJobSpec } from '../../src/state/spec.js';
import type { Assignment } from '../../src/state/views.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { FakeRuntime, type FakeRunEvent } from '../../src/worker/fake-runtime.js';

function assignment(jobId: string, epoch: number, env: Record<string, string>): Assignment {
  const parsed = validateJobSpec({ command: ['true'], env });
  if (!parsed.ok) throw new Error('bad spec');
  return { jobId, epoch, spec: parsed.spec, inputs: {}, policy: { mode: 'off', intervalSeconds: null, reason: 'test' }, fromCheckpoint: null };
}

async function setup(t: Test): Promise<{ clock: ManualClock; runtime: FakeRuntime; events: FakeRunEvent[] }> {
  const clock = new ManualClock();
  const events: FakeRunEvent[] = [];
  const checkpointDir = await mkdtemp(join(tmpdir(), 'workrs-fake-rt-'));
  t.teardown(() => rm(checkpointDir, { recursive: true, force: true }));
  return { clock, runtime: new FakeRuntime({ clock, checkpointDir, onEvent: (e) => events.push(e) }), events };
}

const brief = (events: FakeRunEvent[]): string[] => events.map((e) => `${e.type} ${e.jobId}@${e.epoch} t=${e.at} p=${e.progressMs}${e.checkpoint ? ` ${e.checkpoint}` : ''}${e.exitCode === undefined ? '' : ` code=${e.exitCode}`}`);

t.test('progress follows simulated time, stands still while frozen; the exit comes when the work is done', async (t) => {
  const { clock, runtime, events } = await setup(t);
  const key = { jobId: 'j1', epoch: 1 };
  const exits: number[] = [];
  await runtime.start(assignment('j1', 1, { FAKE_SECONDS: '2', FAKE_EXIT_CODE: '3' }), (code) => exits.push(code));
  await clock.advance(500);
  t.equal(runtime.progressMs(key), 500);
  t.same(runtime.executing(), [key]);
  await runtime.freeze(key);
  await runtime.freeze(key);
  await clock.advance(10_000);
  t.equal(runtime.progressMs(key), 500, 'frozen: no progress');
  t.same(runtime.executing(), [], 'a frozen attempt does not execute');
  t.same(await runtime.running(), [key], 'but it is still there');
  t.same(exits, []);
  await runtime.thaw(key);
  await clock.advance(1499);
  t.same(exits, [], 'not done before 2 s of work');
  await clock.advance(1);
  t.same(exits, [3], 'done after 2 s of work, with FAKE_EXIT_CODE');
  t.same(await runtime.running(), [], 'an exited attempt is not running');
  await runtime.stop(key);
  t.equal(runtime.progressMs(key), null, 'stopped: forgotten');
  t.same(brief(events), ['start j1@1 t=0 p=0', 'freeze j1@1 t=500 p=500', 'thaw j1@1 t=10500 p=500', 'exit j1@1 t=12000 p=2000 code=3'], 'one event per change; no stop event after an exit');
});

t.test('kill exits with 137 at once; stop ends a run without an exit', async (t) => {
  const { clock, runtime, events } = await setup(t);
  const exits: string[] = [];
  await runtime.start(assignment('j1', 1, { FAKE_SECONDS: '60' }), (code) => exits.push(`j1 ${code}`));
  await runtime.start(assignment('j2', 1, { FAKE_SECONDS: '60' }), (code) => exits.push(`j2 ${code}`));
  await clock.advance(1000);
  await runtime.kill({ jobId: 'j1', epoch: 1 });
  await runtime.stop({ jobId: 'j2', epoch: 1 });
  await clock.advance(120_000);
  t.same(exits, ['j1 137'], 'the killed one exits; the stopped one never does');
  t.same(brief(events).slice(2), ['exit j1@1 t=1000 p=1000 code=137', 'stop j2@1 t=1000 p=1000']);
  const log = await runtime.logs({ jobId: 'j1', epoch: 1 }, { follow: true });
  let text = '';
  for await (const chunk of log) text += String(chunk);
  t.equal(text, 'fake run of j1 epoch 1 for 60 s\nexit code 137\n', 'the log of an exited run ends');
});

t.test('a checkpoint captures progress and log; a restore, on any runtime, resumes from it', async (t) => {
  const { clock, runtime, events } = await setup(t);
  const key = { jobId: 'j1', epoch: 1 };
  await runtime.start(assignment('j1', 1, { FAKE_SECONDS: '10' }), () => {});
  await clock.advance(4000);
  const cp = await runtime.checkpoint(key, 'c1');
  t.equal(cp.name, 'c1');
  t.equal(cp.frozenMs, 0, 'a fake capture takes no time');
  t.ok(cp.logOffset > 0, 'it holds the log so far');
  await clock.advance(3000);
  await runtime.stop(key); // its node is lost: 3 s of work since the checkpoint are lost with it

  const other = new FakeRuntime({ clock, onEvent: (e) => events.push(e) });
  const exits: number[] = [];
  t.same(await other.restore(assignment('j1', 2, { FAKE_SECONDS: '10' }), cp.bundleDir, (code) => exits.push(code)), { restored: true });
  t.equal(other.progressMs({ jobId: 'j1', epoch: 2 }), 4000, 'resumed from the checkpoint');
  await clock.advance(6000);
  t.same(exits, [0], 'done after the 6 s it had left');
  let text = '';
  for await (const chunk of await other.logs({ jobId: 'j1', epoch: 2 }, { follow: false })) text += String(chunk);
  t.equal(text, 'fake run of j1 epoch 1 for 10 s\nresumed as epoch 2 from c1 at 4 s\nexit code 0\n');
  t.same(brief(events), ['start j1@1 t=0 p=0', 'checkpoint j1@1 t=4000 p=4000 c1', 'stop j1@1 t=7000 p=7000', 'restore j1@2 t=7000 p=4000 c1', 'exit j1@2 t=13000 p=10000 code=0']);
  t.equal(events[3]?.fromEpoch, 1, 'a restore says which attempt the checkpoint was taken of');
});

t.test('what cannot be checkpointed or restored', async (t) => {
  const { runtime } = await setup(t);
  const key = { jobId: 'j1', epoch: 1 };
  await t.rejects(runtime.checkpoint(key, 'c1'), /not running/, 'nothing to capture');
  await runtime.start(assignment('j1', 1, { FAKE_SECONDS: '10' }), () => {});
  await runtime.freeze(key);
  await t.rejects(runtime.checkpoint(key, 'c1'), /frozen/, 'no checkpoint of a frozen attempt');
  await runtime.thaw(key);
  const cp = await runtime.checkpoint(key, 'c1');
  const r = await runtime.restore(assignment('j9', 2, {}), cp.bundleDir, () => {});
  t.match(r, { restored: false, reason: /of job j1, not j9/ });
  t.match(await runtime.restore(assignment('j1', 2, {}), '/nonexistent-fake-bundle', () => {}), { restored: false, reason: /no fake checkpoint/ });
});
