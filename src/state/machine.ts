// The replicated state machine: every node applies the same committed envelopes in
// the same order and ends with the same tables and the same results. Deterministic
// by construction: apply() reads only its arguments and the tables (time comes in
// `env.at`, ids in the commands), iterates Maps only in insertion (= log) order, and
// never looks at a clock, a random source or the environment.
import {
  type CheckpointPolicy,
  COMMAND_LIMITS,
  type Command,
  decodeEnvelopeBytes,
  type Envelope,
  InvalidCommandError,
} from './commands.js';
import { type AttemptEnd, type AttemptRecord, type BlobRecord, type CheckpointRecord, imageReferences, isFinal, type JobRecord, type JobState, type NodeRecord, type NodeState, type TokenRecord } from './records.js';
import { accepted, type ApplyResult, rejected } from './result.js';
import { decodeSnapshot, emptyTables, encodeSnapshot, type Tables } from './snapshot.js';
import { cloneSpec, type JobSpec } from './spec.js';
import { type Assignment, assignment, findCheckpoint, type JobSummary, jobSummary, type JobView, jobView, liveBlobs, type NodeView, nodeView } from './views.js';

type Cmd<T extends Command['type']> = Extract<Command, { type: T }>;

/** Slots and memory taken on a node by its open attempts. */
export interface NodeUsage {
  running: number;
  memoryMB: number;
}

export const LIST_JOBS_DEFAULT_LIMIT = 100;
export const LIST_JOBS_MAX_LIMIT = 1000;

export class ClusterState {
  private t: Tables = emptyTables();
  /** Ids of pending and running jobs. Derived from `jobs`: rebuilt on restore, not in snapshots. */
  private open = new Set<string>();
  /** The jobs in submission order (= `jobs` Map order), for paging by position. Derived like `open`. */
  private byOrder: JobRecord[] = [];
  /** Nodes that went lost or left since this object was made: a cheap change signal for the node. */
  private departures = 0;
  /** nodeJoined commands applied since this object was made (addresses may have changed): likewise. */
  private registrations = 0;

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
    return this.departures;
  }
  /** How many nodeJoined commands this process applied (not replicated, not in snapshots). */
  get registrationCount(): number {
    return this.registrations;
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
    return [...this.open].map((id) => this.job(id)).sort((a, b) => a.order - b.order);
  }

  /** Jobs waiting for a node: the backlog submitJob's `maxPending` caps. */
  pendingCount(): number {
    let n = 0;
    for (const id of this.open) if (this.job(id).state === 'pending') n++;
    return n;
  }

  /**
   * Jobs newest first by submission (log) order, starting after the job submitted at
   * log index `beforeOrder` (exclusive; null: from the newest). A position rather than
   * an id, so a walk resumes correctly when its last job was forgotten meanwhile, and
   * jobs submitted during a walk (newer than every position) never show up in it.
   */
  *jobsNewestFirst(beforeOrder: number | null = null): Generator<Readonly<JobRecord>> {
    const all = this.byOrder;
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

  /** Usage of every node that has open attempts (others use nothing). */
  usageByNode(): Map<string, NodeUsage> {
    const usage = new Map<string, NodeUsage>();
    for (const id of this.open) {
      const job = this.job(id);
      if (job.state !== 'running' || job.node === null) continue;
      const u = usage.get(job.node) ?? { running: 0, memoryMB: 0 };
      u.running += 1;
      u.memoryMB += job.spec.memoryMB ?? 0;
      usage.set(job.node, u);
    }
    return usage;
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
   * decides the same), so one bad proposal cannot stop the log.
   */
  applyBytes(index: number, data: Uint8Array): ApplyResult {
    let env: Envelope;
    try {
      env = decodeEnvelopeBytes(data);
    } catch (err) {
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
    switch (cmd.type) {
      case 'submitJob':
        return this.submitJob(index, cmd);
      case 'cancelJob':
        return this.cancelJob(at, cmd);
      case 'assignJob':
        return this.assignJob(at, cmd);
      case 'jobStarted':
        return this.jobStarted(at, cmd);
      case 'jobExited':
        return this.jobExited(at, cmd);
      case 'checkpointCommitted':
        return this.checkpointCommitted(at, cmd);
      case 'setPolicy':
        return this.setPolicy(cmd);
      case 'nodeJoined':
        return this.nodeJoined(at, cmd);
      case 'nodeAlive':
        return this.nodeAlive(at, cmd);
      case 'nodeSuspect':
        return this.nodeSuspect(at, cmd);
      case 'aclBootstrap':
      case 'tokenCreated':
        return this.tokenCreated(cmd);
      case 'tokenRevoked':
        return this.tokenRevoked(cmd);
      case 'nodeLost':
      case 'nodeLeft':
        return this.nodeGone(at, cmd);
      case 'setRole':
        return this.setRole(cmd);
      case 'blobAdded':
        return this.blobAdded(at, cmd);
      case 'blobHolders':
        return this.blobHolders(cmd);
      case 'forgetJobs':
        return this.forgetJobs(cmd);
      case 'forgetBlobs':
        return this.forgetBlobs(cmd);
    }
  }

  // ---- jobs ----

  private submitJob(index: number, cmd: Cmd<'submitJob'>): ApplyResult {
    const { id, spec, createdAt } = cmd.job;
    if (this.t.jobs.has(id)) return rejected('JOB_EXISTS', `job ${id} exists already`);
    if (cmd.maxPending !== undefined) {
      const pending = this.pendingCount();
      if (pending >= cmd.maxPending) return rejected('TOO_MANY_PENDING', `${pending} jobs are pending, the most the gateway accepts (maxPendingJobs ${cmd.maxPending})`);
    }
    const job: JobRecord = {
      id,
      order: index,
      spec,
      inputs: cmd.job.inputs ?? {},
      state: 'pending',
      epoch: 0,
      node: null,
      policy: initialPolicy(spec),
      latestCheckpoint: null,
      exitCode: null,
      resultBlob: null,
      createdAt,
      startedAt: null,
      finishedAt: null,
    };
    this.t.jobs.set(id, job);
    this.byOrder.push(job);
    this.t.attempts.set(id, []);
    this.t.checkpoints.set(id, []);
    this.open.add(id);
    return accepted({ jobId: id, state: job.state });
  }

  private cancelJob(at: number, cmd: Cmd<'cancelJob'>): ApplyResult {
    const job = this.t.jobs.get(cmd.jobId);
    if (job === undefined) return notFound(cmd.jobId);
    if (isFinal(job.state)) return finished(job);
    if (job.state === 'running') this.endAttempt(job, at, 'cancelled', null);
    this.finish(job, at, 'cancelled');
    return accepted({ jobId: job.id, state: job.state });
  }

  /**
   * Opens attempt `epoch` = current + 1 on `node`. Allowed on a pending job, and on a
   * running one (a migration: the old attempt ends, `reassigned`, and its node is
   * fenced off). Requiring exactly current + 1 makes a duplicated scheduler decision
   * (two plan rounds before the first applies) fail with STALE_EPOCH instead of
   * opening a second attempt.
   */
  private assignJob(at: number, cmd: Cmd<'assignJob'>): ApplyResult {
    const job = this.t.jobs.get(cmd.jobId);
    if (job === undefined) return notFound(cmd.jobId);
    if (isFinal(job.state)) return finished(job);
    if (cmd.epoch !== job.epoch + 1) {
      return rejected('STALE_EPOCH', `assignment of job ${job.id} for epoch ${cmd.epoch}: the next epoch is ${job.epoch + 1}`);
    }
    const node = this.t.nodes.get(cmd.node);
    if (node === undefined) return rejected('NODE_UNKNOWN', `node ${cmd.node} is not a member`);
    if (node.state !== 'alive') return rejected('NODE_NOT_ALIVE', `node ${node.id} is ${node.state}; jobs go to alive nodes only`);
    if (cmd.fromCheckpoint !== null && findCheckpoint(this.t, job.id, cmd.fromCheckpoint) === null) {
      return rejected('CHECKPOINT_UNKNOWN', `job ${job.id} has no committed checkpoint ${cmd.fromCheckpoint.seq} of epoch ${cmd.fromCheckpoint.epoch}`);
    }
    const usage = this.usageByNode().get(node.id) ?? { running: 0, memoryMB: 0 };
    if (job.state === 'running' && job.node === node.id) {
      usage.running -= 1;
      usage.memoryMB -= job.spec.memoryMB ?? 0;
    }
    if (!fits(node, usage, job.spec)) {
      return rejected('NODE_FULL', `node ${node.id} runs ${usage.running} of ${node.slots} slots, ${usage.memoryMB} of ${node.memoryMB} MB; job ${job.id} does not fit`);
    }
    if (job.state === 'running') this.endAttempt(job, at, 'reassigned', null);
    const attempt: AttemptRecord = {
      jobId: job.id,
      epoch: cmd.epoch,
      node: node.id,
      fromCheckpoint: cmd.fromCheckpoint === null ? null : { seq: cmd.fromCheckpoint.seq, epoch: cmd.fromCheckpoint.epoch },
      reason: cmd.reason,
      assignedAt: at,
      restoreError: null,
      startedAt: null,
      endedAt: null,
      end: null,
      exitCode: null,
      failure: null,
    };
    this.attemptsOf(job.id).push(attempt);
    job.epoch = cmd.epoch;
    job.node = node.id;
    job.state = 'running';
    return accepted({ jobId: job.id, epoch: job.epoch, node: node.id });
  }

  /**
   * FENCING. A worker's report counts only if it comes from the job's current
   * attempt: same epoch, same node, attempt still open. Anything else (an older
   * epoch, a node the job moved away from, a node declared lost that comes back) is
   * STALE_EPOCH; a report on a finished job is JOB_FINISHED. So a result is
   * accepted once, whatever a partitioned or revived node says.
   */
  private fence(cmd: { jobId: string; epoch: number; node: string }): { job: JobRecord; attempt: AttemptRecord } | ApplyResult {
    const job = this.t.jobs.get(cmd.jobId);
    if (job === undefined) return notFound(cmd.jobId);
    const attempt = job.epoch === 0 ? undefined : this.attemptsOf(job.id)[job.epoch - 1];
    if (cmd.epoch !== job.epoch || attempt === undefined || attempt.node !== cmd.node) {
      const current = attempt === undefined ? 'none' : `epoch ${job.epoch} on ${attempt.node}`;
      return rejected('STALE_EPOCH', `report from ${cmd.node} for epoch ${cmd.epoch} of job ${job.id}: the current attempt is ${current}`);
    }
    if (isFinal(job.state)) return finished(job);
    if (attempt.end !== null) {
      return rejected('STALE_EPOCH', `report from ${cmd.node} for epoch ${cmd.epoch} of job ${job.id}: that attempt ended (${attempt.end})`);
    }
    return { job, attempt };
  }

  private jobStarted(at: number, cmd: Cmd<'jobStarted'>): ApplyResult {
    const f = this.fence(cmd);
    if ('ok' in f) return f;
    // A repeated report (a worker restarted and reconciled) keeps the first time.
    f.attempt.startedAt ??= at;
    f.job.startedAt ??= at;
    if (cmd.restoreError !== undefined) f.attempt.restoreError ??= cmd.restoreError;
    return accepted({ jobId: f.job.id, epoch: f.job.epoch, startedAt: f.attempt.startedAt });
  }

  private jobExited(at: number, cmd: Cmd<'jobExited'>): ApplyResult {
    const f = this.fence(cmd);
    if ('ok' in f) return f;
    const { job } = f;
    this.endAttempt(job, at, 'exited', cmd.exitCode);
    const attempt = this.attemptsOf(job.id)[job.epoch - 1];
    if (attempt !== undefined && cmd.failure !== undefined) attempt.failure = cmd.failure;
    job.exitCode = cmd.exitCode;
    job.resultBlob = cmd.resultBlob ?? null;
    // A failure reported by the node fails the job even after exit code 0 (outputs over its cap).
    this.finish(job, at, cmd.exitCode === 0 && cmd.failure === undefined ? 'succeeded' : 'failed');
    return accepted({ jobId: job.id, state: job.state, exitCode: cmd.exitCode });
  }

  /**
   * Records a checkpoint whose bundle the proposer saw on k holders. From here on it
   * is the job's resume point. Within an attempt, seq increases; a resumed attempt
   * may count from 1 again (checkpoints are identified by epoch and seq).
   */
  private checkpointCommitted(at: number, cmd: Cmd<'checkpointCommitted'>): ApplyResult {
    const f = this.fence(cmd);
    if ('ok' in f) return f;
    const { job } = f;
    const list = this.checkpointsOf(job.id);
    const last = list[list.length - 1];
    if (last !== undefined && last.epoch === cmd.epoch && cmd.seq <= last.seq) {
      return rejected('CHECKPOINT_OUT_OF_ORDER', `checkpoint ${cmd.seq} of job ${job.id} epoch ${cmd.epoch}: checkpoint ${last.seq} is committed already`);
    }
    const conflict = this.blobConflict(cmd.blob, 'checkpoint', cmd.bytes);
    if (conflict !== null) return conflict;
    list.push({
      jobId: job.id,
      epoch: cmd.epoch,
      seq: cmd.seq,
      node: cmd.node,
      blob: cmd.blob,
      bytes: cmd.bytes,
      durationMs: cmd.durationMs,
      frozenMs: cmd.frozenMs ?? null,
      ranMs: cmd.ranMs ?? null,
      logOffset: cmd.logOffset,
      holders: cmd.holders.slice(),
      at,
    });
    job.latestCheckpoint = { seq: cmd.seq, epoch: cmd.epoch };
    this.upsertBlob(at, { id: cmd.blob, kind: 'checkpoint', bytes: cmd.bytes, holders: cmd.holders });
    return accepted({ jobId: job.id, epoch: cmd.epoch, seq: cmd.seq });
  }

  private setPolicy(cmd: Cmd<'setPolicy'>): ApplyResult {
    const job = this.t.jobs.get(cmd.jobId);
    if (job === undefined) return notFound(cmd.jobId);
    if (isFinal(job.state)) return finished(job);
    job.policy = { mode: cmd.policy.mode, intervalSeconds: cmd.policy.intervalSeconds, reason: cmd.policy.reason };
    return accepted({ jobId: job.id, mode: job.policy.mode, intervalSeconds: job.policy.intervalSeconds });
  }

  // ---- nodes ----

  /**
   * A new member, or a known one (re)joining: addresses and capacity are replaced, and
   * it is alive. Whoever proposed this is trusted to speak for the node: a committed
   * command does not say who asked, and apply must be the same on every node, so it
   * cannot check. Who may register a node and change its addresses is decided before
   * proposing, at the leader and the gateway (src/node/registration.ts).
   */
  private nodeJoined(at: number, cmd: Cmd<'nodeJoined'>): ApplyResult {
    const info = cmd.node;
    this.registrations++;
    const versions = { docker: info.versions.docker, criu: info.versions.criu, kernel: info.versions.kernel };
    const known = this.t.nodes.get(info.id);
    if (known === undefined) {
      const node: NodeRecord = {
        id: info.id,
        api: info.api,
        peer: info.peer,
        role: info.role ?? 'learner',
        state: 'alive',
        slots: info.slots,
        memoryMB: info.memoryMB,
        versions,
        joinedAt: at,
        seenAt: at,
        stateSince: at,
        losses: 0,
        upMs: 0,
        ...(info.cert === undefined ? {} : { cert: info.cert }),
      };
      this.t.nodes.set(node.id, node);
      return accepted({ node: node.id, state: node.state, role: node.role });
    }
    known.api = info.api;
    known.peer = info.peer;
    known.role = info.role ?? known.role;
    known.slots = info.slots;
    known.memoryMB = info.memoryMB;
    known.versions = versions;
    known.seenAt = at;
    if (info.cert !== undefined && info.cert !== known.cert) {
      // A node registering with a new certificate (it enrolled again): the old one is done.
      if (known.cert !== undefined) this.revokeCert(known.cert, known.id, at);
      known.cert = info.cert;
    }
    if (known.state !== 'alive') moveNode(known, 'alive', at);
    return accepted({ node: known.id, state: known.state, role: known.role });
  }

  private nodeAlive(at: number, cmd: Cmd<'nodeAlive'>): ApplyResult {
    const node = this.t.nodes.get(cmd.node);
    if (node === undefined) return unknownNode(cmd.node);
    if (node.state === 'left') return rejected('NODE_LEFT', `node ${node.id} left the cluster; it comes back by joining`);
    if (node.state !== 'alive') {
      moveNode(node, 'alive', at);
      node.seenAt = at;
    }
    return accepted({ node: node.id, state: node.state });
  }

  private nodeSuspect(at: number, cmd: Cmd<'nodeSuspect'>): ApplyResult {
    const node = this.t.nodes.get(cmd.node);
    if (node === undefined) return unknownNode(cmd.node);
    if (node.state === 'lost' || node.state === 'left') return rejected('NODE_NOT_ALIVE', `node ${node.id} is ${node.state}`);
    if (node.state === 'alive') moveNode(node, 'suspect', at);
    return accepted({ node: node.id, state: node.state });
  }

  /**
   * nodeLost / nodeLeft: the node's open attempts end and their jobs go back to
   * pending (same epoch; the scheduler assigns the next one). Its late reports are
   * then STALE_EPOCH. Repeating it changes nothing; a node that left stays left.
   */
  private nodeGone(at: number, cmd: Cmd<'nodeLost'> | Cmd<'nodeLeft'>): ApplyResult {
    const node = this.t.nodes.get(cmd.node);
    if (node === undefined) return unknownNode(cmd.node);
    const next = cmd.type === 'nodeLost' ? 'lost' : 'left';
    if (node.state === next || node.state === 'left') return accepted({ node: node.id, state: node.state, requeued: [] });
    moveNode(node, next, at);
    this.departures++;
    if (next === 'left' && node.cert !== undefined) this.revokeCert(node.cert, node.id, at);
    if (next === 'lost') node.losses = (node.losses ?? 0) + 1;
    const end: AttemptEnd = cmd.type === 'nodeLost' ? 'nodeLost' : 'nodeLeft';
    const requeued: string[] = [];
    for (const job of this.openJobs() as JobRecord[]) {
      if (job.state !== 'running' || job.node !== node.id) continue;
      this.endAttempt(job, at, end, null);
      job.state = 'pending';
      job.node = null;
      requeued.push(job.id);
    }
    return accepted({ node: node.id, state: node.state, requeued });
  }

  private revokeCert(serial: string, node: string, at: number): void {
    if (!this.t.revokedCerts.has(serial)) this.t.revokedCerts.set(serial, { serial, node, at });
  }

  // ---- API tokens ----

  private tokenCreated(cmd: Cmd<'aclBootstrap'> | Cmd<'tokenCreated'>): ApplyResult {
    if (cmd.type === 'aclBootstrap' && this.t.aclBootstrapped) return rejected('ACL_BOOTSTRAPPED', 'the cluster\'s first admin token was made already; ask an admin for a token');
    if (this.t.tokens.has(cmd.token.id)) return rejected('TOKEN_EXISTS', `a token with id ${cmd.token.id} exists`);
    if (this.t.tokens.size >= COMMAND_LIMITS.maxTokens) return rejected('TOO_MANY_TOKENS', `the cluster keeps at most ${COMMAND_LIMITS.maxTokens} tokens; revoke some first`);
    const t = cmd.token;
    this.t.tokens.set(t.id, { id: t.id, name: t.name, role: t.role, hash: t.hash, createdAt: t.createdAt, expiresAt: t.expiresAt });
    if (cmd.type === 'aclBootstrap') this.t.aclBootstrapped = true;
    return accepted({ id: t.id });
  }

  private tokenRevoked(cmd: Cmd<'tokenRevoked'>): ApplyResult {
    if (!this.t.tokens.delete(cmd.id)) return rejected('TOKEN_UNKNOWN', `no token ${cmd.id}`);
    return accepted({ id: cmd.id, revoked: true });
  }

  private setRole(cmd: Cmd<'setRole'>): ApplyResult {
    const node = this.t.nodes.get(cmd.node);
    if (node === undefined) return unknownNode(cmd.node);
    node.role = cmd.role;
    return accepted({ node: node.id, role: node.role });
  }

  // ---- blobs ----

  /** Adds a blob, or more holders of a known one (content-addressed: same id, same bytes). */
  private blobAdded(at: number, cmd: Cmd<'blobAdded'>): ApplyResult {
    const conflict = this.blobConflict(cmd.id, cmd.kind, cmd.bytes);
    if (conflict !== null) return conflict;
    if (cmd.kind === 'image' && cmd.replace === false) {
      const taken = this.imageReferencesElsewhere(cmd.id, imageReferences(cmd.name ?? null));
      if (taken.length > 0) {
        const list = taken.map(([ref, blob]) => `${ref} names image ${blob}`).join(', ');
        return rejected('IMAGE_EXISTS', `${list}; without replace a reference keeps its image`);
      }
    }
    const blob = this.upsertBlob(at, cmd);
    return accepted({ blob: blob.id, holders: blob.holders.slice() });
  }

  /** Replaces a blob's holders; an empty list forgets the blob (garbage collected everywhere). */
  private blobHolders(cmd: Cmd<'blobHolders'>): ApplyResult {
    const blob = this.t.blobs.get(cmd.id);
    if (blob === undefined) return rejected('BLOB_UNKNOWN', `blob ${cmd.id} is not known`);
    if (cmd.holders.length === 0) {
      this.t.blobs.delete(cmd.id);
      return accepted({ blob: cmd.id, holders: [] });
    }
    blob.holders = cmd.holders.slice();
    return accepted({ blob: blob.id, holders: blob.holders.slice() });
  }

  // ---- retention ----

  private forgetJobs(cmd: Cmd<'forgetJobs'>): ApplyResult {
    const forgotten: string[] = [];
    for (const id of cmd.jobIds) {
      const job = this.t.jobs.get(id);
      if (job === undefined || !isFinal(job.state) || job.finishedAt === null || job.finishedAt > cmd.finishedBefore) continue;
      this.t.jobs.delete(id);
      this.t.attempts.delete(id);
      this.t.checkpoints.delete(id);
      this.open.delete(id);
      forgotten.push(id);
    }
    if (forgotten.length > 0) this.byOrder = this.byOrder.filter((job) => this.t.jobs.has(job.id));
    return accepted({ forgotten });
  }

  private forgetBlobs(cmd: Cmd<'forgetBlobs'>): ApplyResult {
    const live = liveBlobs(this.t);
    const forgotten: string[] = [];
    for (const id of cmd.ids) {
      const blob = this.t.blobs.get(id);
      if (blob === undefined || live.has(id) || blob.addedAt > cmd.addedBefore) continue;
      this.t.blobs.delete(id);
      forgotten.push(id);
    }
    return accepted({ forgotten });
  }

  private blobConflict(id: string, kind: BlobRecord['kind'], bytes: number): ApplyResult | null {
    const known = this.t.blobs.get(id);
    if (known === undefined || (known.kind === kind && known.bytes === bytes)) return null;
    return rejected('BLOB_CONFLICT', `blob ${id} is known as a ${known.kind} of ${known.bytes} bytes, not a ${kind} of ${bytes} bytes`);
  }

  private upsertBlob(at: number, b: { id: string; kind: BlobRecord['kind']; bytes: number; holders: string[]; name?: string }): BlobRecord {
    const known = this.t.blobs.get(b.id);
    let blob: BlobRecord;
    if (known !== undefined) {
      for (const h of b.holders) if (!known.holders.includes(h)) known.holders.push(h);
      if (b.name !== undefined) known.name = b.name;
      // Added again (the same bytes uploaded for a new job): retention must not forget
      // it before the job that will need it is committed.
      if (known.kind !== 'image') known.addedAt = Math.max(known.addedAt, at);
      blob = known;
    } else {
      blob = { id: b.id, kind: b.kind, bytes: b.bytes, holders: b.holders.slice(), name: b.name ?? null, addedAt: at };
      this.t.blobs.set(blob.id, blob);
    }
    if (blob.kind === 'image' && b.name !== undefined) this.claimImageReferences(blob);
    return blob;
  }

  /** Which of `refs` name an image blob other than `id` now, as [reference, blob id] pairs. */
  private imageReferencesElsewhere(id: string, refs: readonly string[]): Array<[string, string]> {
    const wanted = new Set(refs);
    const out: Array<[string, string]> = [];
    if (wanted.size === 0) return out;
    for (const other of this.t.blobs.values()) {
      if (other.id === id || other.kind !== 'image') continue;
      for (const ref of imageReferences(other.name)) if (wanted.has(ref)) out.push([ref, other.id]);
    }
    return out;
  }

  /**
   * A reference names one image blob at a time: the blob whose blobAdded named it
   * last (the newest import wins, as a `docker load` retags). Other image blobs lose
   * it; one left with no reference keeps name null until it is forgotten.
   */
  private claimImageReferences(owner: BlobRecord): void {
    const claimed = new Set(imageReferences(owner.name));
    if (claimed.size === 0) return;
    for (const other of this.t.blobs.values()) {
      if (other === owner || other.kind !== 'image' || other.name === null) continue;
      const refs = imageReferences(other.name);
      const kept = refs.filter((r) => !claimed.has(r));
      if (kept.length < refs.length) other.name = kept.length > 0 ? kept.join(' ') : null;
    }
  }

  // ---- helpers ----

  private job(id: string): JobRecord {
    const job = this.t.jobs.get(id);
    if (job === undefined) throw new Error(`state machine: open job ${id} is not in the jobs table`);
    return job;
  }

  private attemptsOf(jobId: string): AttemptRecord[] {
    const list = this.t.attempts.get(jobId);
    if (list === undefined) throw new Error(`state machine: job ${jobId} has no attempts row`);
    return list;
  }

  private checkpointsOf(jobId: string): CheckpointRecord[] {
    const list = this.t.checkpoints.get(jobId);
    if (list === undefined) throw new Error(`state machine: job ${jobId} has no checkpoints row`);
    return list;
  }

  private endAttempt(job: JobRecord, at: number, end: AttemptEnd, exitCode: number | null): void {
    const attempt = this.attemptsOf(job.id)[job.epoch - 1];
    if (attempt === undefined || attempt.end !== null) throw new Error(`state machine: job ${job.id} has no open attempt ${job.epoch} to end`);
    attempt.endedAt = at;
    attempt.end = end;
    attempt.exitCode = exitCode;
  }

  private finish(job: JobRecord, at: number, state: JobState): void {
    job.state = state;
    job.finishedAt = at;
    this.open.delete(job.id);
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

  /** What `nodeId` must run: its open attempts, oldest job first. Anything else it runs is stale and must stop. */
  assignmentsFor(nodeId: string): Assignment[] {
    const out: Assignment[] = [];
    for (const job of this.openJobs() as JobRecord[]) {
      if (job.state !== 'running' || job.node !== nodeId) continue;
      out.push(assignment(this.t, job, this.attemptsOf(job.id)[job.epoch - 1]!));
    }
    return out;
  }

  // ---- snapshots ---------------------------------------------------------------

  /** All tables and the dedupe table, with a format version byte. */
  snapshot(): Uint8Array {
    return encodeSnapshot(this.t);
  }

  /** The state a snapshot was taken of; throws SnapshotFormatError or an invariant error on a bad one. */
  static restore(bytes: Uint8Array): ClusterState {
    const state = new ClusterState();
    state.t = decodeSnapshot(bytes);
    state.open = new Set([...state.t.jobs.values()].filter((j) => !isFinal(j.state)).map((j) => j.id));
    state.byOrder = [...state.t.jobs.values()];
    state.checkInvariants();
    return state;
  }

  /**
   * Asserts the invariants that tie the tables together; throws on the first broken
   * one. Cheap enough for tests after every apply and for every restore.
   */
  checkInvariants(): void {
    const broken = (what: string): never => {
      throw new Error(`state machine invariant broken: ${what}`);
    };
    for (const job of this.t.jobs.values()) {
      const attempts = this.t.attempts.get(job.id) ?? broken(`job ${job.id} has no attempts row`);
      const checkpoints = this.t.checkpoints.get(job.id) ?? broken(`job ${job.id} has no checkpoints row`);
      if (attempts.length !== job.epoch) broken(`job ${job.id} is at epoch ${job.epoch} with ${attempts.length} attempts`);
      attempts.forEach((a, i) => {
        if (a.epoch !== i + 1 || a.jobId !== job.id) broken(`attempt ${i} of job ${job.id} is ${a.jobId}/${a.epoch}`);
        if (i < attempts.length - 1 && a.end === null) broken(`job ${job.id} has an open attempt ${a.epoch} before its current one`);
      });
      const current = attempts[attempts.length - 1];
      const isOpen = current !== undefined && current.end === null;
      if (this.open.has(job.id) === isFinal(job.state)) broken(`job ${job.id} (${job.state}) is ${this.open.has(job.id) ? '' : 'not '}in the open set`);
      if (job.state === 'running') {
        if (current === undefined || !isOpen || current.node !== job.node) return broken(`running job ${job.id} has no open attempt on ${job.node}`);
        const node = this.t.nodes.get(current.node);
        if (node === undefined || (node.state !== 'alive' && node.state !== 'suspect')) broken(`job ${job.id} runs on ${current.node}, which is ${node?.state ?? 'unknown'}`);
      } else if (isOpen) {
        broken(`${job.state} job ${job.id} has an open attempt ${current.epoch}`);
      }
      if (job.state === 'pending' && job.node !== null) broken(`pending job ${job.id} has node ${job.node}`);
      if (isFinal(job.state) !== (job.finishedAt !== null)) broken(`job ${job.id} is ${job.state} with finishedAt ${job.finishedAt}`);
      const newest = checkpoints[checkpoints.length - 1];
      const want = newest === undefined ? null : `${newest.epoch}/${newest.seq}`;
      const got = job.latestCheckpoint === null ? null : `${job.latestCheckpoint.epoch}/${job.latestCheckpoint.seq}`;
      if (want !== got) broken(`job ${job.id}'s latest checkpoint is ${got}, its newest committed one ${want}`);
    }
    if (this.t.attempts.size !== this.t.jobs.size || this.t.checkpoints.size !== this.t.jobs.size) broken('attempts/checkpoints rows do not match the jobs table');
    // jobsNewestFirst binary-searches byOrder by submission order.
    if (this.byOrder.length !== this.t.jobs.size) broken(`${this.byOrder.length} jobs in submission order, ${this.t.jobs.size} in the jobs table`);
    let previousOrder = -1;
    for (const [i, job] of [...this.t.jobs.values()].entries()) {
      if (this.byOrder[i] !== job) broken(`job ${job.id} is not at position ${i} of the submission order`);
      if (job.order <= previousOrder) broken(`job ${job.id} (order ${job.order}) comes after order ${previousOrder} in the jobs table`);
      previousOrder = job.order;
    }
    const imageOf = new Map<string, string>();
    for (const blob of this.t.blobs.values()) {
      if (blob.kind !== 'image') continue;
      for (const ref of imageReferences(blob.name)) {
        const other = imageOf.get(ref);
        if (other !== undefined && other !== blob.id) broken(`image reference ${ref} names blobs ${other} and ${blob.id}`);
        imageOf.set(ref, blob.id);
      }
    }
  }
}

/** Changes a node's state, adding the time it was up (alive or suspect) to upMs. */
function moveNode(node: NodeRecord, next: NodeState, at: number): void {
  if (node.state === 'alive' || node.state === 'suspect') node.upMs = (node.upMs ?? 0) + Math.max(0, at - node.stateSince);
  node.state = next;
  node.stateSince = at;
}

function initialPolicy(spec: JobSpec): CheckpointPolicy {
  switch (spec.checkpoint.mode) {
    case 'off':
      return { mode: 'off', intervalSeconds: null, reason: 'checkpoints turned off in the job spec' };
    case 'interval':
      return { mode: 'interval', intervalSeconds: spec.checkpoint.intervalSeconds, reason: 'fixed interval from the job spec' };
    case 'auto':
      return { mode: 'auto', intervalSeconds: null, reason: 'not computed yet' };
  }
}

/** Whether a job fits next to `usage` on a node: a free slot, and its memory (when declared) within the node's. */
export function fits(node: Readonly<NodeRecord>, usage: NodeUsage, spec: JobSpec): boolean {
  if (usage.running >= node.slots) return false;
  return spec.memoryMB === null || usage.memoryMB + spec.memoryMB <= node.memoryMB;
}

/** Code-unit order of ids (not locale order): the same on every machine. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function notFound(jobId: string): ApplyResult {
  return rejected('JOB_NOT_FOUND', `job ${jobId} does not exist`);
}

function finished(job: JobRecord): ApplyResult {
  return rejected('JOB_FINISHED', `job ${job.id} is ${job.state} already`);
}

function unknownNode(id: string): ApplyResult {
  return rejected('NODE_UNKNOWN', `node ${id} is not a member`);
}
