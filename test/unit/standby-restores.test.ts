// The node's standby restores (src/node/standby-restores.ts) against a fake runtime
// and a hand-made state: which jobs get a standby (running elsewhere, newest checkpoint
// held here, the oldest first up to the maximum), replacement at a new checkpoint,
// removal when the job ends, a failed preparation not retried for the same checkpoint,
// and take(): the folder of the attempt's own checkpoint, waiting for one being made.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import pino from 'pino';
import { StandbyRestores } from '../../src/node/standby-restores.js';
import type { ClusterState } from '../../src/state/machine.js';
import type { Assignment } from '../../src/state/views.js';

interface FakeJob {
  id: string;
  state: string;
  node: string | null;
}

function fixture(t: { teardown(fn: () => unknown): void }, staging: string, max = 2) {
  const jobs = new Map<string, FakeJob>();
  const checkpoints = new Map<string, Array<{ blob: string }>>();
  const blobs = new Map<string, { holders: string[] }>();
  const state = { jobs, checkpoints, blobs } as unknown as ClusterState;
  const made = new Map<string, string>(); // job → bundle folder of its standby
  const calls: string[] = [];
  let failNext = false;
  let gate: Promise<void> = Promise.resolve();
  const standbys = new StandbyRestores({
    nodeId: 'me',
    runtime: {
      prepareStandby: async (jobId, dir, tag) => {
        await gate;
        calls.push(`prepare ${jobId} ${tag}`);
        if (failNext) {
          failNext = false;
          throw new Error('no');
        }
        made.set(jobId, dir);
      },
      discardStandby: async (jobId) => {
        calls.push(`discard ${jobId}`);
        made.delete(jobId);
      },
    },
    blobs: { exportFolder: async (blob, dir) => void (await import('node:fs/promises')).mkdir(dir, { recursive: true }) },
    state: () => state,
    stagingDir: staging,
    max,
    random: Math.random,
    logger: pino({ level: 'silent' }),
    monotonic: () => performance.now(),
  });
  t.teardown(() => standbys.stop());
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 50; i++) {
      standbys.poke();
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return {
    jobs,
    checkpoints,
    blobs,
    made,
    calls,
    standbys,
    settle,
    failOnce: () => (failNext = true),
    hold: () => {
      let open: () => void = () => undefined;
      gate = new Promise<void>((r) => (open = r));
      return () => open();
    },
  };
}

const assignment = (jobId: string, blob: string): Assignment => ({ jobId, epoch: 2, fromCheckpoint: { seq: 1, epoch: 1, blob, bytes: 1, logOffset: 0, holders: ['me'] } }) as unknown as Assignment;

t.test('standbys for jobs running elsewhere whose newest checkpoint is held here, replaced and removed as the state moves', async (t) => {
  const staging = await mkdtemp(join(tmpdir(), 'workrs-standby-'));
  t.teardown(() => rm(staging, { recursive: true, force: true }));
  const f = fixture(t, staging, 2);
  f.jobs.set('a', { id: 'a', state: 'running', node: 'other' });
  f.jobs.set('b', { id: 'b', state: 'running', node: 'other' });
  f.jobs.set('c', { id: 'c', state: 'running', node: 'other' });
  f.jobs.set('here', { id: 'here', state: 'running', node: 'me' });
  f.jobs.set('far', { id: 'far', state: 'running', node: 'other' });
  f.jobs.set('done', { id: 'done', state: 'succeeded', node: 'other' });
  for (const id of ['a', 'b', 'c', 'here', 'done']) {
    f.checkpoints.set(id, [{ blob: `${id}-1` }]);
    f.blobs.set(`${id}-1`, { holders: ['me', 'other'] });
  }
  f.checkpoints.set('far', [{ blob: 'far-1' }]);
  f.blobs.set('far-1', { holders: ['other', 'third'] });
  await f.settle();
  t.same([...f.made.keys()].sort(), ['a', 'b'], 'the oldest two running elsewhere with a checkpoint held here');
  t.equal(f.standbys.readyCount, 2);
  t.equal((await readdir(staging)).length, 2, 'one folder each');

  f.checkpoints.set('a', [{ blob: 'a-1' }, { blob: 'a-2' }]);
  f.blobs.set('a-2', { holders: ['me'] });
  f.jobs.set('b', { id: 'b', state: 'succeeded', node: 'other' });
  await f.settle();
  t.same([...f.made.keys()].sort(), ['a', 'c'], 'b ended: gone; c takes its place');
  t.ok(f.calls.includes('prepare a a-2'), "a's new checkpoint replaced its standby");
  t.ok(f.calls.includes('discard b'));
  t.equal((await readdir(staging)).length, 2, 'the folders of the replaced and removed went');

  t.equal(await f.standbys.take(assignment('a', 'a-1')), null, 'take() of an older checkpoint: nothing');
  const dir = await f.standbys.take(assignment('a', 'a-2'));
  t.ok(dir !== null && dir.startsWith(staging), "take() of the job's checkpoint: the folder");
  t.equal(await f.standbys.take(assignment('a', 'a-2')), null, 'taken once');
});

t.test('a job assigned here keeps its standby until its restore takes it; take() waits for one being made; a failure is not retried', async (t) => {
  const staging = await mkdtemp(join(tmpdir(), 'workrs-standby-'));
  t.teardown(() => rm(staging, { recursive: true, force: true }));
  const f = fixture(t, staging, 4);
  f.jobs.set('a', { id: 'a', state: 'running', node: 'other' });
  f.checkpoints.set('a', [{ blob: 'a-1' }]);
  f.blobs.set('a-1', { holders: ['me'] });
  await f.settle();
  f.jobs.set('a', { id: 'a', state: 'running', node: 'me' }); // the takeover: assigned here
  await f.settle();
  t.same([...f.made.keys()], ['a'], 'kept while assigned here');
  t.ok(await f.standbys.take(assignment('a', 'a-1')), 'the restore takes it');

  f.jobs.set('b', { id: 'b', state: 'running', node: 'other' });
  f.checkpoints.set('b', [{ blob: 'b-1' }]);
  f.blobs.set('b-1', { holders: ['me'] });
  const open = f.hold();
  f.standbys.poke();
  await new Promise((r) => setTimeout(r, 20));
  f.jobs.set('b', { id: 'b', state: 'running', node: 'me' });
  const taking = f.standbys.take(assignment('b', 'b-1'));
  open();
  t.ok(await taking, 'take() waited for the standby being made');

  f.jobs.set('c', { id: 'c', state: 'running', node: 'other' });
  f.checkpoints.set('c', [{ blob: 'c-1' }]);
  f.blobs.set('c-1', { holders: ['me'] });
  f.failOnce();
  await f.settle();
  t.equal(f.calls.filter((c) => c === 'prepare c c-1').length, 1, 'a failed preparation is not tried again for the same checkpoint');
  t.equal(await f.standbys.take(assignment('c', 'c-1')), null);
  f.checkpoints.set('c', [{ blob: 'c-1' }, { blob: 'c-2' }]);
  f.blobs.set('c-2', { holders: ['me'] });
  await f.settle();
  t.ok(f.made.has('c'), 'the next checkpoint is tried');
});
