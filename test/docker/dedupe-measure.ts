// Two checkpoints of a job holding memory that never changes, each replicated the way
// a node does it, and the bytes each replication put on the wire: the measurement of
// test/docker/dedupe.test.ts (which asserts on it) and of `make bench` (which records
// it in bench/RESULTS.md). Real Docker + CRIU + BlobStore on disk.
//
// Where the memory lives matters. CRIU writes a process's anonymous memory to
// pages-*.img; a file in the container's /dev/shm (a private tmpfs, 64 MB by default)
// is dumped by CRIU too, but as one gzipped tar (tmpfs-dev-*.tar.gz.img); a file on the
// container's root filesystem is not in the CRIU images at all, it travels in the
// filesystem layer. This is about memory: `dd bs=<bytes>` fills one anonymous buffer
// from /dev/urandom, then blocks forever writing it into a pipe nobody drains, so the
// buffer stays exactly as it is.
import type http from 'node:http';
import type { Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { BlobPeer, BlobStore, type PullAnswer, type PutResult } from '../../src/blobs/index.js';
import { Proposer } from '../../src/node/proposer.js';
import { accepted } from '../../src/state/result.js';
import { decodeEnvelopeBytes, type Command } from '../../src/state/commands.js';
import { PeerTransport } from '../../src/transport/peer-transport.js';
import { Checkpointer } from '../../src/worker/checkpointer.js';
import { waitFor } from '../helpers/wait.js';
import { testLogger } from './engines.js';
import { assignment, Exits, testRuntime, uid } from './fixtures.js';

const TOKEN = Buffer.from('dedupe test cluster token');

/** Fills the buffer, says so once the pipe has seen a byte of it (dd wrote only after the whole read), then holds. */
const holdingJob = (bytes: number): string[] => ['sh', '-c', `dd if=/dev/urandom bs=${bytes} count=1 iflag=fullblock 2>/dev/null | { head -c 1 >/dev/null; echo FILLED; sleep 100000; }`];

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

export interface Replication {
  put: PutResult;
  answer: PullAnswer;
  wireBytes: number;
}

export interface TwoCheckpoints {
  nodeId: string;
  replicaId: string;
  /** The replication of each checkpoint, in order. */
  replications: [Replication, Replication];
  /** The records the checkpoint loop proposed. */
  committed: Command[];
  /** Exit codes the job reported (none: it kept running). */
  exitCodes: number[];
  /** Whether the peer holds the whole second checkpoint, every chunk verified. */
  replicaHasSecond: boolean;
}

/** Runs a job holding `bytes` of unchanging memory through two checkpoints; `teardown` gets the cleanups. */
export async function twoReplicatedCheckpoints(docker: Docker, bytes: number, teardown: (fn: () => Promise<void>) => void): Promise<TwoCheckpoints> {
  const node = await testRuntime(docker);
  const dir = await mkdtemp(join(tmpdir(), 'workrs-dedupe-'));
  const holder = await blobNode(node.nodeId, dir);
  const replica = await blobNode(`peer-${uid()}`, dir);
  let checkpointer: Checkpointer | null = null;
  teardown(async () => {
    checkpointer?.untrackAll();
    await node.cleanup();
    await holder.close();
    await replica.close();
    await rm(dir, { recursive: true, force: true });
  });

  const jobId = `j-${uid()}`;
  const a = assignment(jobId, 1, { command: holdingJob(bytes), memoryMB: Math.ceil(bytes / 1e6) + 200, checkpoint: { mode: 'interval', intervalSeconds: 1 } });
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
  return { nodeId: node.nodeId, replicaId: replica.id, replications: [first, second], committed, exitCodes: exits.codes, replicaHasSecond: await replica.store.has(second.put.id) };
}
