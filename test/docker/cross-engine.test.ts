// A job checkpointed on one Docker engine and resumed on ANOTHER (a second dockerd on
// this machine, with its own data root and containerd, standing in for another box):
// the bundle carries the snapshot image (docker save/load, without the layers of the
// job's image, which every box has), the CRIU images and the log. Real Docker + CRIU: these tests FAIL without them.
import t from 'tap';
import { BASE_IMAGE, copyImage, mainEngine, secondEngine } from './engines.js';
import { testRuntime } from './fixtures.js';
import { checkpointKillRestore } from './round-trip.js';

const a = await mainEngine();
const b = await secondEngine();
// Every box has the base image (make setup imports it); a bundle leaves its layers out.
await copyImage(a.docker, b.docker, BASE_IMAGE);
const onA = await testRuntime(a.docker, `box-a-${Date.now()}`);
const onB = await testRuntime(b.docker, `box-b-${Date.now()}`);
t.teardown(async () => {
  await onA.cleanup();
  await onB.cleanup();
  await b.stop();
});

t.test('checkpoint on engine A, kill there, restore on engine B: the count and the file continue exactly', async (t) => {
  await checkpointKillRestore(t, { runtime: onA.runtime, docker: a.docker, engine: 'engine A' }, { runtime: onB.runtime, docker: b.docker, engine: 'engine B' });
});
