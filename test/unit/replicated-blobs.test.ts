// The blob service (src/blobs/replicated.ts): put → k copies → registered, with its
// one rule for too few copies, pulling a blob from its holders, and repair.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import pino from 'pino';
import { BlobStore } from '../../src/blobs/index.js';
import { ClusterBlobs, TooFewCopiesError } from '../../src/blobs/replicated.js';
import type { Command } from '../../src/state/commands.js';
import { tempFolder } from './blob-fixtures.js';
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
