// Applying the job commands: submit, cancel, assign, the worker's reports (started,
// exited, checkpoint committed) and the checkpoint policy. Called by ClusterState in
// log order; each either changes the tables or returns a rejection and changes none.
import type { CheckpointPolicy } from './commands.js';
import { blobConflict, upsertBlob } from './apply-blobs.js';
import { type Cmd, finished, fits, type LiveTables, notFound } from './live-tables.js';
import { type AttemptRecord, isFinal, type JobRecord } from './records.js';
import { accepted, type ApplyResult, rejected } from './result.js';
import { fullSpec, type JobSpec } from './spec.js';
import { findCheckpoint } from './views.js';

export function submitJob(live: LiveTables, _at: number, cmd: Cmd<'submitJob'>, index: number): ApplyResult {
  const { id, createdAt } = cmd.job;
  const spec = fullSpec(cmd.job.spec);
  if (live.t.jobs.has(id)) return rejected('JOB_EXISTS', `job ${id} exists already`);
  // Decided here, in log order, so two submissions of one name through two gateways cannot both pass.
  const holder = spec.name === null ? undefined : live.openNames.get(spec.name);
  if (holder !== undefined) return rejected('NAME_IN_USE', `job ${holder} is named ${spec.name ?? ''} and is not final yet; a name is unique among pending and running jobs`);
  if (cmd.maxPending !== undefined) {
    const pending = live.pendingCount();
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
  live.t.jobs.set(id, job);
  live.byOrder.push(job);
  live.t.attempts.set(id, []);
  live.t.checkpoints.set(id, []);
  live.openJob(job);
  return accepted({ jobId: id, state: job.state });
}

export function cancelJob(live: LiveTables, at: number, cmd: Cmd<'cancelJob'>): ApplyResult {
  const job = live.t.jobs.get(cmd.jobId);
  if (job === undefined) return notFound(cmd.jobId);
  if (isFinal(job.state)) return finished(job);
  if (job.state === 'running') live.endAttempt(job, at, 'cancelled', null);
  live.finish(job, at, 'cancelled');
  return accepted({ jobId: job.id, state: job.state });
}

/**
 * Opens attempt `epoch` = current + 1 on `node`. Allowed on a pending job, and on a
 * running one (a migration: the old attempt ends, `reassigned`, and its node is
 * fenced off). Requiring exactly current + 1 makes a duplicated scheduler decision
 * (two plan rounds before the first applies) fail with STALE_EPOCH instead of
 * opening a second attempt.
 */
export function assignJob(live: LiveTables, at: number, cmd: Cmd<'assignJob'>): ApplyResult {
  const job = live.t.jobs.get(cmd.jobId);
  if (job === undefined) return notFound(cmd.jobId);
  if (isFinal(job.state)) return finished(job);
  if (cmd.epoch !== job.epoch + 1) {
    return rejected('STALE_EPOCH', `assignment of job ${job.id} for epoch ${cmd.epoch}: the next epoch is ${job.epoch + 1}`);
  }
  const node = live.t.nodes.get(cmd.node);
  if (node === undefined) return rejected('NODE_UNKNOWN', `node ${cmd.node} is not a member`);
  if (node.state !== 'alive') return rejected('NODE_NOT_ALIVE', `node ${node.id} is ${node.state}; jobs go to alive nodes only`);
  if (node.draining) return rejected('NODE_DRAINING', `node ${node.id} is being drained; no job goes there until it is undrained`);
  if (cmd.fromCheckpoint !== null && findCheckpoint(live.t, job.id, cmd.fromCheckpoint) === null) {
    return rejected('CHECKPOINT_UNKNOWN', `job ${job.id} has no committed checkpoint ${cmd.fromCheckpoint.seq} of epoch ${cmd.fromCheckpoint.epoch}`);
  }
  const usage = live.usageOf(node.id);
  if (job.state === 'running' && job.node === node.id) {
    usage.running -= 1;
    usage.memoryMB -= job.spec.memoryMB ?? 0;
  }
  if (!fits(node, usage, job.spec)) {
    return rejected('NODE_FULL', `node ${node.id} runs ${usage.running} of ${node.slots} slots, ${usage.memoryMB} of ${node.memoryMB} MB; job ${job.id} does not fit`);
  }
  if (job.state === 'running') live.endAttempt(job, at, 'reassigned', null);
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
  live.attemptsOf(job.id).push(attempt);
  job.epoch = cmd.epoch;
  live.markRunning(job, node.id);
  return accepted({ jobId: job.id, epoch: job.epoch, node: node.id });
}

type WorkerReport = { jobId: string; epoch: number; node: string };

/**
 * FENCING. A worker's report counts only if it comes from the job's current
 * attempt: same epoch, same node, attempt still open. Anything else (an older
 * epoch, a node the job moved away from, a node declared lost that comes back) is
 * STALE_EPOCH; a report on a finished job is JOB_FINISHED. So a result is
 * accepted once, whatever a partitioned or revived node says.
 */
function fence(live: LiveTables, cmd: WorkerReport): { job: JobRecord; attempt: AttemptRecord } | ApplyResult {
  const job = live.t.jobs.get(cmd.jobId);
  if (job === undefined) return notFound(cmd.jobId);
  const attempt = job.epoch === 0 ? undefined : live.attemptsOf(job.id)[job.epoch - 1];
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

/**
 * fence() for an exit or a checkpoint. With the unsafe acceptExitWithoutEpochCheck
 * option, any report on an unfinished job passes; `attempt` is then the job's open
 * attempt, whoever reported, or null when it has none.
 */
function fenceResult(live: LiveTables, cmd: WorkerReport): { job: JobRecord; attempt: AttemptRecord | null } | ApplyResult {
  if (live.options.acceptExitWithoutEpochCheck !== true) return fence(live, cmd);
  const job = live.t.jobs.get(cmd.jobId);
  if (job === undefined) return notFound(cmd.jobId);
  if (isFinal(job.state)) return finished(job);
  const current = job.epoch === 0 ? undefined : live.attemptsOf(job.id)[job.epoch - 1];
  return { job, attempt: current !== undefined && current.end === null ? current : null };
}

export function jobStarted(live: LiveTables, at: number, cmd: Cmd<'jobStarted'>): ApplyResult {
  const f = fence(live, cmd);
  if ('ok' in f) return f;
  // A repeated report (a worker restarted and reconciled) keeps the first time.
  f.attempt.startedAt ??= at;
  f.job.startedAt ??= at;
  if (cmd.restoreError !== undefined) f.attempt.restoreError ??= cmd.restoreError;
  return accepted({ jobId: f.job.id, epoch: f.job.epoch, startedAt: f.attempt.startedAt });
}

export function jobExited(live: LiveTables, at: number, cmd: Cmd<'jobExited'>): ApplyResult {
  const f = fenceResult(live, cmd);
  if ('ok' in f) return f;
  const { job, attempt } = f;
  if (attempt !== null) {
    live.endAttempt(job, at, 'exited', cmd.exitCode);
    if (cmd.failure !== undefined) attempt.failure = cmd.failure;
  }
  job.exitCode = cmd.exitCode;
  job.resultBlob = cmd.resultBlob ?? null;
  // A failure reported by the node fails the job even after exit code 0 (outputs over its cap).
  live.finish(job, at, cmd.exitCode === 0 && cmd.failure === undefined ? 'succeeded' : 'failed');
  return accepted({ jobId: job.id, state: job.state, exitCode: cmd.exitCode });
}

/**
 * Records a checkpoint whose bundle the proposer saw on k holders. From here on it
 * is the job's resume point. Within an attempt, seq increases; a resumed attempt
 * may count from 1 again (checkpoints are identified by epoch and seq).
 */
export function checkpointCommitted(live: LiveTables, at: number, cmd: Cmd<'checkpointCommitted'>): ApplyResult {
  const f = fenceResult(live, cmd);
  if ('ok' in f) return f;
  const { job } = f;
  const list = live.checkpointsOf(job.id);
  const last = list[list.length - 1];
  if (last !== undefined && last.epoch === cmd.epoch && cmd.seq <= last.seq) {
    return rejected('CHECKPOINT_OUT_OF_ORDER', `checkpoint ${cmd.seq} of job ${job.id} epoch ${cmd.epoch}: checkpoint ${last.seq} is committed already`);
  }
  const conflict = blobConflict(live, cmd.blob, 'checkpoint', cmd.bytes);
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
  upsertBlob(live, at, { id: cmd.blob, kind: 'checkpoint', bytes: cmd.bytes, holders: cmd.holders });
  return accepted({ jobId: job.id, epoch: cmd.epoch, seq: cmd.seq });
}

/**
 * The worker of a drained node moved the attempt off: it took its last checkpoint
 * (committed before this) and stopped the container. The attempt ends (`drained`) and
 * the job waits for the scheduler again, same epoch, like nodeLeft does for every job
 * of a node. Fenced like every report, so a late or repeated one changes nothing.
 */
export function jobDrained(live: LiveTables, at: number, cmd: Cmd<'jobDrained'>): ApplyResult {
  const f = fence(live, cmd);
  if ('ok' in f) return f;
  live.endAttempt(f.job, at, 'drained', null);
  live.markPending(f.job);
  return accepted({ jobId: f.job.id, epoch: f.job.epoch, state: f.job.state });
}

export function setPolicy(live: LiveTables, _at: number, cmd: Cmd<'setPolicy'>): ApplyResult {
  const job = live.t.jobs.get(cmd.jobId);
  if (job === undefined) return notFound(cmd.jobId);
  if (isFinal(job.state)) return finished(job);
  job.policy = { mode: cmd.policy.mode, intervalSeconds: cmd.policy.intervalSeconds, reason: cmd.policy.reason };
  return accepted({ jobId: job.id, mode: job.policy.mode, intervalSeconds: job.policy.intervalSeconds });
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
