// One Workrs node: gateway, Raft member, worker and (as leader) scheduler, wired
// together. Everything that decides is elsewhere and pure (raft/, src/state,
// src/scheduler); this file owns processes, timers and sockets.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Raft } from '../../raft/raft.js';
import type { Entry, NodeId, Snapshot } from '../../raft/types.js';
import { HttpError, sendError } from '../api/http.js';
import { Registry } from '../api/metrics.js';
import { createGateway, type GatewayBackend } from '../api/server.js';
import { prepareUploadDir } from '../api/upload-dir.js';
import { TooManyPendingError } from '../api/backlog.js';
import { buildJobPage, type JobListQuery, type JobPage } from '../api/job-list.js';
import type { NodeOptions } from '../config/node-options.js';
import { WorkrsError } from '../errors.js';
import { plan } from '../scheduler/plan.js';
import { planRetention } from '../scheduler/retention.js';
import { DEFAULT_PRIORS, planPolicies, type PolicyPriors } from '../scheduler/policy.js';
import { ClusterState, compareIds } from '../state/machine.js';
import { validateJobSpec, type Command, type NodeInfo } from '../state/commands.js';
import { resourcesAboveMaximum, type ResourceMaxima } from '../state/spec.js';
import type { ApplyResult } from '../state/result.js';
import { RaftStore } from '../storage/raft-store.js';
import { BlobPeer, BlobStore } from '../blobs/index.js';
import { ClusterImages, type ImportResult } from '../images/cluster-images.js';
import type { ImageView } from '../images/references.js';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import { extractTar } from '../util/tar-extract.js';
import { RESULT_LOG } from '../worker/result-archive.js';
import { pipeline } from 'node:stream/promises';
import type { Assignment, NodeView } from '../state/views.js';
import { PeerTransport } from '../transport/index.js';
import { FakeRuntime } from '../worker/fake-runtime.js';
import { DockerRuntime } from '../worker/docker-runtime.js';
import { connectDocker } from '../worker/docker-endpoint.js';
import type { ContainerRuntime, RunKey } from '../worker/runtime.js';
import { Worker } from '../worker/worker.js';
import { Checkpointer } from '../worker/checkpointer.js';
import { repairsFor } from '../blobs/repair.js';
import { VERSION } from '../version.js';
import { NoLeaderError } from './errors.js';
import { clusterIdFromBootstrap, isClusterId, newClusterId, readClusterId, writeClusterId } from './cluster-id.js';
import { parsePeerFrame, type PeerFrame } from './frames.js';
import { Proposer, validateCommand } from './proposer.js';
import { addressProblem, admitForwarded, apiRegistration, hostPortProblem } from './registration.js';
import { RaftNode, type Application } from './raft-node.js';
import { callNode, callNodeJson } from './node-http.js';
import { newToken, type Principal } from '../api/roles.js';
import type { TokenView } from '../api/server.js';
import { TOKEN_ROLES, type TokenRole } from '../state/commands.js';
import { EnrollServer, ENROLL_PATH } from '../tls/enroll.js';
import { certificateHosts, obtainIdentity, peerNodeOf, type NodeTls } from '../tls/node-tls.js';
import { JoinSecret } from '../tls/secret.js';

const LEADER_LOOP_MS = 200;
/** Copies of every input file, checkpoint and result before it counts (DESIGN.md: k, default 2). */
const REPLICAS = 2;
/** How often a node looks for blobs it holds that lost copies (src/blobs/repair.ts). */
const REPAIR_INTERVAL_MS = 1000;
const JOIN_TIMEOUT_MS = 30_000;
/** How often the leader looks for jobs and blobs to forget (scheduler/retention.ts), and how many batches per look. */
const RETENTION_INTERVAL_MS = 5000;
const RETENTION_MAX_COMMANDS = 8;
/** The most of another node's error answer a proxied log request reads. */
const PROXY_ERROR_BODY_BYTES = 64 * 1024;
/** A graceful stop waits this long for the last checkpoints of its jobs. */
const DRAIN_CHECKPOINT_MS = 60_000;

function hostPort(h: { host: string; port: number }): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

function rejectionToHttp(r: Extract<ApplyResult, { ok: false }>): HttpError {
  const status = r.code === 'JOB_NOT_FOUND' || r.code === 'NODE_UNKNOWN' || r.code === 'TOKEN_UNKNOWN' ? 404 : r.code === 'INVALID_COMMAND' ? 400 : 409;
  return new HttpError(status, r.code, r.message);
}

/** The longest a token may live: ten years. */
const MAX_TOKEN_TTL_SECONDS = 10 * 365 * 86_400;

/** POST /v1/acl/tokens's body: { role, name?, ttlSeconds? }. */
function parseTokenRequest(body: unknown): { role: TokenRole; name: string; ttlSeconds: number | null } {
  const bad = (message: string): never => {
    throw new HttpError(400, 'BAD_TOKEN_REQUEST', message);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('expected a JSON object { role, name?, ttlSeconds? }');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!['role', 'name', 'ttlSeconds'].includes(key)) bad(`unknown field ${key} (allowed: role, name, ttlSeconds)`);
  if (!TOKEN_ROLES.includes(b.role as TokenRole)) bad(`role must be one of ${TOKEN_ROLES.join(', ')}`);
  const name = b.name === undefined ? '' : b.name;
  if (typeof name !== 'string' || Buffer.byteLength(name) > 64 || /[\u0000-\u001f]/.test(name)) bad('name must be a string of at most 64 bytes, no control characters');
  const ttl = b.ttlSeconds;
  if (ttl !== undefined && ttl !== null && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_SECONDS)) bad(`ttlSeconds must be an integer from 1 to ${MAX_TOKEN_TTL_SECONDS}`);
  return { role: b.role as TokenRole, name: name as string, ttlSeconds: typeof ttl === 'number' ? ttl : null };
}

export class WorkrsNode implements GatewayBackend, Application {
  state = new ClusterState();
  readonly id: NodeId;
  private readonly opts: NodeOptions;
  private readonly log: Logger;
  private store!: RaftStore;
  blobs!: BlobStore;
  blobPeer!: BlobPeer;
  images!: ClusterImages;
  private transport!: PeerTransport;
  private raft!: RaftNode;
  private gateway!: Server | HttpsServer;
  /** Secure mode: this node's certificate and the cluster CA; null in dev mode. */
  tls: NodeTls | null = null;
  private enrollServer: EnrollServer | null = null;
  private worker!: Worker;
  private runtime!: ContainerRuntime;
  private gatewayProposer!: Proposer;
  private schedulerProposer: Proposer | null = null;
  private schedulerTerm = -1;
  private readonly bootstrapPeers = new Map<NodeId, string>();
  /** cluster-id.ts: labels this node's containers. */
  private clusterId = '';
  private readonly joinedPeers = new Map<NodeId, string>();
  /** Leader only: last lease renewal per node, on the leader's clock. */
  private readonly leases = new Map<NodeId, number>();
  private lastLeaseAckMs = 0;
  private registered = false;
  private registering = false;
  /** This node's record's "api peer" as last seen at a registration (null: none); undefined before the first look. */
  private ownRecordSeen: string | null | undefined = undefined;
  private leaderRound = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly registry = new Registry();
  private readonly proposalsTotal = this.registry.counter('workrs_gateway_requests_total', 'Gateway write requests by outcome');
  private readonly nodeLossesTotal = this.registry.counter('workrs_node_losses_total', 'Nodes this leader declared lost');
  private readonly gcDeletedBytesTotal = this.registry.counter('workrs_blob_gc_deleted_bytes_total', 'Bytes of chunks the blob gc deleted (old checkpoints, fenced results, finished inputs)');
  private gcRunning = false;
  private readonly blobRepairsTotal = this.registry.counter('workrs_blob_repairs_total', 'Copies of under-replicated blobs this node pushed to another node after their holders were lost');
  private repairRunning = false;
  /** A loss came in during a round: run another right after it. */
  private repairAgain = false;
  private repairProposer: Proposer | null = null;
  private readonly reportsRejectedTotal = this.registry.counter('workrs_reports_rejected_total', "This node's worker reports the state machine refused (the epoch fence at work), by report and code");
  private pokeScheduled = false;
  /** Leader only: per running auto job, the epoch:checkpoints it was last planned at (scheduler/policy.ts). */
  private readonly policyPlanned = new Map<string, string>();
  private lastRetentionMs = 0;
  private readonly fencesTotal = this.registry.counter('workrs_worker_fences_total', 'Attempts this worker froze at a lost lease, and thawed when it came back, by what');
  private readonly jobsForgottenTotal = this.registry.counter('workrs_jobs_forgotten_total', 'Final jobs this leader forgot after jobRetentionSeconds');
  private readonly blobsForgottenTotal = this.registry.counter('workrs_blobs_forgotten_total', 'Blob records this leader forgot once no job needed them');
  private readonly leaseAcksWithheldTotal = this.registry.counter('workrs_lease_acks_withheld_total', 'Lease renewals this node, leading, did not grant: its quorum had not answered within an election timeout');
  private readonly peerFramesDroppedTotal = this.registry.counter('workrs_peer_frames_dropped_total', 'Frames from peers dropped unacted on, by reason (malformed, out_of_range, wrong_sender, misaddressed, stranger)');
  /** Leader only: voters with no node record yet, since when Raft has not heard from them. */
  private readonly silentUnregistered = new Map<NodeId, number>();

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

  // ---------------------------------------------------------------- start and stop

  private async boot(): Promise<void> {
    const { opts } = this;
    mkdirSync(opts.dataDir, { recursive: true });
    this.store = await RaftStore.open(join(opts.dataDir, 'raft'));
    let initial = await this.store.load();
    const fresh = initial.hardState.term === 0 && initial.entries.length === 0 && initial.snapshot === null;

    this.blobs = await BlobStore.open(join(opts.dataDir, 'blobs'), { logger: this.log.child({ component: 'blobs' }) });
    if (opts.secret) await this.obtainTls(opts.secret, fresh);
    const tls = this.tls;
    const revoked = (serial: string): boolean => this.state.certRevoked(serial);
    const nodeOf = (socket: unknown): string | null => peerNodeOf(socket, revoked)?.id ?? null;
    // Secure mode: certificates authenticate peers, and the handshake's proofs use the
    // empty key; dev mode: the empty key on loopback.
    const peerTls = tls ? { client: (peerId: string) => tls.clientOptions(peerId, revoked), nodeOf } : undefined;
    this.blobPeer = new BlobPeer({ store: this.blobs, nodeId: this.id, token: null, ...(peerTls ? { tls: peerTls } : {}), addressOf: (id) => this.peerAddressOf(id), logger: this.log.child({ component: 'bulk' }) });
    this.transport = await PeerTransport.start({
      id: this.id,
      listen: opts.peer,
      token: null,
      ...(tls && peerTls ? { tls: { server: tls.serverOptions(), ...peerTls } } : {}),
      logger: this.log.child({ component: 'transport' }),
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
    this.transport.onFrame((from, frame) => this.raft?.receive(from, frame));
    this.images = new ClusterImages({
      nodeId: this.id,
      blobs: this.blobs,
      table: () => this.state.blobs,
      replicate: (id, count) => this.replicate(id, count),
      replicas: REPLICAS,
      readBarrier: () => this.raft.readBarrier(),
      ensureBlob: async (id) => void (await this.ensureBlob(id)),
      propose: (cmd) => this.gatewayProposer.send(cmd),
      logger: this.log,
    });

    if (fresh) {
      if (opts.bootstrap.size > 0) {
        this.clusterId = clusterIdFromBootstrap(this.bootstrapPeers);
        writeClusterId(opts.dataDir, this.clusterId);
        initial = Raft.bootstrap([...opts.bootstrap.keys()].sort());
        await this.store.save({ hardState: initial.hardState, snapshot: null, entries: initial.entries });
        this.log.info({ voters: [...opts.bootstrap.keys()], cluster: this.clusterId }, 'bootstrapped a new cluster');
      } else if (opts.join) {
        this.clusterId = await this.joinThrough(opts.join);
        writeClusterId(opts.dataDir, this.clusterId);
        initial = Raft.empty();
      } else {
        throw new WorkrsError('BAD_CONFIG', 400, `the data folder ${opts.dataDir} is empty: give --bootstrap to start a new cluster or --join to join one`);
      }
    }

    if (!fresh) {
      const kept = readClusterId(opts.dataDir);
      this.clusterId = kept ?? (opts.bootstrap.size > 0 ? clusterIdFromBootstrap(this.bootstrapPeers) : newClusterId());
      if (kept === null) writeClusterId(opts.dataDir, this.clusterId);
    }
    const dockerRuntime =
      opts.runtime === 'docker'
        ? new DockerRuntime({
            docker: connectDocker(opts.docker),
            nodeId: this.id,
            clusterId: this.clusterId,
            stagingDir: join(opts.dataDir, 'staging'),
            logger: this.log.child({ component: 'docker' }),
            images: (ref) => this.images.open(ref),
            limits: opts.jobLimits,
          })
        : null;
    this.runtime = dockerRuntime ?? new FakeRuntime();
    this.raft = new RaftNode({
      raft: {
        id: this.id,
        electionTicks: opts.electionTicks,
        heartbeatTicks: opts.heartbeatTicks,
        random: Math.random,
        preVote: true,
        checkQuorum: true,
        maxSizePerMsgBytes: 1024 * 1024,
        maxInflightMsgs: 256,
        maxInflightBytes: 64 * 1024 * 1024,
        maxUncommittedBytes: 256 * 1024 * 1024,
        snapshotChunkBytes: 1024 * 1024,
      },
      initial,
      store: this.store,
      link: { send: (to, frame) => this.transport.send(to, frame) },
      app: this,
      logger: this.log,
      tickMs: opts.tickMs,
      compactEveryEntries: opts.compactEveryEntries,
      requestTimeoutMs: 10_000,
      onOtherFrame: (from, frame) => this.onFrame(from, frame),
      onFrameDropped: (reason) => this.peerFramesDroppedTotal.inc({ reason }),
      admitForwarded,
    });
    this.gatewayProposer = new Proposer(this.raft, 'gw', this.id);
    const workerProposer = new Proposer(this.raft, 'wk', this.id);
    this.worker = new Worker({
      nodeId: this.id,
      runtime: this.runtime,
      proposer: workerProposer,
      assignments: () => this.state.assignmentsFor(this.id),
      leaseValid: () => this.leaseValid(),
      // Frozen at a lost lease, stopped a node timeout later: an election (no leader
      // to renew with for a second or two) then costs the jobs a pause, not their run.
      fenceStopAfterMs: this.opts.nodeTimeoutMs,
      onFence: (what) => this.fencesTotal.inc({ what }),
      prepareInputs: (a) => this.prepareInputs(a),
      releaseInputs: (a) => rm(this.inputsDir(a), { recursive: true, force: true }),
      publishResult: (key, exitCode) => this.publishResult(key, exitCode),
      maxima: this.jobMaxima(),
      onReportRejected: (what, code) => this.reportsRejectedTotal.inc({ report: what, code }),
      ...(dockerRuntime
        ? {
            checkpointer: new Checkpointer({
              nodeId: this.id,
              runtime: dockerRuntime,
              blobs: this.blobs,
              replicate: (id, count) => this.replicate(id, count),
              replicas: REPLICAS,
              proposer: new Proposer(this.raft, 'cp', this.id),
              logger: this.log,
            }),
            prepareCheckpoint: (a: Assignment) => this.prepareCheckpoint(a),
            restore: (a: Assignment, dir: string, onExit: (code: number) => void) => dockerRuntime.restore(a, dir, onExit),
          }
        : {}),
      logger: this.log,
    });
    if (dockerRuntime) {
      // The box stayed up while workrs restarted: containers of this node keep running
      // and are watched again; the next reconcile stops any the state no longer assigns here.
      const adopted = await dockerRuntime.adopt((key, exitCode) => this.worker.adoptedExit(key, exitCode));
      if (adopted.length > 0) this.log.warn({ adopted }, 'adopted containers that survived a restart of workrs');
    }
    this.refreshPeers();
    this.raft.start();

    const uploadDir = join(opts.dataDir, 'uploads');
    const leftovers = await prepareUploadDir(uploadDir);
    if (leftovers.length > 0) this.log.info({ count: leftovers.length, names: leftovers.slice(0, 10) }, 'removed uploads an earlier run left behind');
    mkdirSync(join(opts.dataDir, 'staging'), { recursive: true });
    const enrollServer = this.enrollServer;
    const secure =
      tls && enrollServer
        ? {
            tls: tls.serverOptions(),
            credentials: { nodeOf: (req: { socket: unknown }) => peerNodeOf(req.socket, revoked), token: (id: string) => this.state.tokens.get(id), now: Date.now },
            caPem: tls.caPem,
            caFingerprint: tls.fingerprint,
            enroll: (req: Parameters<EnrollServer['handle']>[0], res: Parameters<EnrollServer['handle']>[1]) => enrollServer.handle(req, res),
          }
        : null;
    this.gateway = createGateway({ backend: this, secure, uploadDir, maxImageBytes: opts.maxImageBytes, logger: this.log.child({ component: 'api' }) });
    await new Promise<void>((resolve, reject) => {
      this.gateway.once('error', reject);
      this.gateway.listen(opts.api.port, opts.api.host, () => resolve());
    });
    this.registerMetrics();

    this.timers.push(setInterval(() => void this.leaderLoop(), LEADER_LOOP_MS));
    this.timers.push(setInterval(() => this.renewLease(), opts.leaseRenewMs));
    this.timers.push(setInterval(() => this.worker.poke(), 1000));
    this.timers.push(setInterval(() => void this.collectGarbage(), opts.blobGcIntervalMs));
    this.timers.push(setInterval(() => void this.repairBlobs(), REPAIR_INTERVAL_MS));
  }

  /** Secure mode: this node's key and certificate, read or obtained (src/tls/node-tls.ts), and the enrollment service. */
  private async obtainTls(secretBytes: Buffer, fresh: boolean): Promise<void> {
    const { opts } = this;
    const secret = new JoinSecret(secretBytes, opts.previousSecret);
    const clusterId = readClusterId(opts.dataDir) ?? (opts.bootstrap.size > 0 ? clusterIdFromBootstrap(this.bootstrapPeers) : newClusterId());
    this.tls = await obtainIdentity({
      dataDir: opts.dataDir,
      nodeId: this.id,
      secret,
      hosts: certificateHosts([opts.api.host, opts.peer.host], opts.tlsSans),
      bootstrap: this.bootstrapPeers,
      // A node with a log but no certificate (a folder from before secure mode) enrolls like a new one.
      join: fresh || opts.bootstrap.size === 0 ? opts.join : null,
      pinnedFingerprint: opts.pinnedCaFingerprint,
      clusterId,
      logger: this.log.child({ component: 'tls' }),
    });
    const tls = this.tls;
    this.enrollServer = new EnrollServer({
      secret,
      issuer: () => (tls.ca ? { ca: tls.ca, wrappedKey: tls.wrappedCaKey } : null),
      onIssued: (nodeId, serial) => this.log.info({ node: nodeId, serial }, 'enrolled a node: issued its certificate'),
    });
    this.log.info({ fingerprint: tls.fingerprint, serial: tls.serial }, 'secure mode: TLS with the cluster CA');
  }

  /**
   * Gives the blobs still needed whose live copies fell below REPLICAS new copies on
   * alive nodes (src/blobs/repair.ts picks which, and one node per blob); one run at a
   * time. The holders are recorded only once the copy is there.
   */
  private async repairBlobs(): Promise<void> {
    if (this.repairRunning) {
      this.repairAgain = true;
      return;
    }
    this.repairRunning = true;
    this.repairAgain = false;
    try {
      this.repairProposer ??= new Proposer(this.raft, 'repair', this.id);
      for (const task of repairsFor(this.state, this.id, REPLICAS)) {
        if (!(await this.blobs.has(task.blob.id, { verify: false }))) continue;
        const added: string[] = [];
        for (const target of task.targets) {
          if (added.length >= task.missing) break;
          if (this.peerAddressOf(target) === null) continue;
          try {
            await this.blobPeer.push(task.blob.id, target);
            added.push(target);
            this.blobRepairsTotal.inc();
          } catch (err) {
            this.log.warn({ err, blob: task.blob.id, node: target }, 'repair copy failed; trying another node');
          }
        }
        if (added.length === 0) continue;
        const { id, kind, bytes } = task.blob;
        const r = await this.repairProposer.send({ type: 'blobAdded', id, kind, bytes, holders: added });
        if (r.ok) this.log.info({ blob: id, kind, bytes, added }, 'blob re-replicated after a holder was lost');
        else this.log.warn({ blob: id, code: r.code }, 'recording a repaired copy was refused');
      }
    } catch (err) {
      this.log.debug({ err }, 'blob repair round interrupted');
    } finally {
      this.repairRunning = false;
      if (this.repairAgain) setImmediate(() => void this.repairBlobs());
    }
  }

  /** Deletes local chunks no live blob needs (views.ts liveBlobs); one run at a time. */
  private async collectGarbage(): Promise<void> {
    if (this.gcRunning || this.raft.status().applied < this.raft.status().commit) return;
    this.gcRunning = true;
    try {
      const r = await this.blobs.gc(this.state.liveBlobs(), { minAgeMs: this.opts.blobGcMinAgeMs });
      this.gcDeletedBytesTotal.inc({}, r.deletedBytes);
      if (r.deletedChunks > 0) this.log.info({ deletedChunks: r.deletedChunks, deletedBytes: r.deletedBytes, keptBytes: r.keptBytes }, 'blob gc');
    } catch (err) {
      this.log.warn({ err }, 'blob gc failed');
    } finally {
      this.gcRunning = false;
    }
  }

  /**
   * Graceful stop (SIGTERM): a last checkpoint of every job running here, committed;
   * their containers stopped (so no copy runs on once the leader moves them); then
   * leadership handed off and everything closed. The leader declares this node lost
   * after nodeTimeoutMs and the jobs resume elsewhere from those checkpoints.
   */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.worker.halt();
    await this.drain().catch((err: unknown) => this.log.error({ err }, 'draining the jobs of this node failed'));
    const st = this.raft.status();
    if (st.role === 'leader') {
      const target = st.conf.voters.find((v) => v !== this.id && st.progress?.[v]?.recentActive);
      if (target) {
        this.raft.transferLeadership(target);
        const deadline = Date.now() + 2000;
        while (this.raft.status().role === 'leader' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      }
    }
    await new Promise<void>((r) => this.gateway.close(() => r()));
    this.gateway.closeAllConnections();
    await this.raft.stop();
    this.blobPeer.close();
    await this.transport.close();
    await this.store.close();
  }

  private async drain(): Promise<void> {
    const running = await this.runtime.running();
    if (running.length === 0) return;
    const checkpointer = this.worker.checkpointer;
    if (checkpointer) {
      const saved = await checkpointer.final(DRAIN_CHECKPOINT_MS);
      this.log.warn({ checkpointed: saved.map((k) => `${k.jobId}@${k.epoch}`), running: running.length }, 'stopping: took a last checkpoint of the jobs running here');
    }
    for (const key of running) await this.runtime.stop(key).catch((err: unknown) => this.log.error({ err, job: key.jobId }, 'stopping a job at shutdown failed'));
  }

  /** Joins as a learner through a member's API; returns the cluster's id. */
  private async joinThrough(url: string): Promise<string> {
    const body = this.selfInfo();
    const deadline = Date.now() + JOIN_TIMEOUT_MS;
    for (;;) {
      try {
        const res = await callNodeJson(new URL(url).host, '/v1/cluster/nodes', { method: 'POST', body: JSON.stringify(body), timeoutMs: 15_000, ...this.nodeTls(null) });
        const answer = (res.body ?? {}) as { peers?: Record<string, string>; clusterId?: unknown; error?: { message: string } };
        if (res.status === 200 && answer.peers) {
          for (const [id, addr] of Object.entries(answer.peers)) if (id !== this.id) this.joinedPeers.set(id, addr);
          this.log.info({ via: url, peers: answer.peers, cluster: answer.clusterId }, 'joined the cluster as a learner');
          return isClusterId(answer.clusterId) ? answer.clusterId : newClusterId();
        }
        if (res.status < 500) throw new WorkrsError('JOIN_REFUSED', 400, `joining through ${url} was refused: ${answer.error?.message ?? res.status}`);
      } catch (err) {
        if (err instanceof WorkrsError || Date.now() > deadline) throw err;
        this.log.warn({ err }, 'join attempt failed; retrying');
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Secure mode: how this node's calls reach node `expect` (any node when null); nothing in dev mode. */
  private nodeTls(expect: string | null): { tls?: ReturnType<NodeTls['clientOptions']> } {
    return this.tls ? { tls: this.tls.clientOptions(expect, (serial) => this.state.certRevoked(serial)) } : {};
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

  // ---------------------------------------------------------------- the replicated application

  apply(index: number, data: Uint8Array): unknown {
    const before = this.state.nodes.size;
    const departures = this.state.departureCount;
    const registrations = this.state.registrationCount;
    const result = this.state.applyBytes(index, data);
    // A registration may have moved a node (or brought one back): reach it at its new address.
    if (this.state.nodes.size !== before || this.state.registrationCount !== registrations) {
      this.refreshPeers();
      this.noticeOwnRecord();
    }
    // A node just lost may have held the only other copy of a checkpoint: repair now,
    // not at the next round (the job may be resuming on the last holder).
    if (this.state.departureCount !== departures) setImmediate(() => void this.repairBlobs());
    this.schedulePoke();
    return result;
  }

  applyConfChange(_entry: Extract<Entry, { type: 'confChange' }>): void {
    this.refreshPeers();
  }

  snapshot(): Uint8Array {
    return this.state.snapshot();
  }

  restore(snapshot: Snapshot): void {
    this.state = ClusterState.restore(snapshot.data);
    this.refreshPeers();
    this.noticeOwnRecord();
    this.schedulePoke();
  }

  private schedulePoke(): void {
    if (this.pokeScheduled) return;
    this.pokeScheduled = true;
    setImmediate(() => {
      this.pokeScheduled = false;
      this.worker?.poke();
    });
  }

  /** Peer addresses: the bootstrap list, then what joining told us, then the replicated nodes table (newest). */
  private refreshPeers(): void {
    if (!this.transport) return;
    const peers = new Map<NodeId, string>([...this.bootstrapPeers, ...this.joinedPeers]);
    for (const n of this.state.nodes.values()) if (n.state !== 'left') peers.set(n.id, n.peer);
    peers.delete(this.id);
    // Registrations are checked before they are proposed (registration.ts), but a log
    // written before that may hold an address that is not host:port: that peer is
    // left out, since the transport would refuse the whole set and apply would fail.
    for (const [id, address] of peers) {
      const problem = hostPortProblem(address);
      if (problem === null) continue;
      peers.delete(id);
      this.log.warn({ peer: id, problem }, 'peer left out: its registered address is not host:port');
    }
    this.transport.setPeers(peers);
  }

  /**
   * Only this node sets its own addresses (registration.ts), yet a registration of
   * its id that it did not make can still land (an API join racing its first one, or a
   * holder of the token posing as it on a peer link). When this node's record changes
   * to addresses that are not its own, it registers again: the table follows the node.
   */
  private noticeOwnRecord(): void {
    const n = this.state.nodes.get(this.id);
    const current = n === undefined || n.state === 'left' ? null : `${n.api} ${n.peer}`;
    const changed = this.ownRecordSeen !== undefined && current !== this.ownRecordSeen;
    this.ownRecordSeen = current;
    if (!changed || !this.registered || current === null || current === `${hostPort(this.opts.api)} ${hostPort(this.opts.peer)}`) return;
    this.registered = false;
    this.log.warn({ registered: current }, 'this node\'s record names addresses that are not its own; registering again');
  }

  /** A node's peer address from the replicated node table; null for an unknown node or one that left. */
  private peerAddressOf(id: NodeId): string | null {
    const n = this.state.nodes.get(id);
    return n === undefined || n.state === 'left' ? null : n.peer;
  }

  // ---------------------------------------------------------------- leases and the leader's loop

  private onFrame(from: NodeId, frame: PeerFrame): void {
    if (frame.k === 'lease') {
      if (this.raft.status().role !== 'leader') return;
      // The renewal is recorded either way (the node is alive); the ack, which lets it
      // run its jobs for another lease, only while this leader still has its quorum.
      this.leases.set(from, Date.now());
      if (!this.raft.hasQuorumContact(this.electionTimeoutMs())) {
        this.leaseAcksWithheldTotal.inc();
        return;
      }
      this.transport.send(from, { k: 'leaseAck', at: frame.at });
    } else if (frame.k === 'leaseAck') {
      // `at` is our own clock's send time: the lease counts from when we asked. Only the
      // leader grants it, and never from the future: an ack with a later `at` would
      // keep this worker's lease valid for good, wherever the leader is.
      if (from !== this.raft.status().leader) return;
      this.lastLeaseAckMs = Math.max(this.lastLeaseAckMs, Math.min(frame.at, Date.now()));
    }
  }

  private renewLease(): void {
    const st = this.raft.status();
    if (st.role === 'leader') {
      this.leases.set(this.id, Date.now());
      if (this.raft.hasQuorumContact(this.electionTimeoutMs())) this.lastLeaseAckMs = Date.now();
      else this.leaseAcksWithheldTotal.inc();
    } else if (st.leader !== null) {
      this.transport.send(st.leader, { k: 'lease', at: Date.now() });
    }
    if (!this.registered) void this.register();
    this.worker.poke();
  }

  /** The shortest election timeout: a leader not answered by its quorum for this long may already be replaced. */
  private electionTimeoutMs(): number {
    return this.opts.electionTicks * this.opts.tickMs;
  }

  private leaseValid(): boolean {
    return Date.now() - this.lastLeaseAckMs < this.opts.leaseTimeoutMs;
  }

  /** Announces this node (addresses, capacity) once per process start. */
  private async register(): Promise<void> {
    if (this.registering || this.raft.status().leader === null) return;
    this.registering = true;
    try {
      const r = await this.gatewayProposer.once({ type: 'nodeJoined', node: this.selfInfo() });
      if (r.ok) {
        this.registered = true;
        this.log.info('registered with the cluster');
      } else {
        this.log.warn({ code: r.code, message: r.message }, 'registration refused');
      }
    } catch (err) {
      this.log.debug({ err }, 'registration not yet possible');
    } finally {
      this.registering = false;
    }
  }

  private async leaderLoop(): Promise<void> {
    const st = this.raft.status();
    if (st.role !== 'leader' || this.leaderRound) return;
    this.leaderRound = true;
    try {
      const now = Date.now();
      if (this.schedulerTerm !== st.term) {
        // A new leader gives every member still counted up a full nodeTimeout to check
        // in. Not the lost ones: a fresh lease would bring them back as alive (and
        // placeable) until they time out again; one that is really up renews its lease
        // and comes back by itself.
        this.schedulerTerm = st.term;
        this.schedulerProposer = new Proposer(this.raft, `sched-t${st.term}`, this.id);
        this.leases.clear();
        for (const n of this.state.nodes.values()) if (n.state === 'alive' || n.state === 'suspect') this.leases.set(n.id, now);
        this.policyPlanned.clear();
        this.silentUnregistered.clear();
      }
      // A node registered after that (a joiner, or a member whose registration applied
      // after this term's first round) gets its nodeTimeout from when this leader first
      // sees its record: without a lease entry the plan keeps its state as it is, so a
      // node that died before its first renewal reached the leader stayed alive for good.
      for (const n of this.state.nodes.values()) if ((n.state === 'alive' || n.state === 'suspect') && !this.leases.has(n.id)) this.leases.set(n.id, now);
      this.leases.set(this.id, now);
      const proposer = this.schedulerProposer;
      if (!proposer) return;
      const commands = plan(this.state, { now, lastSeenMs: this.leases, nodeTimeoutMs: this.opts.nodeTimeoutMs, suspectAfterMs: Math.floor(this.opts.nodeTimeoutMs / 2) });
      for (const cmd of commands) {
        if (this.raft.status().role !== 'leader') break;
        const r = await proposer.once(cmd);
        if (cmd.type === 'nodeLost' && r.ok) {
          this.nodeLossesTotal.inc();
          this.log.warn({ node: cmd.node }, 'node lost: its jobs are re-queued');
        }
        if (!r.ok) this.log.debug({ cmd: cmd.type, code: r.code }, 'scheduler command refused');
      }
      for (const cmd of planPolicies(this.state, now, this.policyPriors(), this.policyPlanned)) {
        if (this.raft.status().role !== 'leader') break;
        const r = await proposer.once(cmd);
        if (r.ok && cmd.type === 'setPolicy') this.log.info({ job: cmd.jobId, policy: cmd.policy }, 'checkpoint policy planned');
      }
      await this.manageVoters();
      if (now - this.lastRetentionMs >= RETENTION_INTERVAL_MS) {
        this.lastRetentionMs = now;
        await this.applyRetention(proposer, now);
      }
    } catch (err) {
      this.log.debug({ err }, 'leader round interrupted');
    } finally {
      this.leaderRound = false;
    }
  }

  /** Forgets old final jobs, then the blobs nobody needs (scheduler/retention.ts), a batch per command. */
  private async applyRetention(proposer: Proposer, now: number): Promise<void> {
    const input = { now, jobRetentionMs: this.opts.jobRetentionSeconds * 1000, blobMinAgeMs: this.opts.blobGcMinAgeMs };
    for (let round = 0; round < RETENTION_MAX_COMMANDS; round++) {
      const [cmd] = planRetention(this.state, input);
      if (!cmd || this.raft.status().role !== 'leader') return;
      const r = await proposer.once(cmd);
      if (!r.ok) {
        this.log.debug({ cmd: cmd.type, code: r.code }, 'retention command refused');
        return;
      }
      const forgotten = (r.value as { forgotten?: string[] }).forgotten ?? [];
      if (cmd.type === 'forgetJobs') this.jobsForgottenTotal.inc({}, forgotten.length);
      else this.blobsForgottenTotal.inc({}, forgotten.length);
      this.log.info({ cmd: cmd.type, count: forgotten.length }, 'retention');
      if (forgotten.length === 0) return; // nothing moved: do not spin on it
    }
  }

  private policyPriors(): PolicyPriors {
    return {
      ...DEFAULT_PRIORS,
      failure: { mtbfSeconds: this.opts.mtbfPriorSeconds, weight: this.opts.mtbfPriorWeight },
      restartSeconds: this.opts.restartPriorSeconds,
      detectionSeconds: this.opts.nodeTimeoutMs / 1000,
    };
  }

  /**
   * Keeps `opts.voters` voters among healthy nodes, one change at a time: promote a
   * caught-up alive learner while voters are missing or a voter is lost, then demote
   * lost voters to learners (they can be promoted again when they come back).
   */
  private async manageVoters(): Promise<void> {
    const st = this.raft.status();
    if (st.role !== 'leader' || !st.progress) return;
    const alive = (id: NodeId): boolean => {
      const n = this.state.nodes.get(id);
      return n !== undefined && n.state === 'alive';
    };
    const lostVoters = st.conf.voters.filter((v) => v !== this.id && (this.state.nodes.get(v)?.state === 'lost' || this.silentWithoutRecord(v, st.progress?.[v]?.recentActive ?? false)));
    const healthyVoters = st.conf.voters.length - lostVoters.length;
    if (healthyVoters < this.opts.voters) {
      const candidate = st.conf.learners
        .filter((l) => alive(l) && (st.progress?.[l]?.recentActive ?? false) && (st.progress?.[l]?.match ?? 0) + 100 >= st.commit)
        .sort()[0];
      if (candidate) {
        this.log.warn({ node: candidate }, 'promoting a learner to voter');
        await this.raft.proposeConfChange({ type: 'addVoter', node: candidate });
        return;
      }
    }
    // Demote a lost voter only once a replacement keeps the target count healthy:
    // with no spare node, the lost voter stays a voter, so the quorum it is part of
    // is whole again the moment it returns.
    const lost = lostVoters[0];
    if (lost && healthyVoters >= this.opts.voters) {
      this.log.warn({ node: lost }, 'demoting a lost voter to learner');
      await this.raft.proposeConfChange({ type: 'addLearner', node: lost });
    }
  }

  /**
   * A voter that died before it registered has no node record to declare lost, so it
   * would stay a voter for good. Raft's own contact stands in for the lease: one the
   * leader has not heard from for a node timeout counts as lost for voter management.
   */
  private silentWithoutRecord(id: NodeId, recentActive: boolean): boolean {
    if (this.state.nodes.has(id) || recentActive) {
      this.silentUnregistered.delete(id);
      return false;
    }
    const now = Date.now();
    const since = this.silentUnregistered.get(id) ?? now;
    this.silentUnregistered.set(id, since);
    return now - since > this.opts.nodeTimeoutMs;
  }

  // ---------------------------------------------------------------- the gateway backend

  /** The most one job may ask for on this node (--max-job-memory-mb, --max-job-cpus). */
  private jobMaxima(): ResourceMaxima {
    return { memoryMB: this.opts.jobLimits.maxMemoryMB, cpus: this.opts.jobLimits.maxCpus };
  }

  private async barrier(stale: boolean): Promise<void> {
    if (!stale) await this.raft.readBarrier();
  }

  async submitJob(input: unknown, idempotencyKey: string | null, files: Map<string, string> = new Map()): Promise<{ id: string; state: string }> {
    const checked = validateJobSpec(input);
    if (!checked.ok) {
      this.proposalsTotal.inc({ outcome: 'invalid' });
      throw new HttpError(400, 'INVALID_SPEC', checked.errors.map((e) => `${e.field}: ${e.message}`).join('; '), checked.errors);
    }
    // A node setting, so checked here before proposing, never in apply.
    const above = resourcesAboveMaximum(checked.spec, this.jobMaxima());
    if (above.length > 0) {
      this.proposalsTotal.inc({ outcome: 'invalid' });
      throw new HttpError(400, 'RESOURCES_ABOVE_MAXIMUM', above.map((e) => `${e.field}: ${e.message}`).join('; '), above);
    }
    const declared = [...checked.spec.files].sort();
    const uploaded = [...files.keys()].sort();
    if (JSON.stringify(declared) !== JSON.stringify(uploaded)) {
      throw new HttpError(400, 'FILES_MISMATCH', `spec.files names [${declared.join(', ')}] but the upload carries [${uploaded.join(', ')}]`);
    }
    const id = idempotencyKey ? `j-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24)}` : `j-${randomUUID()}`;
    // The backlog cap, checked on this node's applied state before the inputs are
    // stored and anything is proposed; the state machine decides it again in log order
    // (maxPending in the command), so submissions racing through several nodes cannot
    // pass it. A retry of a job that exists already goes on to be answered as such.
    const cap = this.opts.maxPendingJobs;
    const pending = this.state.pendingCount();
    if (!this.state.jobs.has(id) && pending >= cap) {
      this.proposalsTotal.inc({ outcome: 'backlog_full' });
      throw new TooManyPendingError(`${pending} jobs are pending, the most this cluster accepts (maxPendingJobs ${cap})`);
    }
    const inputs = await this.storeInputs(files);
    const job = { id, spec: checked.spec, createdAt: Date.now(), ...(files.size > 0 ? { inputs } : {}) };
    const r = await this.gatewayProposer.send({ type: 'submitJob', job, maxPending: cap });
    if (!r.ok) {
      if (r.code === 'TOO_MANY_PENDING') {
        this.proposalsTotal.inc({ outcome: 'backlog_full' });
        throw new TooManyPendingError(r.message);
      }
      if (r.code === 'JOB_EXISTS') {
        const existing = this.state.jobView(id);
        if (existing && JSON.stringify(existing.spec) !== JSON.stringify(checked.spec) && idempotencyKey) {
          throw new HttpError(409, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different job spec');
        }
        this.proposalsTotal.inc({ outcome: 'duplicate' });
        return { id, state: existing?.state ?? 'pending' };
      }
      throw rejectionToHttp(r);
    }
    this.proposalsTotal.inc({ outcome: 'accepted' });
    return { id, state: 'pending' };
  }

  /**
   * Stores uploaded files as blobs and replicates each to REPLICAS nodes before the
   * job is acknowledged: an acknowledged job must not depend on one box's disk.
   */
  private async storeInputs(files: Map<string, string>): Promise<Record<string, string>> {
    const inputs: Record<string, string> = {};
    for (const [name, path] of files) inputs[name] = await this.storeReplicated(path, 'input');
    return inputs;
  }

  /** A file as a blob here and on REPLICAS − 1 other nodes, registered in the blobs table; its id. */
  private async storeReplicated(path: string, kind: 'input' | 'result'): Promise<string> {
    const put = await this.blobs.putStream(createReadStream(path), kind);
    const holders = [this.id, ...(await this.replicate(put.id, REPLICAS - 1))];
    const r = await this.gatewayProposer.send({ type: 'blobAdded', id: put.id, kind, bytes: put.bytes, holders });
    if (!r.ok) throw rejectionToHttp(r);
    return put.id;
  }

  private inputsDir(a: Assignment): string {
    return join(this.opts.dataDir, 'work', `${a.jobId}-e${a.epoch}`);
  }

  /** Fetches an attempt's input blobs from their holders if needed and writes them as files. */
  private async prepareInputs(a: Assignment): Promise<Map<string, string>> {
    const files = new Map<string, string>();
    const entries = Object.entries(a.inputs);
    if (entries.length === 0) return files;
    const dir = this.inputsDir(a);
    await mkdir(dir, { recursive: true });
    for (const [name, blobId] of entries) {
      await this.ensureBlob(blobId);
      const path = join(dir, name);
      await pipeline(await this.blobs.readStream(blobId), createWriteStream(path));
      files.set(name, path);
    }
    return files;
  }

  /** Fetches the attempt's resume checkpoint from its holders and unpacks it into a fresh folder. */
  private async prepareCheckpoint(a: Assignment): Promise<string> {
    const from = a.fromCheckpoint;
    if (!from) throw new Error(`attempt ${a.jobId}@${a.epoch} has no checkpoint to resume from`);
    // A copy fetched to resume from is one more copy: recorded, so that losing the
    // holder it came from does not leave this node's copy unknown to the cluster.
    if (await this.ensureBlob(from.blob)) void this.recordHolder(from.blob);
    const dir = join(this.opts.dataDir, 'staging', `restore-${a.jobId}-e${a.epoch}-${randomUUID().slice(0, 8)}`);
    await this.blobs.exportFolder(from.blob, dir);
    return dir;
  }

  /** Adds this node to a blob's holders (it has a copy now); best effort. */
  private async recordHolder(blobId: string): Promise<void> {
    const blob = this.state.blobs.get(blobId);
    if (!blob || blob.holders.includes(this.id)) return;
    try {
      this.repairProposer ??= new Proposer(this.raft, 'repair', this.id);
      await this.repairProposer.send({ type: 'blobAdded', id: blob.id, kind: blob.kind, bytes: blob.bytes, holders: [this.id] });
    } catch (err) {
      this.log.debug({ err, blob: blobId }, 'recording this node as a holder failed');
    }
  }

  /** Pulls a blob from the nodes the replicated blobs table lists as holders, unless it is here; true when it pulled it. */
  async ensureBlob(blobId: string): Promise<boolean> {
    if (await this.blobs.has(blobId, { verify: false })) return false;
    const record = this.state.blobs.get(blobId);
    const holders = (record?.holders ?? []).filter((h) => h !== this.id && this.peerAddressOf(h) !== null);
    if (holders.length === 0) throw new WorkrsError('BLOB_UNAVAILABLE', 503, `no reachable holder of ${blobId}`);
    await this.blobPeer.fetch(blobId, holders);
    return true;
  }

  /** Asks up to `count` other alive nodes to pull a blob from this one; returns those that hold it. */
  async replicate(blobId: string, count: number): Promise<string[]> {
    const others = [...this.state.nodes.values()].filter((n) => n.id !== this.id && n.state === 'alive').sort((a, b) => a.id.localeCompare(b.id));
    const holders: string[] = [];
    for (const n of others) {
      if (holders.length >= count) break;
      try {
        await this.blobPeer.push(blobId, n.id);
        holders.push(n.id);
      } catch (err) {
        this.log.warn({ err, blob: blobId, node: n.id }, 'replica push failed; trying another node');
      }
    }
    if (holders.length < count && others.length >= count) {
      throw new WorkrsError('REPLICATION_FAILED', 503, `could not place ${count} more copies of ${blobId}`);
    }
    return holders;
  }

  /**
   * The exited attempt's result archive as a blob on REPLICAS nodes, registered in the
   * blobs table; its id goes into jobExited, with the reason the attempt fails when
   * its outputs exceed the node's result cap. A fenced exit leaves an unreferenced
   * blob for the garbage collector.
   */
  private async publishResult(key: RunKey, exitCode: number): Promise<{ blob: string; failure: string | null }> {
    const outputs = this.state.jobs.get(key.jobId)?.spec.outputs ?? [];
    const dir = join(this.opts.dataDir, 'staging');
    await mkdir(dir, { recursive: true });
    const tarPath = join(dir, `result-${randomUUID()}.tar`);
    try {
      const { failure } = await this.runtime.exportResult(key, exitCode, outputs, tarPath);
      return { blob: await this.storeReplicated(tarPath, 'result'), failure };
    } finally {
      await rm(tarPath, { force: true });
    }
  }

  async jobResult(id: string): Promise<{ stream: Readable; bytes: number }> {
    await this.barrier(false);
    const job = this.state.jobs.get(id);
    if (!job) throw new HttpError(404, 'JOB_NOT_FOUND', `no job ${id}`);
    if (job.state === 'pending' || job.state === 'running') throw new HttpError(409, 'JOB_NOT_FINISHED', `job ${id} is ${job.state}: its result exists once it ends`);
    if (job.resultBlob === null) throw new HttpError(404, 'NO_RESULT', `job ${id} ended (${job.state}) without a result`);
    await this.ensureBlob(job.resultBlob);
    const bytes = this.state.blobs.get(job.resultBlob)?.bytes ?? 0;
    return { stream: await this.blobs.readStream(job.resultBlob), bytes };
  }

  /**
   * The job's output. A finished job's comes from its result archive; a running job's
   * from the node running it (this one, or proxied once: `local` stops a second hop);
   * a pending job has none yet, and with `follow` the answer waits until it runs.
   */
  async jobLogs(id: string, opts: { follow: boolean; local: boolean; signal?: AbortSignal }): Promise<Readable> {
    await this.barrier(false);
    for (;;) {
      const job = this.state.jobs.get(id);
      if (!job) throw new HttpError(404, 'JOB_NOT_FOUND', `no job ${id}`);
      if (job.state !== 'pending' && job.state !== 'running') {
        if (job.resultBlob === null) return Readable.from([]);
        return this.resultLog(job.resultBlob);
      }
      if (job.state === 'running' && job.node !== null) {
        if (job.node === this.id) {
          try {
            return await this.runtime.logs({ jobId: id, epoch: job.epoch }, { follow: opts.follow });
          } catch (err) {
            if (!opts.follow) throw new HttpError(503, 'LOGS_UNAVAILABLE', `job ${id} is not running here yet: ${err instanceof Error ? err.message : String(err)}`);
          }
        } else if (!opts.local) {
          return this.proxyLogs(id, job.node, opts.follow);
        } else {
          throw new HttpError(409, 'NOT_HERE', `job ${id} runs on ${job.node}, not on ${this.id}`);
        }
      }
      if (!opts.follow || opts.signal?.aborted) return Readable.from([]);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  private async resultLog(blobId: string): Promise<Readable> {
    await this.ensureBlob(blobId);
    const dir = await mkdtemp(join(this.opts.dataDir, 'staging', 'log-'));
    try {
      await extractTar(await this.blobs.readStream(blobId), dir, { rename: (name) => (name === RESULT_LOG ? name : null) });
      const out = createReadStream(join(dir, RESULT_LOG));
      out.on('close', () => void rm(dir, { recursive: true, force: true }));
      return out;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  private proxyLogs(id: string, nodeId: string, follow: boolean): Promise<Readable> {
    const api = this.state.nodes.get(nodeId)?.api;
    if (!api) throw new HttpError(503, 'LOGS_UNAVAILABLE', `job ${id} runs on ${nodeId}, whose address is unknown`);
    const path = `/v1/jobs/${encodeURIComponent(id)}/logs?local=1${follow ? '&follow=1' : ''}`;
    // node:http, not fetch: a followed log may stay quiet for longer than fetch's body timeout.
    return new Promise((resolve, reject) => {
      const answered = (res: import('node:http').IncomingMessage): void => {
        if (res.statusCode === 200) {
          const out = new PassThrough();
          res.pipe(out);
          res.on('error', (err) => out.destroy(err));
          out.on('close', () => res.destroy());
          resolve(out);
          return;
        }
        // An error answer is a short JSON body: read no more than PROXY_ERROR_BODY_BYTES of it.
        const chunks: Buffer[] = [];
        let bodyBytes = 0;
        res.on('data', (c: Buffer) => {
          if (bodyBytes >= PROXY_ERROR_BODY_BYTES) return;
          chunks.push(c.subarray(0, PROXY_ERROR_BODY_BYTES - bodyBytes));
          bodyBytes += c.length;
        });
        res.on('end', () => {
          let message = `${nodeId} answered ${res.statusCode}`;
          try {
            message = (JSON.parse(Buffer.concat(chunks).toString()) as { error?: { message?: string } }).error?.message ?? message;
          } catch {
            // not JSON: keep the status
          }
          reject(new HttpError(503, 'LOGS_UNAVAILABLE', `the logs of ${id} are on ${nodeId}: ${message}`));
        });
      };
      callNode(api, path, { timeoutMs: 10_000, ...this.nodeTls(nodeId) }).then(
        (res) => {
          // Past the headers, a quiet followed log is normal.
          res.socket.setTimeout(0);
          answered(res);
        },
        (err: Error) => reject(new HttpError(503, 'LOGS_UNAVAILABLE', `the logs of ${id} are on ${nodeId}, which does not answer: ${err.message}`)),
      );
    });
  }

  importImage(tarPath: string, opts: { replace: boolean }): Promise<ImportResult> {
    return this.images.importTar(tarPath, opts);
  }

  async listImages(stale: boolean): Promise<ImageView[]> {
    await this.barrier(stale);
    return this.images.list();
  }

  async getJob(id: string, stale: boolean): Promise<unknown> {
    await this.barrier(stale);
    const job = this.state.jobView(id);
    if (!job) throw new HttpError(404, 'JOB_NOT_FOUND', `no job ${id}`);
    return job;
  }

  async listJobs(query: JobListQuery, stale: boolean): Promise<JobPage> {
    await this.barrier(stale);
    return buildJobPage(this.state.jobsNewestFirst(query.after), query, (job) => this.state.jobSummary(job, query.withSpec));
  }

  async cancelJob(id: string): Promise<{ id: string; state: string }> {
    const r = await this.gatewayProposer.send({ type: 'cancelJob', jobId: id });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, state: 'cancelled' };
  }

  async cluster(stale: boolean): Promise<unknown> {
    await this.barrier(stale);
    const st = this.raft.status();
    const voters = new Set(st.conf.voters);
    const leases = st.role === 'leader' ? this.leases : undefined;
    const now = Date.now();
    const nodes: Array<Omit<NodeView, 'state' | 'role'> & { state: NodeView['state'] | 'unregistered'; role: 'voter' | 'learner' }> = this.state.nodesView(leases).map((n) => ({
      ...n,
      role: voters.has(n.id) ? 'voter' : 'learner',
      voter: voters.has(n.id),
      lastSeenMs: n.lastSeenMs === null ? null : Math.max(0, now - n.lastSeenMs),
    }));
    // Raft members that never registered (e.g. a bootstrap voter that has not started
    // yet, or died first): listed so that a missing voter is visible, state 'unregistered'.
    const members = [...st.conf.voters, ...st.conf.learners].filter((id) => !this.state.nodes.has(id)).sort(compareIds);
    for (const id of members) {
      const voter = voters.has(id);
      nodes.push({ id, api: '', peer: '', role: voter ? 'voter' : 'learner', voter, state: 'unregistered', lastSeenMs: null, slots: 0, running: 0 });
    }
    return { leader: st.leader, term: st.term, commitIndex: st.commit, nodes };
  }

  async joinNode(body: unknown, who: Principal): Promise<unknown> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'BAD_REQUEST', 'expected a JSON object describing the node');
    const info = { ...(body as Record<string, unknown>) };
    delete info.role; // a joining node is a learner; the leader decides promotions
    // The certificate a record names is revoked when the node leaves: only the node
    // itself may name it (the one it joins with), never an operator's request.
    if (who.kind === 'token') delete info.cert;
    if (who.kind === 'node' && who.id === info.id && info.cert !== undefined && info.cert !== who.serial) {
      throw new HttpError(400, 'CERT_MISMATCH', `node ${who.id} joins with certificate ${who.serial ?? '?'} but names ${String(info.cert)}`);
    }
    const node = info as unknown as NodeInfo;
    validateCommand({ type: 'nodeJoined', node });
    const badAddress = addressProblem(node);
    if (badAddress !== null) throw new HttpError(400, 'INVALID_ADDRESS', badAddress);
    if (this.raft.status().role !== 'leader') return this.forwardToLeader('POST', '/v1/cluster/nodes', info);
    // Decided on the leader's table, everything committed before this request applied:
    // the API registers new nodes, never moves a registered one (registration.ts).
    await this.raft.readBarrier();
    const decision = apiRegistration(this.state.nodes.get(node.id), node);
    if (decision.action === 'refuse') throw new HttpError(decision.status, decision.code, decision.message);
    if (decision.action === 'propose') {
      const r = await this.gatewayProposer.send({ type: 'nodeJoined', node });
      if (!r.ok) throw rejectionToHttp(r);
    }
    const nodeId = node.id;
    const st = this.raft.status();
    if (!st.conf.voters.includes(nodeId) && !st.conf.learners.includes(nodeId)) {
      await this.retryConfChange({ type: 'addLearner', node: nodeId });
    }
    const peers: Record<string, string> = {};
    for (const n of this.state.nodes.values()) if (n.state !== 'left') peers[n.id] = n.peer;
    for (const [id, addr] of this.bootstrapPeers) peers[id] ??= addr;
    return { id: nodeId, role: 'learner', peers, clusterId: this.clusterId };
  }

  async removeNode(id: string): Promise<unknown> {
    await this.raft.readBarrier();
    if (!this.state.nodes.has(id)) throw new HttpError(404, 'NODE_UNKNOWN', `no node ${id}`);
    if (this.raft.status().role !== 'leader') return this.forwardToLeader('DELETE', `/v1/cluster/nodes/${encodeURIComponent(id)}`, undefined);
    const st = this.raft.status();
    if (st.conf.voters.includes(id) || st.conf.learners.includes(id)) await this.retryConfChange({ type: 'removeNode', node: id });
    const r = await this.gatewayProposer.send({ type: 'nodeLeft', node: id });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, state: 'left' };
  }

  /** A membership change waits for the previous one to apply: retry for a while. */
  private async retryConfChange(change: Parameters<RaftNode['proposeConfChange']>[0]): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.raft.proposeConfChange(change);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new WorkrsError('MEMBERSHIP_BUSY', 503, `membership change ${change.type} ${change.node} not accepted: ${err instanceof Error ? err.message : String(err)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private async forwardToLeader(method: string, path: string, body: unknown): Promise<unknown> {
    // A new leader registers its API address within a lease period: wait for it briefly.
    const deadline = Date.now() + 3000;
    let api: string | undefined;
    for (;;) {
      const leader = this.raft.status().leader;
      api = leader ? this.state.nodes.get(leader)?.api : undefined;
      if (api || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!api) throw new NoLeaderError();
    const leader = this.raft.status().leader;
    const res = await callNodeJson(api, path, { method, timeoutMs: 20_000, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...this.nodeTls(leader) });
    const answer = (res.body ?? {}) as { error?: { code: string; message: string } };
    if (res.status < 200 || res.status >= 300) throw new HttpError(res.status, answer.error?.code ?? 'LEADER_ERROR', answer.error?.message ?? `the leader answered ${res.status}`);
    return answer;
  }

  // ---------------------------------------------------------------- API tokens

  async aclBootstrap(): Promise<TokenView> {
    return this.proposeToken('aclBootstrap', { role: 'admin', name: 'bootstrap', ttlSeconds: null });
  }

  async createToken(body: unknown): Promise<TokenView> {
    return this.proposeToken('tokenCreated', parseTokenRequest(body));
  }

  private async proposeToken(type: 'aclBootstrap' | 'tokenCreated', t: { role: TokenRole; name: string; ttlSeconds: number | null }): Promise<TokenView> {
    const { id, token, hash } = newToken();
    const createdAt = Date.now();
    const expiresAt = t.ttlSeconds === null ? null : createdAt + t.ttlSeconds * 1000;
    const r = await this.gatewayProposer.send({ type, token: { id, name: t.name, role: t.role, hash, createdAt, expiresAt } });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, token, name: t.name, role: t.role, createdAt, expiresAt };
  }

  async listTokens(): Promise<TokenView[]> {
    await this.raft.readBarrier();
    return [...this.state.tokens.values()].map(({ id, name, role, createdAt, expiresAt }) => ({ id, name, role, createdAt, expiresAt }));
  }

  async revokeToken(id: string): Promise<unknown> {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new HttpError(404, 'TOKEN_UNKNOWN', `no token ${id}`);
    const r = await this.gatewayProposer.send({ type: 'tokenRevoked', id });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, revoked: true };
  }

  ready(): { ready: boolean; reason: string } {
    const st = this.raft.status();
    if (st.leader === null) return { ready: false, reason: 'no leader known' };
    if (st.applied < st.commit) return { ready: false, reason: `applying the log (${st.applied}/${st.commit})` };
    if (!this.registered) return { ready: false, reason: 'not yet registered with the cluster' };
    return { ready: true, reason: `leader ${st.leader}, applied ${st.applied}` };
  }

  metrics(): string {
    return this.registry.render();
  }

  private registerMetrics(): void {
    const m = this.registry;
    m.gauge('workrs_info', 'Version of this node', () => [{ labels: { version: VERSION, node: this.id }, value: 1 }]);
    m.gauge('workrs_raft_term', 'Current Raft term', () => this.raft.status().term);
    m.gauge('workrs_raft_commit_index', 'Raft commit index', () => this.raft.status().commit);
    m.gauge('workrs_raft_applied_index', 'Raft applied index', () => this.raft.status().applied);
    m.gauge('workrs_raft_apply_lag', 'Committed entries not yet applied', () => {
      const st = this.raft.status();
      return st.commit - st.applied;
    });
    m.gauge('workrs_raft_snapshots_installed', 'Raft snapshots received from the leader and applied since start', () => this.raft.snapshotsInstalled);
    m.gauge('workrs_raft_compactions', 'Log compactions since start', () => this.raft.compactions);
    m.gauge('workrs_raft_is_leader', '1 on the leader', () => (this.raft.status().role === 'leader' ? 1 : 0));
    m.gauge('workrs_jobs', 'Jobs by state', () => {
      const counts = new Map<string, number>();
      for (const j of this.state.jobs.values()) counts.set(j.state, (counts.get(j.state) ?? 0) + 1);
      return [...counts].map(([state, value]) => ({ labels: { state }, value }));
    });
    m.gauge('workrs_nodes', 'Nodes by state', () => {
      const counts = new Map<string, number>();
      for (const n of this.state.nodes.values()) counts.set(n.state, (counts.get(n.state) ?? 0) + 1);
      return [...counts].map(([state, value]) => ({ labels: { state }, value }));
    });
    m.gauge('workrs_peer_connected', 'Peer links up', () =>
      Object.entries(this.transport.stats().peers).map(([peer, s]) => ({ labels: { peer }, value: s.connected ? 1 : 0 })),
    );
  }
}

export type { Command };
