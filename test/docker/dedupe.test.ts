// Issue 6, acceptance 5: checkpoints share unchanged chunks. A job holds ~200 MB of
// random bytes that never change; the node's real checkpoint loop (Checkpointer:
// DockerRuntime.checkpoint → BlobStore.putFolder → replicate) takes two checkpoints
// of it, and each is replicated the way a node does it (BlobPeer.push over a
// PeerTransport's HTTP, the far node pulling what it lacks). We count the bytes the
// holder's sockets actually wrote for each replication: the second must be a small
// fraction of the first. Real Docker + CRIU + BlobStore on disk: FAILS without them.
//
// Where the 200 MB live matters. CRIU writes a process's anonymous memory to
// pages-*.img; a file in the container's /dev/shm (a private tmpfs, 64 MB by default)
// is dumped by CRIU too, but as one gzipped tar (tmpfs-dev-*.tar.gz.img); a file on the
// container's root filesystem is not in the CRIU images at all, it travels in
// image.tar (docker commit). This test is about memory: `dd bs=200000000` fills one
// anonymous buffer from /dev/urandom (≈1 s), then blocks forever writing it into a
// pipe nobody drains, so the buffer stays exactly as it is.
import type http from 'node:http';
import type { Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BlobPeer, BlobStore, type PullAnswer, type PutResult } from '../../src/blobs/index.js';
import { Proposer } from '../../src/node/proposer.js';
import { accepted } from '../../src/state/result.js';
import { decodeEnvelopeBytes, type Command } from '../../src/state/commands.js';
import { PeerTransport } from '../../src/transport/peer-transport.js';
import { Checkpointer } from '../../src/worker/checkpointer.js';
import { waitFor } from '../helpers/wait.js';
import { mainEngine, testLogger } from './engines.js';
import { assignment, Exits, testRuntime, uid } from './fixtures.js';

const MEMORY_BYTES = 200_000_000;
const MAX_SECOND_FRACTION = 0.1;
const TOKEN = Buffer.from('dedupe test cluster token');

/** Fills the buffer, says so once the pipe has seen a byte of it (dd wrote only after the whole read), then holds. */
const HOLDING_JOB = ['sh', '-c', `dd if=/dev/urandom bs=${MEMORY_BYTES} count=1 iflag=fullblock 2>/dev/null | { head -c 1 >/dev/null; echo FILLED; sleep 100000; }`];

interface BlobNode {
  id: string;
  store: BlobStore;
  peer: BlobPeer;
  address: string;
  /** Bytes this node's peer port has written to sockets so far (bulk answers, headers included). */
  bytesSent: () => number;
  close: () => Promise<void>;
}

/** Node id → peer address: the node table both nodes look each other up in. */
const nodeTable = new Map<string, string>();

/** A node's blob half as src/node wires it: a store on disk, a BlobPeer behind a PeerTransport's HTTP. */
async function blobNode(id: string, dir: string): Promise<BlobNode> {
  const store = await BlobStore.open(join(dir, id, 'blobs'));
  const peer = new BlobPeer({ store, nodeId: id, token: TOKEN, addressOf: (node) => nodeTable.get(node) ?? null });
  const sockets = new Set<Socket>();
  const transport = await PeerTransport.start({
    id,
    listen: { host: '127.0.0.1', port: 0 },
    token: TOKEN,
    onHttpRequest: (req: http.IncomingMessage, res: http.ServerResponse) => {
      sockets.add(req.socket);
      if (!peer.handle(req, res)) {
        res.statusCode = 404;
        res.end();
      }
    },
  });
  const address = `127.0.0.1:${transport.port}`;
  nodeTable.set(id, address);
  return {
    id,
    store,
    peer,
    address,
    bytesSent: () => [...sockets].reduce((n, s) => n + s.bytesWritten, 0),
    close: async () => {
      peer.close();
      await transport.close();
    },
  };
}

interface Replication {
  put: PutResult;
  answer: PullAnswer;
  wireBytes: number;
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

t.test('the second checkpoint of an unchanged 200 MB process sends a small fraction of the first', async (t) => {
  const { docker } = await mainEngine();
  const node = await testRuntime(docker);
  const dir = await mkdtemp(join(tmpdir(), 'workrs-dedupe-'));
  const holder = await blobNode(node.nodeId, dir);
  const replica = await blobNode(`peer-${uid()}`, dir);
  let checkpointer: Checkpointer | null = null;
  t.teardown(async () => {
    checkpointer?.untrackAll();
    await node.cleanup();
    await holder.close();
    await replica.close();
    await rm(dir, { recursive: true, force: true });
  });

  const jobId = `j-${uid()}`;
  const a = assignment(jobId, 1, { command: HOLDING_JOB, memoryMB: 400, checkpoint: { mode: 'interval', intervalSeconds: 1 } });
  const exits = new Exits();
  await node.runtime.start(a, exits.onExit);
  await waitFor('the job to fill its memory', async () => ((await node.runtime.logBytes(a)).toString().includes('FILLED') ? true : undefined), 30_000, 100);

  // The loop exactly as a node runs it; only replication and proposals are stand-ins
  // with the node's own behaviour: push to one other node, accept the record.
  const replications: Replication[] = [];
  const committed: Command[] = [];
  const loop: Checkpointer = new Checkpointer({
    nodeId: node.nodeId,
    runtime: node.runtime,
    blobs: {
      putFolder: async (folder, kind, register) => {
        const put = await holder.store.putFolder(folder, kind);
        const before = holder.bytesSent();
        const answer = await holder.peer.push(put.id, replica.id);
        replications.push({ put, answer, wireBytes: holder.bytesSent() - before });
        if (replications.length === 2) loop.untrackAll(); // no third checkpoint
        const blob = { ...put, holders: [node.nodeId, replica.id] };
        return { blob, registered: await register(blob) };
      },
    },
    proposer: new Proposer(
      {
        propose: async (data) => {
          committed.push(decodeEnvelopeBytes(data).cmd);
          return accepted({});
        },
      },
      'cp',
      node.nodeId,
    ),
    logger: testLogger,
  });
  checkpointer = loop;
  loop.track(a);
  await waitFor('two checkpoints committed', () => (committed.length >= 2 ? true : undefined), 80_000, 100);

  const [first, second] = replications as [Replication, Replication];
  for (const [i, r] of replications.entries()) {
    t.comment(
      `checkpoint ${i + 1}: bundle ${mb(r.put.bytes)}, new in the holder's store ${mb(r.put.newBytes)}, ` +
        `pulled by the peer ${mb(r.answer.fetchedBytes)} in ${r.answer.fetchedChunks} chunks, sent on the wire ${mb(r.wireBytes)} (${r.wireBytes} bytes)`,
    );
  }
  t.equal(committed.length, 2, 'two checkpoint records proposed');
  t.same(committed.map((c) => (c.type === 'checkpointCommitted' ? c.holders : null)), [[node.nodeId, replica.id], [node.nodeId, replica.id]], 'each held by the node and its peer');
  t.same(exits.codes, [], 'the job kept running through both checkpoints');
  t.ok(first.put.bytes >= MEMORY_BYTES, `the first bundle carries the memory (${mb(first.put.bytes)})`);
  t.ok(first.wireBytes >= MEMORY_BYTES * 0.9, `the first replication sent the memory (${mb(first.wireBytes)})`);
  t.ok(second.put.bytes >= MEMORY_BYTES, `the second bundle is as big (${mb(second.put.bytes)})`);
  t.ok(second.wireBytes >= second.answer.fetchedBytes, 'the wire count covers what the peer says it fetched');
  const fraction = second.wireBytes / first.wireBytes;
  t.comment(`second / first on the wire: ${(fraction * 100).toFixed(2)}%`);
  t.ok(fraction < MAX_SECOND_FRACTION, `the second replication sent ${(fraction * 100).toFixed(2)}% of the first (< ${MAX_SECOND_FRACTION * 100}%)`);
  t.ok(await replica.store.has(second.put.id), 'the peer holds the whole second checkpoint, every chunk verified');
});
