// The blob service (src/blobs/replicated.ts): put → k copies → registered, with its
// one rule for too few copies, pulling a blob from its holders, and repair; and what
// its gc keeps besides the table: blobs whose registration is in flight.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import t from 'tap';
import pino from 'pino';
import { BlobStore } from '../../src/blobs/index.js';
import type { BlobKind } from '../../src/blobs/manifest.js';
import { RESUME_YIELD_MAX_MS } from '../../src/blobs/repair.js';
import { ClusterBlobs, TooFewCopiesError, type LocalBlobs, type PlacedBlob } from '../../src/blobs/replicated.js';
import type { GcResult, PutResult } from '../../src/blobs/store.js';
import type { Command } from '../../src/state/commands.js';
import type { ApplyResult } from '../../src/state/result.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { tempFolder } from './blob-fixtures.js';
import { flush } from './manual-time.js';
import { join as joinNode, Log } from './state-fixtures.js';

interface Rig {
  blobs: ClusterBlobs;
  log: Log;
  pushes: Array<{ id: string; to: string }>;
  fetches: Array<{ id: string; holders: readonly string[] }>;
  underReplicated: () => number;
  file: string;
}

/** Node n1's blob service in a cluster of `nodes`; pushes to nodes in `refuse` fail. */
async function rig(t: { teardown(fn: () => void): void }, nodes: string[], refuse: string[] = []): Promise<Rig> {
  const dir = tempFolder(t, 'workrs-replicated-');
  const store = await BlobStore.open(join(dir, 'store'));
  const log = new Log();
  for (const n of nodes) log.ok(joinNode(n));
  const pushes: Rig['pushes'] = [];
  const fetches: Rig['fetches'] = [];
  let under = 0;
  const blobs = new ClusterBlobs({
    cluster: { nodeId: 'n1', state: () => log.state, propose: async (cmd: Command) => log.apply(cmd), caughtUp: () => true },
    store,
    transfer: {
      push: async (id, to) => {
        if (refuse.includes(to)) throw new Error(`${to} is unreachable`);
        pushes.push({ id, to });
      },
      fetch: async (id, holders) => void fetches.push({ id, holders }),
    },
    replicas: 2,
    gcMinAgeMs: 0,
    metrics: { underReplicated: { inc: () => void under++ } },
    logger: pino({ level: 'silent' }),
  });
  const file = join(dir, 'input.bin');
  writeFileSync(file, 'some input bytes');
  return { blobs, log, pushes, fetches, underReplicated: () => under, file };
}

t.test('a put is copied to k−1 alive nodes, then registered with its holders', async (t) => {
  const { blobs, log, pushes, file } = await rig(t, ['n1', 'n2', 'n3']);
  const { blob, registered } = await blobs.putFile(file, 'input');
  t.ok(registered.ok);
  t.same(blob.holders, ['n1', 'n2']);
  t.same(pushes.map((p) => p.to), ['n2']);
  t.same(log.state.blobs.get(blob.id)?.holders, ['n1', 'n2']);
});

t.test('a failed push moves on to the next alive node', async (t) => {
  const { blobs, file } = await rig(t, ['n1', 'n2', 'n3'], ['n2']);
  const { blob } = await blobs.putFile(file, 'input');
  t.same(blob.holders, ['n1', 'n3']);
});

t.test('too few copies while alive nodes could have held them: TooFewCopiesError, nothing registered', async (t) => {
  const { blobs, log, file } = await rig(t, ['n1', 'n2', 'n3'], ['n2', 'n3']);
  await t.rejects(blobs.putFile(file, 'input'), TooFewCopiesError);
  await t.rejects(blobs.putFile(file, 'input'), { code: 'REPLICATION_FAILED', httpStatus: 503 });
  t.equal(log.state.blobs.size, 0);
});

t.test('fewer alive nodes than k: the blob counts with the copies there can be, and the shortfall is counted', async (t) => {
  const { blobs, log, file, underReplicated } = await rig(t, ['n1']);
  const { blob, registered } = await blobs.putFile(file, 'result');
  t.ok(registered.ok);
  t.same(blob.holders, ['n1']);
  t.equal(underReplicated(), 1);
  t.same(log.state.blobs.get(blob.id)?.holders, ['n1']);
});

t.test('ensure pulls from reachable holders only when the blob is not here', async (t) => {
  const { blobs, log, fetches, file } = await rig(t, ['n1', 'n2', 'n3']);
  const { blob } = await blobs.putFile(file, 'input');
  t.equal(await blobs.ensure(blob.id), false, 'here already');
  log.ok({ type: 'blobAdded', id: 'sha256:' + 'a'.repeat(64), kind: 'input', bytes: 3, holders: ['n3', 'n9'] });
  t.equal(await blobs.ensure('sha256:' + 'a'.repeat(64)), true, 'pulled');
  t.same(fetches, [{ id: 'sha256:' + 'a'.repeat(64), holders: ['n3'] }], 'from n3, not from the unknown n9');
  log.ok({ type: 'blobAdded', id: 'sha256:' + 'b'.repeat(64), kind: 'input', bytes: 3, holders: ['n9'] });
  await t.rejects(blobs.ensure('sha256:' + 'b'.repeat(64)), { code: 'BLOB_UNAVAILABLE' });
});

t.test('repair gives a blob whose holder was lost a new copy and records it', async (t) => {
  const { blobs, log, pushes, file } = await rig(t, ['n1', 'n2', 'n3']);
  const { blob } = await blobs.putFile(file, 'input');
  log.ok(joinNode('n4'));
  log.ok({ type: 'submitJob', job: { id: 'j1', spec: { command: ['true'], files: ['input.bin'] } as never, createdAt: log.at, inputs: { 'input.bin': blob.id } } } as Command);
  log.ok({ type: 'nodeLost', node: 'n2' });
  pushes.length = 0;
  await blobs.repair();
  t.same(pushes.map((p) => p.to), ['n3'], 'one new copy, to the first alive node without one');
  t.same(log.state.blobs.get(blob.id)?.holders.sort(), ['n1', 'n2', 'n3']);
});

// ---------------------------------------------------------------- what the gc keeps (test/sim-cluster/FINDINGS.md, finding 5)

/**
 * A node-local store whose blobs are all old: its gc keeps exactly what `keep` names
 * (the age rule never saves anything), so what survives is what ClusterBlobs asked for.
 */
class OldBlobs {
  readonly ids = new Set<string>();
  gcRuns = 0;
  /** While set, a put waits for it (a put under way). */
  gate: Promise<void> | null = null;
  private n = 0;

  async putFolder(_dir: string, kind: BlobKind): Promise<PutResult> {
    if (this.gate) await this.gate;
    const id = `sha256:${String(++this.n).padStart(64, '0')}`;
    this.ids.add(id);
    return { id, kind, bytes: 3, chunks: 1, newChunks: 1, newBytes: 3, reusedBytes: 0, dedupeRatio: 0, manifestBytes: 10 };
  }

  async putStream(source: Readable, kind: BlobKind): Promise<PutResult> {
    // Unread: the stream may still open its file after the test removed it, an error nobody needs.
    source.on('error', () => {});
    source.destroy();
    return this.putFolder('', kind);
  }

  async has(id: string): Promise<boolean> {
    return this.ids.has(id);
  }

  async gc(keep: ReadonlySet<string>): Promise<GcResult> {
    this.gcRuns++;
    let deletedChunks = 0;
    for (const id of [...this.ids]) {
      if (keep.has(id)) continue;
      this.ids.delete(id);
      deletedChunks++;
    }
    return { keptChunks: this.ids.size, keptBytes: 3 * this.ids.size, deletedChunks, deletedBytes: 3 * deletedChunks, absentKept: [...keep].filter((id) => !this.ids.has(id)) };
  }
}

const GC_MIN_AGE_MS = 60_000;

/** n1's blob service over OldBlobs; proposals wait for `proposals` when given. */
function gcRig(nodes: string[], proposals: Promise<void> = Promise.resolve()): { blobs: ClusterBlobs; store: OldBlobs; log: Log; clock: ManualClock; fetches: Rig['fetches'] } {
  const log = new Log();
  for (const n of nodes) log.ok(joinNode(n));
  const store = new OldBlobs();
  const clock = new ManualClock();
  const fetches: Rig['fetches'] = [];
  const blobs = new ClusterBlobs({
    cluster: {
      nodeId: 'n1',
      state: () => log.state,
      propose: async (cmd: Command) => {
        await proposals;
        return log.apply(cmd);
      },
      caughtUp: () => true,
    },
    store: store as unknown as LocalBlobs,
    transfer: {
      push: async () => undefined,
      fetch: async (id, holders) => {
        fetches.push({ id, holders });
        store.ids.add(id);
      },
    },
    replicas: 2,
    gcMinAgeMs: GC_MIN_AGE_MS,
    clock,
    logger: pino({ level: 'silent' }),
  });
  return { blobs, store, log, clock, fetches };
}

/** A registration the test answers (or fails) when it likes. */
function pendingRegistration(): { register: (blob: PlacedBlob) => Promise<ApplyResult>; placed: () => PlacedBlob | null; answer: (r: ApplyResult) => void; fail: (err: Error) => void } {
  let placed: PlacedBlob | null = null;
  let answer: (r: ApplyResult) => void = () => {};
  let fail: (err: Error) => void = () => {};
  const answered = new Promise<ApplyResult>((resolve, reject) => {
    answer = resolve;
    fail = reject;
  });
  return {
    register: (blob) => {
      placed = blob;
      return answered;
    },
    placed: () => placed,
    answer: (r) => answer(r),
    fail: (err) => fail(err),
  };
}

t.test('a checkpoint blob stays out of gc, whatever its age, until its commit is answered', async (t) => {
  const { blobs, store } = gcRig(['n1', 'n2']);
  const reg = pendingRegistration();
  const putting = blobs.putFolder('/bundle', 'checkpoint', reg.register);
  await flush();
  const blob = reg.placed();
  if (blob === null) throw new Error('not registering yet');
  t.same(blob.holders, ['n1', 'n2']);
  await blobs.collectGarbage();
  t.equal(store.gcRuns, 1, 'the gc ran');
  t.ok(store.ids.has(blob.id), 'kept while checkpointCommitted is in flight, though in no table');
  reg.answer({ ok: false, code: 'STALE_EPOCH', message: 'job j1 is at epoch 2' });
  const { registered } = await putting;
  t.notOk(registered.ok, 'the caller gets the answer');
  await blobs.collectGarbage();
  t.notOk(store.ids.has(blob.id), 'refused: never registered through it, so garbage');
});

t.test('a registration whose outcome is unknown keeps the blob gcMinAgeMs after the proposer gave up', async (t) => {
  const { blobs, store, clock } = gcRig(['n1', 'n2']);
  const reg = pendingRegistration();
  const putting = blobs.putFolder('/bundle', 'checkpoint', reg.register);
  await flush();
  await clock.advance(10 * GC_MIN_AGE_MS); // a commit can take this long
  reg.fail(new Error('the cluster could not apply checkpointCommitted'));
  await t.rejects(putting, /could not apply/);
  const id = reg.placed()?.id ?? '';
  await blobs.collectGarbage();
  t.ok(store.ids.has(id), 'kept: the entry may still commit');
  await clock.advance(GC_MIN_AGE_MS - 1);
  await blobs.collectGarbage();
  t.ok(store.ids.has(id), 'still kept just before gcMinAgeMs from the give-up');
  await clock.advance(1);
  await blobs.collectGarbage();
  t.notOk(store.ids.has(id), 'collected after that');
});

t.test('a blob file put is kept while its blobAdded is in flight', async (t) => {
  let release: () => void = () => {};
  const { blobs, store, log } = gcRig(['n1', 'n2'], new Promise<void>((resolve) => (release = resolve)));
  const dir = tempFolder(t, 'workrs-replicated-gc-');
  const file = join(dir, 'input.bin');
  writeFileSync(file, 'x');
  const putting = blobs.putFile(file, 'input');
  await flush();
  const [id] = [...store.ids];
  await blobs.collectGarbage();
  t.ok(id !== undefined && store.ids.has(id), 'kept while blobAdded is in flight');
  release();
  const { registered } = await putting;
  t.ok(registered.ok);
  t.ok(log.state.blobs.has(id ?? ''), 'registered');
});

t.test('no gc pass starts while a put is storing a blob it has not pinned yet', async (t) => {
  const { blobs, store } = gcRig(['n1', 'n2']);
  let open: () => void = () => {};
  store.gate = new Promise<void>((resolve) => (open = resolve));
  const reg = pendingRegistration();
  const putting = blobs.putFolder('/bundle', 'checkpoint', reg.register);
  await blobs.collectGarbage();
  t.equal(store.gcRuns, 0, 'skipped while storing');
  open();
  await flush();
  await blobs.collectGarbage();
  t.equal(store.gcRuns, 1);
  t.equal(store.ids.size, 1, 'pinned once stored');
  reg.answer({ ok: true, value: {} });
  await putting;
});

t.test('a live blob this node is recorded as holding but lacks (a pushed copy collected by age) is fetched again', async (t) => {
  const { blobs, store, log, fetches } = gcRig(['n1', 'n2', 'n3']);
  const mine = 'sha256:' + 'c'.repeat(64);
  const theirs = 'sha256:' + 'd'.repeat(64);
  log.ok({ type: 'blobAdded', id: mine, kind: 'input', bytes: 3, holders: ['n2', 'n1'] });
  log.ok({ type: 'blobAdded', id: theirs, kind: 'input', bytes: 3, holders: ['n2', 'n3'] });
  log.ok({ type: 'submitJob', job: { id: 'j1', spec: { command: ['true'], files: ['a', 'b'] } as never, createdAt: log.at, inputs: { a: mine, b: theirs } } } as Command);
  await blobs.collectGarbage();
  t.same(fetches, [{ id: mine, holders: ['n2'] }], 'only the one it is recorded as holding, from the other holder');
  t.ok(store.ids.has(mine));
  await blobs.collectGarbage();
  t.equal(fetches.length, 1, 'not again once here');
});

// ---------------------------------------------------------------- repair yields to a resume (src/blobs/repair.ts)

/**
 * n1 is the last live holder of job j1's checkpoint (n2, which ran j1, is lost) and holds
 * its input with n2: repair passes on a ManualClock, with the pushes recorded.
 */
function resumeRig(): { blobs: ClusterBlobs; log: Log; clock: ManualClock; pushes: Rig['pushes']; checkpointBlob: string; inputBlob: string } {
  const log = new Log();
  for (const n of ['n1', 'n2', 'n3']) log.ok(joinNode(n));
  const checkpointBlob = `sha256:${'c'.repeat(64)}`;
  const inputBlob = `sha256:${'d'.repeat(64)}`;
  const store = new OldBlobs();
  store.ids.add(checkpointBlob);
  store.ids.add(inputBlob);
  const clock = new ManualClock();
  const pushes: Rig['pushes'] = [];
  const blobs = new ClusterBlobs({
    cluster: { nodeId: 'n1', state: () => log.state, propose: async (cmd: Command) => log.apply(cmd), caughtUp: () => true },
    store: store as unknown as LocalBlobs,
    transfer: { push: async (id, to) => void pushes.push({ id, to }), fetch: async () => undefined },
    replicas: 2,
    gcMinAgeMs: 0,
    clock,
    logger: pino({ level: 'silent' }),
  });
  log.ok({ type: 'blobAdded', id: inputBlob, kind: 'input', bytes: 3, holders: ['n1', 'n2'] });
  log.ok({ type: 'submitJob', job: { id: 'j1', spec: { command: ['true'], files: ['in.bin'] } as never, createdAt: log.at, inputs: { 'in.bin': inputBlob } } } as Command);
  log.ok({ type: 'assignJob', jobId: 'j1', node: 'n2', epoch: 1, fromCheckpoint: null, reason: 'new job' });
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n2' });
  log.ok({ type: 'checkpointCommitted', jobId: 'j1', epoch: 1, node: 'n2', seq: 1, blob: checkpointBlob, bytes: 3, durationMs: 1, logOffset: 0, holders: ['n2', 'n1'] });
  log.ok({ type: 'nodeLost', node: 'n2' });
  return { blobs, log, clock, pushes, checkpointBlob, inputBlob };
}

t.test('the checkpoint a job resumes from is copied once the new attempt started; its input at once', async (t) => {
  const { blobs, log, clock, pushes, checkpointBlob, inputBlob } = resumeRig();
  await blobs.repair();
  t.same(pushes, [{ id: inputBlob, to: 'n3' }], 'the input is copied at once; the checkpoint of the pending job waits');
  await clock.advance(5_000);
  log.ok({ type: 'assignJob', jobId: 'j1', node: 'n1', epoch: 2, fromCheckpoint: { seq: 1, epoch: 1 }, reason: 'test' });
  await blobs.repair();
  await clock.advance(4_000);
  await blobs.repair();
  t.same(pushes.map((p) => p.id), [inputBlob], 'no copy while the attempt resumes on n1 (9 s after the first pass)');
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 2, node: 'n1' });
  await blobs.repair();
  t.same(pushes.slice(1), [{ id: checkpointBlob, to: 'n3' }], 'the new attempt runs: the checkpoint gets its second copy');
  t.same(log.state.blobs.get(checkpointBlob)?.holders.sort(), ['n1', 'n2', 'n3'], 'and the copy is recorded');
});

t.test('a resume that does not end holds the checkpoint back at most RESUME_YIELD_MAX_MS', async (t) => {
  const { blobs, log, clock, pushes, checkpointBlob } = resumeRig();
  log.ok({ type: 'assignJob', jobId: 'j1', node: 'n1', epoch: 2, fromCheckpoint: { seq: 1, epoch: 1 }, reason: 'test' });
  await blobs.repair();
  await clock.advance(RESUME_YIELD_MAX_MS - 1);
  await blobs.repair();
  t.notOk(pushes.some((p) => p.id === checkpointBlob), 'still waiting just before the bound');
  await clock.advance(1);
  await blobs.repair();
  t.same(pushes.filter((p) => p.id === checkpointBlob), [{ id: checkpointBlob, to: 'n3' }], 'copied at the bound, though the attempt has not started');
});
