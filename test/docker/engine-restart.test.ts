// An engine that restarts under a job (docs/cluster.md, "Reboot, or a restart of
// dockerd"): the exit it causes is the box's, not the job's. A watched job whose
// dockerd is killed and started again without live-restore (the new dockerd stops the
// container it finds: 137), and a job found exited after a power loss (255) when the
// node adopts its containers, are neither reported as exits: their containers go, so
// that the worker resumes the attempt from its checkpoint. A job that exits 137 by
// itself while watched is still reported. Real Docker: on an engine of this file's own,
// since it is killed.
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { boxEngines, crashEngine, launch, mainEngine, type EngineSpec } from './engines.js';
import { assignment, containerOf, Exits, testRuntime, uid } from './fixtures.js';

const spec: EngineSpec = { name: 'restart', dir: '/var/lib/workrs-test-engine-restart', netns: 'workrs-test-engine-restart' };
const main = await mainEngine();
const [engine] = await boxEngines([spec], main.docker);
if (!engine) throw new Error('no engine');
t.teardown(() => engine.stop());
const { docker } = engine;
const LOOP = { command: ['sh', '-c', 'while true; do sleep 0.2; done'] };

async function exists(key: { jobId: string; epoch: number }): Promise<boolean> {
  return containerOf(docker, key)
    .inspect()
    .then(() => true, (err: { statusCode?: number }) => (err.statusCode === 404 ? false : Promise.reject(err)));
}

t.test('a job that exits 137 by itself, watched, is reported', async (t) => {
  const { runtime, cleanup } = await testRuntime(docker);
  t.teardown(cleanup);
  const exits = new Exits();
  await runtime.start(assignment(`j-${uid()}`, 1, { command: ['sh', '-c', 'sleep 0.5; exit 137'] }), exits.onExit);
  await waitFor('the exit', () => (exits.codes.length > 0 ? true : undefined), 20_000, 50);
  t.same(exits.codes, [137], 'its exit code is the result');
});

t.test('dockerd killed and started again under a watched job: the stop is not reported, the container goes', async (t) => {
  const { runtime, cleanup } = await testRuntime(docker);
  t.teardown(cleanup);
  const exits = new Exits();
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  await runtime.start(assignment(key.jobId, 1, LOOP), exits.onExit);
  t.same(await runtime.running(), [key], 'it runs');
  await crashEngine(spec, 'daemon');
  await launch(spec);
  await waitFor('the stopped container to go', async () => ((await exists(key)) ? undefined : true), 60_000, 200);
  t.same(exits.codes, [], 'no exit was reported');
  t.same(await runtime.running(), [], 'nothing runs: the worker resumes the attempt');
});

t.test('a container found exited after a power loss is not an exit at adoption: it goes', async (t) => {
  const nodeId = `test-${uid()}`;
  const before = await testRuntime(docker, nodeId);
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  await before.runtime.start(assignment(key.jobId, 1, LOOP), () => {});
  before.runtime.detach(); // workrs dies with the box
  await crashEngine(spec, 'box');
  await launch(spec);
  const state = (await containerOf(docker, key).inspect()).State;
  t.match(state, { Running: false, ExitCode: 255 }, 'the engine reports the container exited with 255');
  const after = await testRuntime(docker, nodeId);
  t.teardown(after.cleanup);
  t.teardown(before.cleanup);
  const exits = new Exits();
  const adopted = await after.runtime.adopt((k, code) => exits.onExit(code));
  t.same(adopted, [], 'nothing adopted as running');
  t.same(exits.codes, [], 'no exit reported');
  t.notOk(await exists(key), 'its container was removed');
});
