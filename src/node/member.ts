// One member of the cluster without its outside: the Raft driver, the replicated state
// machine it applies, leases, the leader's duties, the worker and the checkpointer,
// and the blob service, built from what is injected (clock, storage, peer link,
// container runtime, blobs). No HTTP, TLS, Docker or disk of its own: WorkrsNode
// (workrs-node.ts) wraps it with those, and the whole-node simulator runs several
// members in one process on simulated time.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Entry, InitialState, NodeId, Snapshot } from '../../raft/types.js';
import type { BlobCluster, ReplicatedBlobs } from '../blobs/replicated.js';
import type { NodeOptions } from '../config/node-options.js';
import { WorkrsError } from '../errors.js';
import type { NodeInfo } from '../state/commands.js';
import { ClusterState, type ClusterStateOptions } from '../state/machine.js';
import type { ResourceMaxima } from '../state/spec.js';
import type { Assignment } from '../state/views.js';
import type { Clock, Timer } from '../util/clock.js';
import { SingleFlight } from '../util/single-flight.js';
import { Checkpointer, type CheckpointingRuntime } from '../worker/checkpointer.js';
import type { ContainerRuntime } from '../worker/runtime.js';
import { Worker, type WorkerOptions } from '../worker/worker.js';
import { refusalStatus } from './errors.js';
import { JobFiles } from './job-files.js';
import { LeaderDuties } from './leader-duties.js';
import type { PeerFrame } from './frames.js';
import { Leases } from './leases.js';
import { NodeMetrics } from './node-metrics.js';
import { StandbyRestores, type StandbyRuntime } from './standby-restores.js';
import { Proposer } from './proposer.js';
import { RaftNode, type Application, type PeerLink, type RaftNodeOptions } from './raft-node.js';
import { admitForwarded, apiRegistration, hostPortProblem, joinVersionRefusal } from './registration.js';
import { ClusterVersions } from './cluster-versions.js';
import { BUILD, type BuildInfo, protocolOf, runsAt } from '../version.js';

/** The Raft log's storage (LevelDB in production, in memory in the simulator). */
export type RaftStorage = RaftNodeOptions['store'];

/** How often the leader's duties run. */
const LEADER_LOOP_MS = 200;
/**
 * How long a commit may wait for the next append to carry it to the followers: under
 * load the next round comes sooner; idle, a follower applies (and a submission made
 * through it answers) this much later.
 */
const COMMIT_NOTICE_MS = 2;
/**
 * The log is compacted at the latest once the entries since the last snapshot carry
 * this much data: compactEveryEntries bounds their count, this their memory when
 * entries are large (the core keeps them in memory until compacted).
 */
const COMPACT_EVERY_BYTES = 64 * 1024 * 1024;
/** Copies of every input file, checkpoint and result before it counts (k). */
export const REPLICAS = 2;
/** How often a node looks for blobs it holds that lost copies (src/blobs/repair.ts). */
const REPAIR_INTERVAL_MS = 1000;
/** How long a membership change is retried while an earlier one is still applying, and how often. */
const MEMBERSHIP_RETRY_MS = 10_000;
const MEMBERSHIP_RETRY_PAUSE_MS = 200;
/** The worker reconciles at least this often, whatever else wakes it. */
const WORKER_POKE_MS = 1000;

export type MemberOptions = Pick<
  NodeOptions,
  | 'tickMs'
  | 'electionTicks'
  | 'heartbeatTicks'
  | 'compactEveryEntries'
  | 'leaseRenewMs'
  | 'leaseTimeoutMs'
  | 'nodeTimeoutMs'
  | 'voters'
  | 'jobRetentionSeconds'
  | 'blobGcIntervalMs'
  | 'blobGcMinAgeMs'
  | 'mtbfPriorSeconds'
  | 'mtbfPriorWeight'
  | 'restartPriorSeconds'
> & {
  /** Docker: most takeovers prepared ahead (standby-restores.ts); absent or 0: none. */
  standbyRestores?: number;
  /** Scratch folder: attempts' inputs, result archives, unpacked checkpoints. */
  workDir: string;
  /** The most one job may ask for on this node; none: no ceiling. */
  jobMaxima?: ResourceMaxima;
  /** UNSAFE, tests only: leases.ts reassignBeforeLeaseBound. */
  reassignBeforeLeaseBound?: boolean;
  /** UNSAFE, tests only: the Raft driver's creditAnswerArrival (quorum contact from answers' arrival times). */
  creditAnswerArrival?: boolean;
  /** UNSAFE, tests only: the worker's ignoreLostLease. */
  ignoreLostLease?: boolean;
  /** UNSAFE, tests only: the state machine's acceptExitWithoutEpochCheck (ClusterStateOptions). */
  acceptExitWithoutEpochCheck?: boolean;
};

export interface ClusterMemberDeps {
  id: NodeId;
  clock: Clock;
  logger: Logger;
  /** Election jitter, retry jitter, proposer ids. */
  random: () => number;
  storage: RaftStorage;
  /** What storage holds now (or a bootstrap the caller has saved). */
  initial: InitialState;
  link: PeerLink;
  runtime: ContainerRuntime;
  /** Docker only: checkpoints of running attempts and restores from them. */
  checkpoints?: (CheckpointingRuntime & { restore: NonNullable<WorkerOptions['restore']> }) | null;
  /** Docker only: standby containers, takeovers prepared ahead (standby-restores.ts). */
  standbys?: StandbyRuntime | null;
  /** Builds the blob service on the view of the cluster this member gives it. */
  blobs: (cluster: BlobCluster) => ReplicatedBlobs;
  /** This node's record, as it registers it. */
  self: NodeInfo;
  options: MemberOptions;
  metrics?: NodeMetrics;
  /** Peer addresses known before the node table has them (bootstrap list, join answer). */
  knownPeers?: ReadonlyMap<NodeId, string>;
  /** The peer address table changed (the transport's peers). */
  onPeers?: (peers: Map<NodeId, string>) => void;
  /** The Raft driver cannot go on (storage failed); default: the process exits (raft-node.ts). */
  onFatal?: RaftNodeOptions['onFatal'];
  /** RaftNodeOptions.deferTurn (production: setImmediate). */
  deferTurn?: RaftNodeOptions['deferTurn'];
  /** The build this member announces (default: this executable's, BUILD); the simulator mixes builds. */
  build?: BuildInfo;
}

export class ClusterMember implements Application {
  readonly id: NodeId;
  private current: ClusterState;
  private readonly stateOptions: ClusterStateOptions;
  readonly raft: RaftNode;
  readonly leases: Leases;
  readonly duties: LeaderDuties;
  /** Leader: the members' builds and state checks, the cluster version's raise, divergences. */
  readonly versions: ClusterVersions;
  readonly build: BuildInfo;
  readonly blobs: ReplicatedBlobs;
  readonly worker: Worker;
  /** Docker with standby restores on: the takeovers this node prepares ahead. */
  readonly standbys: StandbyRestores | null;
  readonly runtime: ContainerRuntime;
  readonly metrics: NodeMetrics;
  /** Proposes for the API (submissions, cancels, tokens, registrations). */
  readonly proposer: Proposer;
  private readonly deps: ClusterMemberDeps;
  private readonly log: Logger;
  private readonly timers: Timer[] = [];
  /** The periodic work that runs on the Raft driver's ticks (onTick), and the ticks counted since start. */
  private onTicks: Array<{ everyTicks: number; run: () => void }> = [];
  private ticks = 0;
  private readonly registration: SingleFlight;
  private readonly pokes: SingleFlight;
  private registeredOnce = false;
  /** This node's record's "api peer" as last seen (null: none); undefined before the first look. */
  private ownRecordSeen: string | null | undefined = undefined;

  constructor(deps: ClusterMemberDeps) {
    this.deps = deps;
    this.id = deps.id;
    this.log = deps.logger;
    this.runtime = deps.runtime;
    const { options: opts, clock, random } = deps;
    this.metrics = deps.metrics ?? new NodeMetrics();
    this.stateOptions = opts.acceptExitWithoutEpochCheck ? { acceptExitWithoutEpochCheck: true } : {};
    this.current = new ClusterState(this.stateOptions);
    this.build = deps.build ?? BUILD;
    this.versions = new ClusterVersions({
      self: this.id,
      selfBuild: this.build,
      logger: this.log,
      now: () => clock.now(),
      ownChecks: () => this.current.stateChecks,
      onDivergence: () => this.metrics.stateDivergences.inc(),
    });
    this.registration = new SingleFlight(() => this.register(), (err) => this.log.debug({ err }, 'registration not yet possible'));
    // Wakes the worker once after a burst of applied entries, not once per entry (the
    // Raft driver restores a snapshot before the worker exists, hence the `?.`).
    this.pokes = new SingleFlight(async () => {
      await clock.sleep(0);
      this.worker?.poke();
    });
    // Learners (all but the voters) hear the leader only as often as they must: at
    // least twice per election timeout, since the leader promotes only a learner that
    // answered since its last recentActive reset (scheduler/voters.ts).
    const learnerHeartbeatRounds = Math.max(1, Math.floor((opts.electionTicks - 1) / (2 * opts.heartbeatTicks)));
    this.raft = new RaftNode({
      raft: {
        id: this.id,
        electionTicks: opts.electionTicks,
        heartbeatTicks: opts.heartbeatTicks,
        learnerHeartbeatRounds,
        random,
        preVote: true,
        checkQuorum: true,
        maxSizePerMsgBytes: 1024 * 1024,
        maxInflightMsgs: 256,
        maxInflightBytes: 64 * 1024 * 1024,
        maxUncommittedBytes: 256 * 1024 * 1024,
        snapshotChunkBytes: 1024 * 1024,
        // One message less each way per follower and commit: the next append carries
        // it, and COMMIT_NOTICE_MS later at the latest (docs/design.md, "The write path").
        deferCommitNotice: true,
      },
      commitNoticeMs: COMMIT_NOTICE_MS,
      initial: deps.initial,
      clock,
      store: deps.storage,
      link: { send: (to, frame) => this.sendPeer(to, frame) },
      app: this,
      logger: this.log,
      tickMs: opts.tickMs,
      onTick: () => this.onTick(),
      compactEveryEntries: opts.compactEveryEntries,
      compactEveryBytes: COMPACT_EVERY_BYTES,
      requestTimeoutMs: 10_000,
      onOtherFrame: (from, frame) => this.leases.onFrame(from, frame),
      onFrameDropped: (reason) => this.metrics.peerFramesDropped.inc({ reason }),
      onLeaderChange: () => this.metrics.leaderChanges.inc(),
      onPersisted: (ms) => this.metrics.raftPersist.observe(ms / 1000),
      onApplied: (ms) => this.metrics.raftApply.observe(ms / 1000),
      admitForwarded: (from, data) => this.admitForwarded(from, data),
      ...(deps.onFatal ? { onFatal: deps.onFatal } : {}),
      ...(opts.creditAnswerArrival ? { unsafe: { creditAnswerArrival: true } } : {}),
      ...(deps.deferTurn ? { deferTurn: deps.deferTurn } : {}),
    });
    const proposer = (role: string): Proposer => new Proposer(this.raft, role, this.id, clock, random, () => this.current.clusterVersion);
    this.proposer = proposer('gw');
    this.leases = new Leases({
      id: this.id,
      clock,
      raft: this.raft,
      send: (to, frame) => deps.link.send(to, frame),
      // A contact window of three probe periods: answers up to two periods late keep it.
      quorumContactMs: 3 * this.raft.contactProbeMs,
      leaseTimeoutMs: opts.leaseTimeoutMs,
      leaseRenewMs: opts.leaseRenewMs,
      // The worker is told the instant its lease ends (onLapse) and freezes its jobs
      // then: a renewal period covers that (a docker pause per job), and clock rates.
      fenceMarginMs: opts.leaseRenewMs,
      // Lease frames ride with heartbeats (leases.ts): an ack waits at most for the
      // longest gap between two heartbeats to one member.
      holdAcksMs: opts.tickMs * opts.heartbeatTicks * learnerHeartbeatRounds,
      onAckWithheld: () => this.metrics.leaseAcksWithheld.inc(),
      catchUp: () => this.raft.readBarrier(),
      onLapse: () => this.worker.poke(),
      onBoundPassed: () => this.duties.leaseBoundPassed(),
      renewalExtras: () => {
        const check = this.current.stateChecks.at(-1);
        return check === undefined ? { build: this.build } : { build: this.build, check };
      },
      onRenewal: (from, frame) => this.versions.onRenewal(from, frame.build ?? null, frame.check ?? null, this.current.clusterVersion),
      ...(opts.reassignBeforeLeaseBound ? { reassignBeforeLeaseBound: true } : {}),
    });
    this.duties = new LeaderDuties({ ...opts, id: this.id, clock, raft: this.raft, state: () => this.current, leases: this.leases, versions: this.versions, metrics: this.metrics, logger: this.log });
    const blobProposer = proposer('repair');
    this.blobs = deps.blobs({
      nodeId: this.id,
      state: () => this.current,
      propose: (cmd) => blobProposer.send(cmd),
      caughtUp: () => this.raft.status().applied >= this.raft.status().commit,
    });
    const cp = deps.checkpoints ?? null;
    this.standbys =
      cp && deps.standbys && (opts.standbyRestores ?? 0) > 0
        ? new StandbyRestores({
            nodeId: this.id,
            runtime: deps.standbys,
            blobs: this.blobs,
            state: () => this.current,
            stagingDir: join(opts.workDir, 'staging'),
            max: opts.standbyRestores ?? 0,
            random,
            logger: this.log.child({ component: 'standby' }),
            monotonic: () => clock.monotonic(),
            onPrepared: (outcome) => this.metrics.standbysPrepared.inc({ outcome }),
          })
        : null;
    const files = new JobFiles({ blobs: this.blobs, runtime: deps.runtime, state: () => this.current, dir: opts.workDir, random, standbys: this.standbys });
    this.worker = new Worker({
      nodeId: this.id,
      clock,
      random,
      runtime: deps.runtime,
      proposer: proposer('wk'),
      assignments: () => this.current.assignmentsFor(this.id),
      isAssigned: (key) => this.current.isAssignedTo(this.id, key),
      leaseValid: () => this.leases.valid(),
      draining: () => this.current.nodes.get(this.id)?.draining === true,
      // Frozen at a lost lease, stopped a node timeout later: an election (no leader
      // to renew with for a second or two) then costs the jobs a pause, not their run.
      fenceStopAfterMs: opts.nodeTimeoutMs,
      onFence: (what) => this.metrics.fences.inc({ what }),
      prepareInputs: (a) => files.prepareInputs(a),
      releaseInputs: (a) => files.releaseInputs(a),
      publishResult: (key, exitCode) => files.publishResult(key, exitCode),
      ...(opts.jobMaxima ? { maxima: opts.jobMaxima } : {}),
      onReportRejected: (what, code) => this.metrics.reportsRejected.inc({ report: what, code }),
      ...(cp
        ? {
            checkpointer: new Checkpointer({
              nodeId: this.id,
              runtime: cp,
              blobs: this.blobs,
              proposer: proposer('cp'),
              logger: this.log,
              clock,
              onCheckpoint: (c) => {
                this.metrics.checkpointFrozen.observe(c.frozenMs / 1000);
                this.metrics.checkpointDuration.observe(c.durationMs / 1000);
                this.metrics.checkpointBytes.observe(c.bytes);
              },
            }),
            prepareCheckpoint: (a: Assignment) => files.prepareCheckpoint(a),
            restore: async (a: Assignment, dir: string, onExit: (code: number) => void) => {
              const r = await cp.restore(a, dir, onExit);
              if (r.restored) {
                const how = 'fromStandby' in r && r.fromStandby === true ? 'standby' : 'cold';
                this.metrics.restores.inc({ how });
                if ('durationMs' in r && typeof r.durationMs === 'number') this.metrics.restoreDuration.observe(r.durationMs / 1000, { how });
              }
              return r;
            },
          }
        : {}),
      ...(opts.ignoreLostLease ? { ignoreLostLease: true } : {}),
      logger: this.log,
    });
  }

  /** The replicated state as this node has applied it. */
  get state(): ClusterState {
    return this.current;
  }

  /** Whether this node's registration went through since it started. */
  get registered(): boolean {
    return this.registeredOnce;
  }

  /** The transport's link to `peer` went down (a hint that it may be gone). */
  peerUnreachable(peer: NodeId): void {
    this.raft.peerUnreachable(peer);
  }

  /** A frame from a peer: Raft's own, or a lease frame (handed on by the driver). */
  receive(from: NodeId, frame: unknown): void {
    this.raft.receive(from, frame);
  }

  start(): void {
    const { clock, options: opts } = this.deps;
    this.refreshPeers();
    // An idle node's cost is mostly its wake-ups: the periodic work runs on the Raft
    // driver's tick (one timer), each at the whole number of ticks that is not longer
    // than its period; a period shorter than a tick keeps a timer of its own.
    const every = (ms: number, run: () => void): void => {
      if (ms < opts.tickMs) this.timers.push(clock.every(ms, run));
      else this.onTicks.push({ everyTicks: Math.floor(ms / opts.tickMs), run });
    };
    every(LEADER_LOOP_MS, () => this.duties.tick());
    every(opts.tickMs, () => {
      this.leases.renewIfDue();
      this.leases.flushHeldAcks();
    });
    every(opts.leaseRenewMs, () => this.registerAndPoke());
    every(WORKER_POKE_MS, () => {
      this.worker.poke();
      this.standbys?.poke();
    });
    every(opts.blobGcIntervalMs, () => void this.blobs.collectGarbage());
    every(REPAIR_INTERVAL_MS, () => void this.blobs.repair());
    this.raft.start();
  }

  private onTick(): void {
    this.ticks += 1;
    for (const t of this.onTicks) if (this.ticks % t.everyTicks === 0) t.run();
  }

  /** Stops the timers and the worker (its containers keep running: see lifecycle.ts drain). */
  async quiesce(): Promise<void> {
    for (const t of this.timers.splice(0)) t.cancel();
    this.onTicks = [];
    this.leases.stop();
    await this.standbys?.stop();
    await this.worker.halt();
  }

  /** quiesce(), then the Raft driver. */
  async stop(): Promise<void> {
    await this.quiesce();
    await this.raft.stop();
  }

  /**
   * A Raft frame to a peer, seen on its way: a heartbeat takes a held lease ack along,
   * a heartbeat answer a renewal that is nearly due (leases.ts). The transport sends
   * what is queued in one turn as one message.
   */
  private sendPeer(to: NodeId, frame: PeerFrame): boolean {
    const sent = this.deps.link.send(to, frame);
    if (frame.k !== 'raft') return sent;
    if (frame.m.type === 'heartbeat') this.leases.heartbeatSent(to);
    else if (frame.m.type === 'heartbeatResp') this.leases.heartbeatAnswered(to);
    return sent;
  }

  private registerAndPoke(): void {
    if (!this.registeredOnce && !this.registration.busy) void this.registration.run();
    this.worker.poke();
  }

  /** Announces this node (addresses, capacity) once per process start. */
  private async register(): Promise<void> {
    if (this.raft.status().leader === null) return;
    const r = await this.proposer.once({ type: 'nodeJoined', node: this.deps.self });
    if (r.ok) {
      this.registeredOnce = true;
      this.log.info('registered with the cluster');
    } else {
      this.log.warn({ code: r.code, message: r.message }, 'registration refused');
    }
  }

  /**
   * Leader only: admits a node joining through the API. Decided on the leader's table
   * with everything committed before the call applied: the API registers new nodes and
   * never moves a registered one (registration.ts). Then the node becomes a learner
   * (the leader's duties promote it). `build`: what the joining node announced (null:
   * none, a build from before versions; undefined: not to be checked here, e.g. an
   * operator's registration). A new registration of a build that cannot run at the
   * cluster's version is refused. The refusal, if any, is returned.
   */
  async admitNode(node: NodeInfo, build: BuildInfo | null | undefined): Promise<{ status: number; code: string; message: string } | null> {
    await this.raft.readBarrier();
    const decision = apiRegistration(this.current.nodes.get(node.id), node);
    if (decision.action === 'refuse') return decision;
    if (decision.action === 'propose') {
      const tooOld = build === undefined ? null : joinVersionRefusal(node.id, build, this.current.clusterVersion);
      if (tooOld !== null) return { status: 409, code: 'PROTOCOL_TOO_OLD', message: tooOld };
      const r = await this.proposer.send({ type: 'nodeJoined', node });
      if (!r.ok) return { status: refusalStatus(r.code), code: r.code, message: r.message };
    }
    const st = this.raft.status();
    if (!st.conf.voters.includes(node.id) && !st.conf.learners.includes(node.id)) await this.changeMembership({ type: 'addLearner', node: node.id });
    return null;
  }

  /**
   * Leader: whether to propose what a follower forwarded (registration.ts), and not from
   * a member refused for its build (cluster-versions.ts): null when it does, else why not.
   */
  private admitForwarded(from: NodeId, data: Uint8Array): string | null {
    const version = this.current.clusterVersion;
    const build = this.versions.buildOf(from);
    const range = build === undefined ? null : protocolOf(build);
    if (range !== null && !runsAt(range, version)) {
      return `PROTOCOL_TOO_OLD: node ${from} speaks protocol versions ${range.min}–${range.max} and the cluster runs at ${version}`;
    }
    return admitForwarded(from, data, version);
  }

  /** A membership change waits for the previous one to apply: retried for a while. */
  async changeMembership(change: Parameters<RaftNode['proposeConfChange']>[0]): Promise<void> {
    const { clock } = this.deps;
    const deadline = clock.monotonic() + MEMBERSHIP_RETRY_MS;
    for (;;) {
      try {
        await this.raft.proposeConfChange(change);
        return;
      } catch (err) {
        if (clock.monotonic() > deadline) throw new WorkrsError('MEMBERSHIP_BUSY', 503, `membership change ${change.type} ${change.node} not accepted: ${err instanceof Error ? err.message : String(err)}`);
        await clock.sleep(MEMBERSHIP_RETRY_PAUSE_MS);
      }
    }
  }

  // ---------------------------------------------------------------- the replicated application

  apply(index: number, data: Uint8Array): unknown {
    const state = this.current;
    const before = state.nodes.size;
    const departures = state.departureCount;
    const registrations = state.registrationCount;
    const result = state.applyBytes(index, data);
    // A registration may have moved a node (or brought one back): reach it at its new address.
    if (state.nodes.size !== before || state.registrationCount !== registrations) {
      this.refreshPeers();
      this.noticeOwnRecord();
    }
    // A node just lost may have held the only other copy of a checkpoint: repair now,
    // not at the next round (the job may be resuming on the last holder).
    if (state.departureCount !== departures) this.deps.clock.after(0, () => void this.blobs.repair());
    // A new job is pending: no worker has anything to do about it (the leader's next
    // round places it, and that assignment pokes its worker). Anything else may
    // concern this node's attempts.
    if (state.lastCommandType !== 'submitJob') void this.pokes.run();
    return result;
  }

  applyConfChange(_entry: Extract<Entry, { type: 'confChange' }>): void {
    this.refreshPeers();
  }

  snapshot(): Uint8Array {
    return this.current.snapshot();
  }

  restore(snapshot: Snapshot): void {
    this.current = ClusterState.restore(snapshot.data, this.stateOptions);
    this.refreshPeers();
    this.noticeOwnRecord();
    void this.pokes.run();
  }

  /** Peer addresses: the known ones (bootstrap, join answer), then the replicated nodes table (newest). */
  private refreshPeers(): void {
    const onPeers = this.deps.onPeers;
    if (!onPeers) return;
    const peers = new Map<NodeId, string>(this.deps.knownPeers ?? []);
    for (const n of this.current.nodes.values()) if (n.state !== 'left') peers.set(n.id, n.peer);
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
    onPeers(peers);
  }

  /**
   * Only this node sets its own addresses (registration.ts), yet a registration of
   * its id that it did not make can still land (an API join racing its first one, or a
   * holder of the token posing as it on a peer link). When this node's record changes
   * to addresses that are not its own, it registers again: the table follows the node.
   */
  private noticeOwnRecord(): void {
    const n = this.current.nodes.get(this.id);
    const current = n === undefined || n.state === 'left' ? null : `${n.api} ${n.peer}`;
    const changed = this.ownRecordSeen !== undefined && current !== this.ownRecordSeen;
    this.ownRecordSeen = current;
    if (!changed || !this.registeredOnce || current === null || current === `${this.deps.self.api} ${this.deps.self.peer}`) return;
    this.registeredOnce = false;
    this.log.warn({ registered: current }, "this node's record names addresses that are not its own; registering again");
  }
}
