// Issue 6, acceptance 5, and issue 16: checkpoints share unchanged chunks. A job holds
// ~200 MB of random bytes that never change; the node's real checkpoint loop
// (Checkpointer: DockerRuntime.checkpoint → BlobStore.putFolder → replicate) takes two
// checkpoints of it, and each is replicated the way a node does it (BlobPeer.push over
// a PeerTransport's HTTP, the far node pulling what it lacks). We count the bytes the
// holder's sockets actually wrote for each replication: the second must be at most 1%
// of the first (dedupe-measure.ts). Real Docker + CRIU + BlobStore on disk: FAILS
// without them.
import t from 'tap';
import { mainEngine } from './engines.js';
import { twoReplicatedCheckpoints } from './dedupe-measure.js';

const MEMORY_BYTES = 200_000_000;
const MAX_SECOND_FRACTION = 0.01;

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

t.test('the second checkpoint of an unchanged 200 MB process sends at most 1% of the first', async (t) => {
  const { docker } = await mainEngine();
  const run = await twoReplicatedCheckpoints(docker, MEMORY_BYTES, (fn) => t.teardown(fn));
  const [first, second] = run.replications;
  for (const [i, r] of run.replications.entries()) {
    t.comment(
      `checkpoint ${i + 1}: bundle ${mb(r.put.bytes)}, new in the holder's store ${mb(r.put.newBytes)}, ` +
        `pulled by the peer ${mb(r.answer.fetchedBytes)} in ${r.answer.fetchedChunks} chunks, sent on the wire ${mb(r.wireBytes)} (${r.wireBytes} bytes)`,
    );
  }
  t.equal(run.committed.length, 2, 'two checkpoint records proposed');
  t.same(run.committed.map((c) => (c.type === 'checkpointCommitted' ? c.holders : null)), [[run.nodeId, run.replicaId], [run.nodeId, run.replicaId]], 'each held by the node and its peer');
  t.same(run.exitCodes, [], 'the job kept running through both checkpoints');
  t.ok(first.put.bytes >= MEMORY_BYTES, `the first bundle carries the memory (${mb(first.put.bytes)})`);
  t.ok(first.wireBytes >= MEMORY_BYTES * 0.9, `the first replication sent the memory (${mb(first.wireBytes)})`);
  t.ok(second.put.bytes >= MEMORY_BYTES, `the second bundle is as big (${mb(second.put.bytes)})`);
  t.ok(second.wireBytes >= second.answer.fetchedBytes, 'the wire count covers what the peer says it fetched');
  const fraction = second.wireBytes / first.wireBytes;
  t.comment(`second / first on the wire: ${(fraction * 100).toFixed(2)}%`);
  t.ok(fraction <= MAX_SECOND_FRACTION, `the second replication sent ${(fraction * 100).toFixed(2)}% of the first (≤ ${MAX_SECOND_FRACTION * 100}%)`);
  t.ok(run.replicaHasSecond, 'the peer holds the whole second checkpoint, every chunk verified');
});
