// The replicated state machine: every node applies the same committed envelopes in
// the same order and ends with the same tables and the same results. Deterministic
// by construction: apply() reads only its arguments and the tables (time comes in
// `env.at`, ids in the commands), iterates Maps only in insertion (= log) order, and
// never looks at a clock, a random source or the environment.
//
// ClusterState holds the tables and answers queries; the commands are applied by the
// handlers in apply-jobs.ts, apply-nodes.ts and apply-blobs.ts.
import { blobAdded, blobHolders, forgetBlobs, forgetJobs } from './apply-blobs.js';
import { checkState, setClusterVersion } from './apply-cluster.js';
import { assignJob, cancelJob, checkpointCommitted, jobDrained, jobExited, jobStarted, setPolicy, submitJob } from './apply-jobs.js';
import { nodeAlive, nodeGone, nodeJoined, nodeSuspect, setDraining, setRole, tokenCreated, tokenRevoked } from './apply-nodes.js';
import { type Command, type CommandType, decodeEnvelopeBytes, type Envelope, InvalidCommandError, UnknownCommandError } from './commands.js';
import { checkInvariants } from './invariants.js';
import { type Cmd, type ClusterStateOptions, compareIds, LiveTables, type NodeUsage, type StateCheck } from './live-tables.js';
import type { AttemptRecord, BlobRecord, CheckpointRecord, JobRecord, JobState, NodeRecord, TokenRecord } from './records.js';
import { type ApplyResult, rejected } from './result.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot.js';
import { cloneSpec, type JobSpec } from './spec.js';
import { type Assignment, assignment, type JobSummary, jobSummary, type JobView, jobView, liveBlobs, type NodeView, nodeView } from './views.js';
import { PROTOCOL } from '../version.js';
import { UnsupportedProtocolError, unsupportedClusterVersion } from './versions.js';

export { compareIds, fits, type ClusterStateOptions, type NodeUsage, type StateCheck } from './live-tables.js';

export const LIST_JOBS_DEFAULT_LIMIT = 100;
export const LIST_JOBS_MAX_LIMIT = 1000;
/** A job id prefix names a job from this many characters on (resolveJobRef). */
export const JOB_REF_MIN_PREFIX = 4;
export const JOB_REF_MAX_CANDIDATES = 10;

/** A command's handler: `at` is the envelope's time, `index` the entry's log index. */
type Handler<T extends CommandType> = (live: LiveTables, at: number, cmd: Cmd<T>, index: number) => ApplyResult;

const HANDLERS: { readonly [T in CommandType]: Handler<T> } = {
  submitJob,
  cancelJob,
  assignJob,
  jobStarted,
  jobExited,
  checkpointCommitted,
  setPolicy,
  nodeJoined,
  nodeAlive,
  nodeSuspect,
  nodeLost: nodeGone,
  nodeLeft: nodeGone,
  setRole,
  setDraining,
  jobDrained,
  aclBootstrap: tokenCreated,
  tokenCreated,
  tokenRevoked,
  blobAdded,
  blobHolders,
  forgetJobs,
  forgetBlobs,
  setClusterVersion,
  checkState,
};

export class ClusterState {
  private live: LiveTables;
  private lastType: CommandType | null = null;

  /** `options` are for tests only (see ClusterStateOptions); a node passes none. */
  constructor(options: ClusterStateOptions = {}) {
    this.live = new LiveTables(undefined, options);
  }

  private get t(): LiveTables['t'] {
    return this.live.t;
  }

  // ---- tables (read-only outside) -------------------------------------------

  /** Index of the last applied log entry. */
  get appliedIndex(): number {
    return this.t.appliedIndex;
  }
  get jobs(): ReadonlyMap<string, Readonly<JobRecord>> {
    return this.t.jobs;
  }
  /** Per job: attempts by epoch (epoch e at position e-1). */
  get attempts(): ReadonlyMap<string, ReadonlyArray<Readonly<AttemptRecord>>> {
    return this.t.attempts;
  }
  /** Per job: committed checkpoints in commit order; the last is the newest. */
  get checkpoints(): ReadonlyMap<string, ReadonlyArray<Readonly<CheckpointRecord>>> {
    return this.t.checkpoints;
  }
  get nodes(): ReadonlyMap<string, Readonly<NodeRecord>> {
    return this.t.nodes;
  }
  get blobs(): ReadonlyMap<string, Readonly<BlobRecord>> {
    return this.t.blobs;
  }
  get tokens(): ReadonlyMap<string, Readonly<TokenRecord>> {
    return this.t.tokens;
  }
  get aclBootstrapped(): boolean {
    return this.t.aclBootstrapped;
  }
  /** Whether a node certificate (serial as normalizeSerial gives it) is revoked. */
  certRevoked(serial: string): boolean {
    return this.t.revokedCerts.has(serial);
  }
  get revokedCertCount(): number {
    return this.t.revokedCerts.size;
  }
  /** How many times a node went lost or left in this process (not replicated, not in snapshots). */
  get departureCount(): number {
    return this.live.departures;
  }
  /** How many nodeJoined commands this process applied (not replicated, not in snapshots). */
  get registrationCount(): number {
    return this.live.registrations;
  }

  /** The protocol version the cluster runs at (versions.ts). */
  get clusterVersion(): number {
    return this.t.clusterVersion;
  }

  /** The newest state checks this node applied (checkState), oldest first; not replicated. */
  get stateChecks(): readonly StateCheck[] {
    return this.live.stateChecks;
  }

  /** The type of the command the last apply executed; null if it executed none (a retry, an invalid entry). */
  get lastCommandType(): CommandType | null {
    return this.lastType;
  }

  /** The last request id applied for a client (0 if none): a restarted proposer can check what became of its requests. */
  lastRequestId(clientId: string): number {
    return this.t.sessions.get(clientId)?.requestId ?? 0;
  }

  /** The attempt with the job's current epoch, open or ended; null before the first assignment. */
  currentAttempt(jobId: string): Readonly<AttemptRecord> | null {
    const job = this.t.jobs.get(jobId);
    if (job === undefined || job.epoch === 0) return null;
    return this.t.attempts.get(jobId)?.[job.epoch - 1] ?? null;
  }

  /** Pending and running jobs, oldest first. */
  openJobs(): Array<Readonly<JobRecord>> {
    return this.live.openJobs();
  }

  /** Pending jobs, oldest first. */
  pendingJobs(): Array<Readonly<JobRecord>> {
    return this.live.pendingJobs();
  }

  /** Every running job, oldest first. */
  runningJobs(): Array<Readonly<JobRecord>> {
    return this.live.runningJobs();
  }

  /** The jobs running on `node`, oldest first. */
  runningOn(node: string): Array<Readonly<JobRecord>> {
    return this.live.runningOn(node);
  }

  /** Jobs waiting for a node: the backlog submitJob's `maxPending` caps. */
  pendingCount(): number {
    return this.live.pendingCount();
  }

  /**
   * Jobs newest first by submission (log) order, starting after the job submitted at
   * log index `beforeOrder` (exclusive; null: from the newest). A position rather than
   * an id, so a walk resumes correctly when its last job was forgotten meanwhile, and
   * jobs submitted during a walk (newer than every position) never show up in it.
   */
  *jobsNewestFirst(beforeOrder: number | null = null): Generator<Readonly<JobRecord>> {
    const all = this.live.byOrder;
    let lo = 0;
    let hi = all.length;
    if (beforeOrder !== null) {
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (all[mid]!.order < beforeOrder) lo = mid + 1;
        else hi = mid;
      }
    }
    for (let i = (beforeOrder === null ? all.length : lo) - 1; i >= 0; i--) yield all[i]!;
  }

  /**
   * The job a reference names (JOB in the CLI, :id in the API), tried in this order:
   * an exact id; a name (the pending or running job with it, else the newest job with
   * it); a prefix of at least JOB_REF_MIN_PREFIX characters of one job's id, with or
   * without its `j-`. A prefix several ids share is ambiguous: `candidates` lists up to
   * JOB_REF_MAX_CANDIDATES of them, newest first. The name and prefix searches walk the
   * jobs table (a millisecond per 100 000 jobs): reads only, never in apply.
   */
  resolveJobRef(ref: string): { id: string } | { candidates: string[] } | null {
    if (this.t.jobs.has(ref)) return { id: ref };
    const open = this.live.openNames.get(ref);
    if (open !== undefined) return { id: open };
    const all = this.live.byOrder;
    for (let i = all.length - 1; i >= 0; i--) if (all[i]!.spec.name === ref) return { id: all[i]!.id };
    if (ref.length < JOB_REF_MIN_PREFIX) return null;
    const candidates: string[] = [];
    for (let i = all.length - 1; i >= 0 && candidates.length <= JOB_REF_MAX_CANDIDATES; i--) {
      const id = all[i]!.id;
      if (id.startsWith(ref) || id.startsWith(`j-${ref}`)) candidates.push(id);
    }
    if (candidates.length === 0) return null;
    return candidates.length === 1 ? { id: candidates[0]! } : { candidates: candidates.slice(0, JOB_REF_MAX_CANDIDATES) };
  }

  /** Usage of every node that has open attempts (others use nothing). */
  usageByNode(): Map<string, NodeUsage> {
    return this.live.usageByNode();
  }

  // ---- apply -----------------------------------------------------------------

  /**
   * Applies the committed envelope at log `index` (strictly increasing; Raft's own
   * entries, no-ops and membership changes, are skipped, so gaps are normal).
   * A retried request (same client, same request id) is not applied again and gets
   * the cached result; an older request id than the last applied one gets
   * STALE_REQUEST. A rejected command changes no table.
   */
  apply(index: number, env: Envelope): ApplyResult {
    this.advanceTo(index);
    this.lastType = null;
    const session = this.t.sessions.get(env.clientId);
    if (session !== undefined && env.requestId <= session.requestId) {
      if (env.requestId === session.requestId) return session.result;
      return rejected('STALE_REQUEST', `request ${env.requestId} of client ${env.clientId} is older than its last applied request ${session.requestId}; not applied`);
    }
    const result = this.execute(index, env.at, env.cmd);
    this.t.sessions.set(env.clientId, { requestId: env.requestId, result });
    return result;
  }

  /**
   * decodeEnvelopeBytes + apply, for the driver: an entry that is not a valid
   * envelope is applied as a no-op with INVALID_COMMAND (every node of this version
   * decides the same), so one bad proposal cannot stop the log. An entry this build
   * does not know (a newer build's command) throws UnsupportedProtocolError instead:
   * the node must stop rather than apply less than its peers.
   */
  applyBytes(index: number, data: Uint8Array): ApplyResult {
    this.lastType = null;
    let env: Envelope;
    try {
      env = decodeEnvelopeBytes(data);
    } catch (err) {
      if (err instanceof UnknownCommandError) {
        throw new UnsupportedProtocolError(
          `entry ${index} holds ${err.message}. It was proposed by a newer build: this build speaks protocol versions ${PROTOCOL.min}–${PROTOCOL.max} and the cluster runs at ${this.t.clusterVersion}. Start this node with the build the other members run (docs/upgrading.md)`,
        );
      }
      if (!(err instanceof InvalidCommandError)) throw err;
      this.advanceTo(index);
      return rejected('INVALID_COMMAND', err.message);
    }
    return this.apply(index, env);
  }

  private advanceTo(index: number): void {
    if (!Number.isSafeInteger(index) || index <= this.t.appliedIndex) {
      throw new Error(`state machine: entry ${index} applied after entry ${this.t.appliedIndex}; indexes must increase`);
    }
    this.t.appliedIndex = index;
  }

  private execute(index: number, at: number, cmd: Command): ApplyResult {
    this.lastType = cmd.type;
    const handler = HANDLERS[cmd.type] as Handler<CommandType>;
    return handler(this.live, at, cmd as never, index);
  }

  // ---- views -----------------------------------------------------------------

  /** What every node's blob store must keep (views.ts liveBlobs). */
  liveBlobs(): Set<string> {
    return liveBlobs(this.t);
  }

  /** GET /v1/jobs/:id; null if there is no such job. */
  jobView(id: string): JobView | null {
    const job = this.t.jobs.get(id);
    return job === undefined ? null : jobView(this.t, job);
  }

  /** A row of GET /v1/jobs (views.ts JobSummary), with a copy of the job's spec when asked. */
  jobSummary(job: Readonly<JobRecord>, withSpec = false): JobSummary & { spec?: JobSpec } {
    const row: JobSummary & { spec?: JobSpec } = jobSummary(this.t, job);
    if (withSpec) row.spec = cloneSpec(job.spec);
    return row;
  }

  /** Full views, newest first (by submission order), optionally of one state; limit defaults to 100, at most 1000. GET /v1/jobs pages with jobsNewestFirst and jobSummary instead. */
  listJobs(opts: { state?: JobState; limit?: number } = {}): JobView[] {
    const wanted = opts.limit !== undefined && Number.isFinite(opts.limit) ? Math.floor(opts.limit) : LIST_JOBS_DEFAULT_LIMIT;
    const limit = Math.max(0, Math.min(LIST_JOBS_MAX_LIMIT, wanted));
    const out: JobView[] = [];
    // The jobs Map is in submission order; walk it backwards.
    const all = [...this.t.jobs.values()];
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
      const job = all[i]!;
      if (opts.state === undefined || job.state === opts.state) out.push(jobView(this.t, job));
    }
    return out;
  }

  /**
   * The node part of GET /v1/cluster, sorted by id. `lastSeenMs` is the leader's lease
   * table when the caller has it; otherwise a node shows its last replicated sign of
   * life (nodeJoined/nodeAlive).
   */
  nodesView(lastSeenMs?: ReadonlyMap<string, number>): NodeView[] {
    const usage = this.usageByNode();
    return [...this.t.nodes.values()]
      .sort((a, b) => compareIds(a.id, b.id))
      .map((n) => nodeView(n, usage.get(n.id)?.running ?? 0, lastSeenMs?.get(n.id)));
  }

  /** Whether assignmentsFor(nodeId) holds this attempt, without building the views. */
  isAssignedTo(nodeId: string, key: { jobId: string; epoch: number }): boolean {
    const job = this.t.jobs.get(key.jobId);
    return job !== undefined && job.state === 'running' && job.node === nodeId && job.epoch === key.epoch;
  }

  /** What `nodeId` must run: its open attempts, oldest job first. Anything else it runs is stale and must stop. */
  assignmentsFor(nodeId: string): Assignment[] {
    const out: Assignment[] = [];
    for (const job of this.live.runningOn(nodeId)) {
      out.push(assignment(this.t, job, this.live.attemptsOf(job.id)[job.epoch - 1]!));
    }
    return out;
  }

  // ---- snapshots ---------------------------------------------------------------

  /** All tables and the dedupe table, with a format version byte. */
  snapshot(): Uint8Array {
    return encodeSnapshot(this.t);
  }

  /** The state a snapshot was taken of; throws SnapshotFormatError or an invariant error on a bad one. */
  static restore(bytes: Uint8Array, options: ClusterStateOptions = {}): ClusterState {
    const state = new ClusterState(options);
    state.live = new LiveTables(decodeSnapshot(bytes), options);
    const problem = unsupportedClusterVersion(state.t.clusterVersion);
    if (problem !== null) throw new UnsupportedProtocolError(`the state snapshot at index ${state.t.appliedIndex}: ${problem}`);
    state.checkInvariants();
    return state;
  }

  /**
   * UNSAFE, tests only (WORKRS_TEST_HOOKS=corrupt-state): changes this replica's tables
   * behind the log's back, as a bug or a bad disk would, so that a test can see the
   * state checks catch it. Returns what it changed.
   */
  corruptForTest(): string {
    const node = this.t.nodes.values().next().value;
    if (node !== undefined) {
      node.slots += 1;
      return `node ${node.id} slots → ${node.slots}`;
    }
    this.t.aclBootstrapped = !this.t.aclBootstrapped;
    return `aclBootstrapped → ${this.t.aclBootstrapped}`;
  }

  /**
   * Asserts the invariants that tie the tables together; throws on the first broken
   * one. Cheap enough for tests after every apply and for every restore.
   */
  checkInvariants(): void {
    checkInvariants(this.live);
  }
}
