// A node's start and stop around its cluster member: the Raft log opened, bootstrapped
// or joined through another node's API, the cluster id kept, the secure-mode identity
// obtained; and at a graceful stop, the last checkpoints of the jobs running here,
// their containers stopped, leadership handed to another voter, and the API closed.
import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import { Raft } from '../../raft/raft.js';
import type { InitialState, NodeId } from '../../raft/types.js';
import { BUILD_HEADER, callNodeJson } from '../api/peer-client.js';
import type { NodeOptions } from '../config/node-options.js';
import { WorkrsError } from '../errors.js';
import type { NodeInfo } from '../state/commands.js';
import type { RaftStore } from '../storage/raft-store.js';
import { EnrollServer } from '../tls/enroll.js';
import { certificateHosts, obtainIdentity, type NodeTls } from '../tls/node-tls.js';
import { JoinSecret } from '../tls/secret.js';
import type { Clock } from '../util/clock.js';
import { type Checkpointer, LAST_CHECKPOINT_MS } from '../worker/checkpointer.js';
import type { ContainerRuntime } from '../worker/runtime.js';
import { BUILD } from '../version.js';
import { clusterIdFromBootstrap, isClusterId, newClusterId, readClusterId, writeClusterId } from './cluster-id.js';
import type { RaftNode } from './raft-node.js';

/** How long a joining node keeps asking, and how long it waits between asks. */
const JOIN_TIMEOUT_MS = 30_000;
const JOIN_RETRY_PAUSE_MS = 500;
/** A leader that stops waits this long for its successor, looking this often. */
const HANDOFF_WAIT_MS = 2000;
const HANDOFF_POLL_MS = 20;
/** How long a stopping node's API lets answers under way finish before it cuts their connections. */
const API_CLOSE_GRACE_MS = 3000;
/** How often a stopping API closes the keep-alive connections that went idle meanwhile. */
const API_CLOSE_SWEEP_MS = 25;

export function hostPort(h: { host: string; port: number }): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

/** A data folder with no Raft state at all: a new member. */
export function isFresh(loaded: InitialState): boolean {
  return loaded.hardState.term === 0 && loaded.entries.length === 0 && loaded.snapshot === null;
}

export interface OpenedLog {
  initial: InitialState;
  clusterId: string;
  /** Peer addresses the join answer gave (empty unless this node just joined). */
  joinedPeers: Map<NodeId, string>;
}

/**
 * The Raft log as stored, or a new one: a fresh data folder bootstraps a cluster
 * (--bootstrap) or joins one through a member's API (--join), and keeps the cluster
 * id that labels this node's containers (cluster-id.ts).
 */
export async function openLog(
  opts: NodeOptions,
  store: RaftStore,
  loaded: InitialState,
  bootstrapPeers: ReadonlyMap<NodeId, string>,
  join: (url: string) => Promise<{ clusterId: string; peers: Map<NodeId, string> }>,
  log: Logger,
): Promise<OpenedLog> {
  const fresh = isFresh(loaded);
  if (!fresh) {
    const kept = readClusterId(opts.dataDir);
    const clusterId = kept ?? (opts.bootstrap.size > 0 ? clusterIdFromBootstrap(bootstrapPeers) : newClusterId());
    if (kept === null) writeClusterId(opts.dataDir, clusterId);
    return { initial: loaded, clusterId, joinedPeers: new Map() };
  }
  if (opts.bootstrap.size > 0) {
    const clusterId = clusterIdFromBootstrap(bootstrapPeers);
    writeClusterId(opts.dataDir, clusterId);
    const initial = Raft.bootstrap([...opts.bootstrap.keys()].sort());
    await store.save({ hardState: initial.hardState, snapshot: null, entries: initial.entries });
    log.info({ voters: [...opts.bootstrap.keys()], cluster: clusterId }, 'bootstrapped a new cluster');
    return { initial, clusterId, joinedPeers: new Map() };
  }
  if (opts.join) {
    const joined = await join(opts.join);
    writeClusterId(opts.dataDir, joined.clusterId);
    return { initial: Raft.empty(), clusterId: joined.clusterId, joinedPeers: joined.peers };
  }
  throw new WorkrsError('BAD_CONFIG', 400, `the data folder ${opts.dataDir} is empty: give --bootstrap to start a new cluster or --join to join one`);
}

/** Joins as a learner through a member's API; the cluster's id and the peers it named. */
export async function joinThrough(
  url: string,
  self: NodeInfo,
  ctx: { clock: Clock; log: Logger; tls: NodeTls | null },
): Promise<{ clusterId: string; peers: Map<NodeId, string> }> {
  const { clock, log } = ctx;
  const deadline = clock.monotonic() + JOIN_TIMEOUT_MS;
  const tls = ctx.tls?.clientOptions(null, () => false);
  for (;;) {
    try {
      const res = await callNodeJson(new URL(url).host, '/v1/cluster/nodes', {
        method: 'POST',
        body: JSON.stringify(self),
        headers: { [BUILD_HEADER]: JSON.stringify(BUILD) },
        timeoutMs: 15_000,
        ...(tls ? { tls } : {}),
      });
      const answer = (res.body ?? {}) as { peers?: Record<string, string>; clusterId?: unknown; error?: { message: string } };
      if (res.status === 200 && answer.peers) {
        const peers = new Map<NodeId, string>();
        for (const [id, addr] of Object.entries(answer.peers)) if (id !== self.id) peers.set(id, addr);
        log.info({ via: url, peers: answer.peers, cluster: answer.clusterId }, 'joined the cluster as a learner');
        return { clusterId: isClusterId(answer.clusterId) ? answer.clusterId : newClusterId(), peers };
      }
      if (res.status < 500) throw new WorkrsError('JOIN_REFUSED', 400, `joining through ${url} was refused: ${answer.error?.message ?? res.status}`);
    } catch (err) {
      if (err instanceof WorkrsError || clock.monotonic() > deadline) throw err;
      log.warn({ err }, 'join attempt failed; retrying');
    }
    await clock.sleep(JOIN_RETRY_PAUSE_MS);
  }
}

/** Secure mode: this node's key and certificate, read or obtained (src/tls/node-tls.ts), and the enrollment service. */
export async function obtainTls(
  opts: NodeOptions,
  secretBytes: Buffer,
  fresh: boolean,
  bootstrapPeers: ReadonlyMap<NodeId, string>,
  log: Logger,
): Promise<{ tls: NodeTls; enrollServer: EnrollServer }> {
  const secret = new JoinSecret(secretBytes, opts.previousSecret);
  const clusterId = readClusterId(opts.dataDir) ?? (opts.bootstrap.size > 0 ? clusterIdFromBootstrap(bootstrapPeers) : newClusterId());
  const tls = await obtainIdentity({
    dataDir: opts.dataDir,
    nodeId: opts.id,
    secret,
    hosts: certificateHosts([opts.api.host, opts.peer.host], opts.tlsSans),
    bootstrap: bootstrapPeers,
    // A node with a log but no certificate (a folder from before secure mode) enrolls like a new one.
    join: fresh || opts.bootstrap.size === 0 ? opts.join : null,
    pinnedFingerprint: opts.pinnedCaFingerprint,
    clusterId,
    logger: log.child({ component: 'tls' }),
  });
  const enrollServer = new EnrollServer({
    secret,
    issuer: () => (tls.ca ? { ca: tls.ca, wrappedKey: tls.wrappedCaKey } : null),
    onIssued: (nodeId, serial) => log.info({ node: nodeId, serial }, 'enrolled a node: issued its certificate'),
  });
  log.info({ fingerprint: tls.fingerprint, serial: tls.serial }, 'secure mode: TLS with the cluster CA');
  return { tls, enrollServer };
}

/**
 * A last checkpoint of every job running here, committed, then their containers
 * stopped, so that no copy runs on once the leader moves them. The leader declares
 * this node lost after nodeTimeoutMs and the jobs resume elsewhere from those checkpoints.
 */
export async function drainJobs(runtime: ContainerRuntime, checkpointer: Checkpointer | undefined, log: Logger): Promise<void> {
  const running = await runtime.running();
  if (running.length === 0) return;
  if (checkpointer) {
    const saved = await checkpointer.final(LAST_CHECKPOINT_MS);
    log.warn({ checkpointed: saved.map((k) => `${k.jobId}@${k.epoch}`), running: running.length }, 'stopping: took a last checkpoint of the jobs running here');
  }
  for (const key of running) await runtime.stop(key).catch((err: unknown) => log.error({ err, job: key.jobId }, 'stopping a job at shutdown failed'));
}

/** A leader that stops hands leadership to a voter that is up, and waits briefly for it to take over. */
export async function handOffLeadership(raft: RaftNode, self: NodeId, clock: Clock): Promise<void> {
  const st = raft.status();
  if (st.role !== 'leader') return;
  const target = st.conf.voters.find((v) => v !== self && st.progress?.[v]?.recentActive);
  if (!target) return;
  raft.transferLeadership(target);
  const deadline = clock.monotonic() + HANDOFF_WAIT_MS;
  while (raft.status().role === 'leader' && clock.monotonic() < deadline) await clock.sleep(HANDOFF_POLL_MS);
}

/**
 * Closes the API server: no new connection, each keep-alive connection closed as soon
 * as it is idle, and after API_CLOSE_GRACE_MS the rest cut (streams such as a followed
 * log). Node's close() closes only the connections idle at that moment, and a client
 * that asks again within the keep-alive timeout, as a web page that polls does, would
 * otherwise hold it open for ever: the node never finished its graceful stop.
 */
export async function closeApiServer(server: HttpServer): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  const sweep = setInterval(() => server.closeIdleConnections(), API_CLOSE_SWEEP_MS);
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((r) => (timer = setTimeout(r, API_CLOSE_GRACE_MS)));
  try {
    await Promise.race([closed, grace]);
    server.closeAllConnections();
    await closed;
  } finally {
    clearInterval(sweep);
    clearTimeout(timer);
  }
}
