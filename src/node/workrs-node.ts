// One Workrs node: its cluster member (member.ts: Raft, state, leases, leader duties,
// worker) wrapped with what a real box has: the LevelDB log, the blob store on disk,
// the peer transport, TLS, Docker and the HTTP gateway. This file builds and wires
// them; what each part does is in its own file.
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { NodeId } from '../../raft/types.js';
import { NodeBackend } from '../api/backend.js';
import { sendError } from '../api/http.js';
import { sharedBarrier } from '../api/roles.js';
import { createGateway } from '../api/server.js';
import { prepareUploadDir } from '../api/upload-dir.js';
import { BlobPeer, BlobStore } from '../blobs/index.js';
import { ClusterBlobs } from '../blobs/replicated.js';
import type { NodeOptions } from '../config/node-options.js';
import { ClusterImages } from '../images/cluster-images.js';
import type { NodeInfo } from '../state/commands.js';
import { RaftStore } from '../storage/raft-store.js';
import { ENROLL_PATH, type EnrollServer } from '../tls/enroll.js';
import { peerNodeOf, type NodeTls } from '../tls/node-tls.js';
import { PeerTransport } from '../transport/index.js';
import { systemClock } from '../util/clock.js';
import type { DockerRuntime, DockerRuntimeOptions } from '../worker/docker-runtime.js';
import { FakeRuntime } from '../worker/fake-runtime.js';
import { closeApiServer, drainJobs, handOffLeadership, hostPort, isFresh, joinThrough, obtainTls, openLog } from './lifecycle.js';
import { ClusterMember, REPLICAS } from './member.js';
import { NodeMetrics } from './node-metrics.js';

/** Request methods the API has routes for; any other is counted as `other`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE']);

export class WorkrsNode {
  readonly id: NodeId;
  /** Secure mode: this node's certificate and the cluster CA; null in dev mode. */
  tls: NodeTls | null = null;
  private readonly opts: NodeOptions;
  private readonly log: Logger;
  private readonly clock = systemClock;
  private readonly bootstrapPeers = new Map<NodeId, string>();
  private readonly metrics = new NodeMetrics();
  private enrollServer: EnrollServer | null = null;
  private store!: RaftStore;
  private blobPeer!: BlobPeer;
  private transport!: PeerTransport;
  private member!: ClusterMember;
  private gateway!: Server | HttpsServer;

  private constructor(opts: NodeOptions, logger: Logger) {
    this.opts = opts;
    this.id = opts.id;
    this.log = logger;
    for (const [id, hp] of opts.bootstrap) this.bootstrapPeers.set(id, hostPort(hp));
  }

  static async start(opts: NodeOptions, logger: Logger): Promise<WorkrsNode> {
    const node = new WorkrsNode(opts, logger);
    await node.boot();
    return node;
  }

  get apiPort(): number {
    const a = this.gateway.address();
    return a !== null && typeof a === 'object' ? a.port : this.opts.api.port;
  }

  /** Revoked certificates, as this node has applied the log (none before the member exists). */
  private readonly revoked = (serial: string): boolean => this.member?.state.certRevoked(serial) ?? false;

  private async boot(): Promise<void> {
    const { opts, log, clock } = this;
    mkdirSync(opts.dataDir, { recursive: true });
    this.store = await RaftStore.open(join(opts.dataDir, 'raft'));
    const loaded = await this.store.load();
    const blobStore = await BlobStore.open(join(opts.dataDir, 'blobs'), { logger: log.child({ component: 'blobs' }) });
    if (opts.secret) ({ tls: this.tls, enrollServer: this.enrollServer } = await obtainTls(opts, opts.secret, isFresh(loaded), this.bootstrapPeers, log));
    const tls = this.tls;
    const nodeOf = (socket: unknown): string | null => peerNodeOf(socket, this.revoked)?.id ?? null;
    // Secure mode: certificates authenticate peers, and the handshake's proofs use the
    // empty key; dev mode: the empty key on loopback.
    const peerTls = tls ? { client: (peerId: string) => tls.clientOptions(peerId, this.revoked), nodeOf } : undefined;
    const peerAddressOf = (id: NodeId): string | null => {
      const n = this.member?.state.nodes.get(id);
      return n === undefined || n.state === 'left' ? null : n.peer;
    };
    this.blobPeer = new BlobPeer({ store: blobStore, nodeId: this.id, token: null, ...(peerTls ? { tls: peerTls } : {}), addressOf: peerAddressOf, logger: log.child({ component: 'bulk' }) });
    this.transport = await PeerTransport.start({
      id: this.id,
      listen: opts.peer,
      token: null,
      ...(tls && peerTls ? { tls: { server: tls.serverOptions(), ...peerTls } } : {}),
      logger: log.child({ component: 'transport' }),
      // Bulk data (checkpoints, images, inputs, results) moves on the peer port, never on
      // the Raft link; so does enrollment, which bootstrap nodes reach at peer addresses.
      onHttpRequest: (req, res) => {
        if (this.enrollServer && req.method === 'POST' && req.url === ENROLL_PATH) {
          this.enrollServer.handle(req, res).catch((err: unknown) => sendError(res, err));
          return;
        }
        if (!this.blobPeer.handle(req, res)) {
          res.statusCode = 404;
          res.end();
        }
      },
    });
    this.transport.onFrame((from, frame) => this.member?.receive(from, frame));
    this.transport.onLinkDown((peer) => this.member?.peerUnreachable(peer));

    const self = this.selfInfo();
    const opened = await openLog(opts, this.store, loaded, this.bootstrapPeers, (url) => joinThrough(url, self, { clock, log, tls }), log);
    const images: { current: ClusterImages | null } = { current: null };
    const docker =
      opts.runtime === 'docker'
        ? await dockerRuntime(opts.docker, {
            nodeId: this.id,
            clusterId: opened.clusterId,
            stagingDir: join(opts.dataDir, 'staging'),
            logger: log.child({ component: 'docker' }),
            images: (ref) => images.current?.open(ref) ?? Promise.resolve(null),
            limits: opts.jobLimits,
          })
        : null;
    const runtime = docker ?? new FakeRuntime();
    const jobMaxima = { memoryMB: opts.jobLimits.maxMemoryMB, cpus: opts.jobLimits.maxCpus };
    this.member = new ClusterMember({
      id: this.id,
      clock,
      logger: log,
      random: Math.random,
      storage: this.store,
      initial: opened.initial,
      link: { send: (to, frame) => this.transport.send(to, frame) },
      deferTurn: setImmediate,
      runtime,
      checkpoints: docker,
      standbys: docker,
      blobs: (cluster) =>
        new ClusterBlobs({
          cluster,
          store: blobStore,
          transfer: this.blobPeer,
          replicas: REPLICAS,
          gcMinAgeMs: opts.blobGcMinAgeMs,
          clock,
          metrics: { repairs: this.metrics.blobRepairs, gcDeletedBytes: this.metrics.gcDeletedBytes, underReplicated: this.metrics.blobsUnderReplicated },
          logger: log,
        }),
      self,
      options: { ...opts, workDir: opts.dataDir, jobMaxima },
      metrics: this.metrics,
      knownPeers: new Map([...this.bootstrapPeers, ...opened.joinedPeers]),
      onPeers: (peers) => this.transport.setPeers(peers),
    });
    const member = this.member;
    images.current = new ClusterImages({ nodeId: this.id, blobs: member.blobs, table: () => member.state.blobs, readBarrier: () => member.raft.readBarrier(), logger: log });
    if (docker) {
      // The box stayed up while workrs restarted: containers of this node keep running
      // and are watched again; the next reconcile stops any the state no longer assigns here.
      const adopted = await docker.adopt((key, exitCode) => member.worker.adoptedExit(key, exitCode));
      if (adopted.length > 0) log.warn({ adopted }, 'adopted containers that survived a restart of workrs');
    }
    // The folders of standbys an earlier run prepared (their containers went in adopt).
    await member.standbys?.removeLeftovers();
    member.start();

    const uploadDir = join(opts.dataDir, 'uploads');
    const leftovers = await prepareUploadDir(uploadDir);
    if (leftovers.length > 0) log.info({ count: leftovers.length, names: leftovers.slice(0, 10) }, 'removed uploads an earlier run left behind');
    const stagingDir = join(opts.dataDir, 'staging');
    mkdirSync(stagingDir, { recursive: true });
    const backend = new NodeBackend({
      member,
      images: images.current,
      runtime,
      clock,
      stagingDir,
      maxPendingJobs: opts.maxPendingJobs,
      jobMaxima,
      clusterId: () => opened.clusterId,
      bootstrapPeers: this.bootstrapPeers,
      peerTls: (expect) => tls?.clientOptions(expect, this.revoked),
    });
    const enrollServer = this.enrollServer;
    const secure =
      tls && enrollServer
        ? {
            tls: tls.serverOptions(),
            credentials: {
              nodeOf: (req: { socket: unknown }) => peerNodeOf(req.socket, this.revoked),
              token: (id: string) => member.state.tokens.get(id),
              now: () => clock.now(),
              // A refused barrier (no leader) leaves the token unknown: 401 as before.
              catchUp: sharedBarrier(() => member.raft.readBarrier().catch(() => undefined)),
            },
            caPem: tls.caPem,
            caFingerprint: tls.fingerprint,
            enroll: (req: Parameters<EnrollServer['handle']>[0], res: Parameters<EnrollServer['handle']>[1]) => enrollServer.handle(req, res),
          }
        : null;
    const httpRequests = this.metrics.httpRequests;
    this.gateway = createGateway({
      backend,
      secure,
      uploadDir,
      maxImageBytes: opts.maxImageBytes,
      logger: log.child({ component: 'api' }),
      // A method the router does not know is one label value, not one per method sent.
      onAnswered: (method, route, status, seconds) => httpRequests.observe(seconds, { method: KNOWN_METHODS.has(method) ? method : 'other', route, status: String(status) }),
    });
    await new Promise<void>((resolve, reject) => {
      this.gateway.once('error', reject);
      this.gateway.listen(opts.api.port, opts.api.host, () => resolve());
    });
    const standbys = member.standbys;
    this.metrics.registry.withProcessMetrics();
    this.metrics.addGauges({
      nodeId: this.id,
      raft: member.raft,
      state: () => member.state,
      peerLinks: () => this.transport.stats().peers,
      ...(standbys ? { standbysReady: () => standbys.readyCount } : {}),
    });
  }

  private selfInfo(): NodeInfo {
    return {
      id: this.id,
      api: hostPort(this.opts.api),
      peer: hostPort(this.opts.peer),
      slots: this.opts.slots,
      memoryMB: Math.floor(totalmem() / (1024 * 1024)),
      versions: { docker: this.opts.runtime === 'fake' ? 'fake' : 'unknown', criu: 'unknown', kernel: release() },
      ...(this.tls ? { cert: this.tls.serial } : {}),
    };
  }

  /** UNSAFE, tests only (WORKRS_TEST_HOOKS=corrupt-state): ClusterState.corruptForTest on this node's replica. */
  corruptStateForTest(): string {
    return this.member.state.corruptForTest();
  }

  /**
   * Graceful stop (SIGTERM): a last checkpoint of every job running here, committed;
   * their containers stopped (so no copy runs on once the leader moves them); then
   * leadership handed off and everything closed. The leader declares this node lost
   * after nodeTimeoutMs and the jobs resume elsewhere from those checkpoints.
   */
  async stop(): Promise<void> {
    const { member } = this;
    await member.quiesce();
    await drainJobs(member.runtime, member.worker.checkpointer, this.log).catch((err: unknown) => this.log.error({ err }, 'draining the jobs of this node failed'));
    await handOffLeadership(member.raft, this.id, this.clock);
    await closeApiServer(this.gateway);
    await member.raft.stop();
    this.blobPeer.close();
    await this.transport.close();
    await this.store.close();
  }
}

/**
 * The Docker runtime, imported only by a node that runs it: Docker's client library
 * (dockerode, with ssh2 and gRPC) would cost a --runtime fake node memory it never
 * uses (scripts/build.mjs keeps it out of the executable's main script).
 */
async function dockerRuntime(endpoint: string, opts: Omit<DockerRuntimeOptions, 'docker'>): Promise<DockerRuntime> {
  const [{ DockerRuntime }, { connectDocker }] = await Promise.all([import('../worker/docker-runtime.js'), import('../worker/docker-endpoint.js')]);
  return new DockerRuntime({ docker: connectDocker(endpoint), ...opts });
}
