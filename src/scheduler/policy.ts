// The leader's half of the online checkpoint policy: what the replicated history says
// about C, R and M, gathered for each running `auto` job and turned into setPolicy
// commands (src/policy/online.ts decides). Pure, like plan.ts: the leader's clock and
// its memory of what it already planned come in as arguments.
import { estimateCost, estimateMtbf, type FailurePrior } from '../policy/estimators.js';
import { onlinePolicy, policyChanged } from '../policy/online.js';
import type { Command } from '../state/commands.js';
import type { ClusterState } from '../state/machine.js';
import type { AttemptRecord, CheckpointRecord, JobRecord } from '../state/records.js';

export interface PolicyPriors {
  failure: FailurePrior;
  /** R before any restore was seen. */
  restartSeconds: number;
  /** Added to every measured restore: the time to detect the loss, which the log does not see (nodeTimeoutMs). */
  detectionSeconds: number;
  /**
   * Freeze throughput (MB of bundle per second frozen beyond checkpointBaseSeconds)
   * before any checkpoint was seen. bench/RESULTS.md, 2026-12-06 19:35 (the CRIU
   * capture hook): 100 MB frozen 0.89 s, 500 MB 2.60 s, ≈ 240 MB/s; a pausing capture
   * (no hook) froze 100 MB for 2.6 s, ≈ 50 MB/s. The prior takes the lower end of
   * the hook's: a first plan a little pessimistic, corrected by the first checkpoint.
   */
  dumpMBps: number;
  /** The fixed part of a checkpoint, whatever its size. */
  checkpointBaseSeconds: number;
  /** Memory assumed for a job that declares none, to predict its first checkpoint. */
  defaultMemoryMB: number;
}

export const DEFAULT_PRIORS: PolicyPriors = {
  failure: { mtbfSeconds: 24 * 3600, weight: 1 },
  restartSeconds: 10,
  detectionSeconds: 3,
  dumpMBps: 200,
  checkpointBaseSeconds: 0.5,
  defaultMemoryMB: 64,
};

const MB = 1024 * 1024;
/** Smaller checkpoints say more about the fixed cost than about throughput. */
const MIN_THROUGHPUT_SAMPLE_BYTES = 8 * MB;

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? null;
}

/**
 * Seconds of the job's work a checkpoint holds: the time its attempt ran until the
 * checkpoint (as its worker measured it; from the replicated timestamps for records
 * without that, which overstates it by the commit's duration), plus what the checkpoint
 * that attempt resumed from held.
 */
function workAt(state: ClusterState, jobId: string, cp: Readonly<CheckpointRecord>, depth = 0): number {
  const attempt = state.attempts.get(jobId)?.[cp.epoch - 1];
  if (!attempt || depth > 1000) return 0;
  let ran: number;
  if (cp.ranMs !== null && cp.ranMs !== undefined) ran = cp.ranMs / 1000;
  else if (attempt.startedAt !== null) ran = Math.max(0, (cp.at - attempt.startedAt - cp.durationMs) / 1000);
  else return 0;
  return ran + baseWork(state, jobId, attempt, depth);
}

/** What the checkpoint an attempt resumed from held; 0 when it started from scratch (also when its restore failed). */
function baseWork(state: ClusterState, jobId: string, attempt: Readonly<AttemptRecord>, depth = 0): number {
  const from = attempt.fromCheckpoint;
  if (from === null || attempt.restoreError !== null) return 0;
  const base = (state.checkpoints.get(jobId) ?? []).find((c) => c.epoch === from.epoch && c.seq === from.seq);
  return base ? workAt(state, jobId, base, depth + 1) : 0;
}

/**
 * The work the job's current attempt would keep if it failed now: what its newest
 * checkpoint holds, or, before it has one, what it resumed from. Not simply the job's
 * newest checkpoint: the attempt may have started from an older one (the newest had
 * no live holder) or from scratch.
 */
export function workKept(state: ClusterState, job: Readonly<JobRecord>): number {
  const attempt = state.attempts.get(job.id)?.[job.epoch - 1];
  if (!attempt) return 0;
  const own = (state.checkpoints.get(job.id) ?? []).filter((c) => c.epoch === job.epoch).at(-1);
  return own ? workAt(state, job.id, own) : baseWork(state, job.id, attempt);
}

/** What a checkpoint cost its job: the freeze, or the whole checkpoint when the freeze was not reported. */
function costSeconds(c: Readonly<CheckpointRecord>): number {
  return (c.frozenMs ?? c.durationMs) / 1000;
}

/** Failure-to-running-again times of restores from a checkpoint, cluster-wide. */
function restoreSamples(state: ClusterState, detectionSeconds: number): number[] {
  const out: Array<{ at: number; seconds: number }> = [];
  for (const attempts of state.attempts.values()) {
    for (let i = 1; i < attempts.length; i++) {
      const prev: Readonly<AttemptRecord> | undefined = attempts[i - 1];
      const next: Readonly<AttemptRecord> | undefined = attempts[i];
      if (!prev || !next || prev.end !== 'nodeLost' || prev.endedAt === null || next.startedAt === null) continue;
      out.push({ at: next.startedAt, seconds: (next.startedAt - prev.endedAt) / 1000 + detectionSeconds });
    }
  }
  return out.sort((a, b) => a.at - b.at).map((x) => x.seconds);
}

/** The cluster's losses and node up-time so far. */
function failureHistory(state: ClusterState, now: number): { losses: number; exposureSeconds: number } {
  let losses = 0;
  let upMs = 0;
  for (const n of state.nodes.values()) {
    losses += n.losses ?? 0;
    upMs += (n.upMs ?? 0) + (n.state === 'alive' || n.state === 'suspect' ? Math.max(0, now - n.stateSince) : 0);
  }
  return { losses, exposureSeconds: upMs / 1000 };
}

/**
 * setPolicy for every running `auto` job whose plan is due: never planned, or a new
 * checkpoint or attempt since the last plan (`planned`: job id → the key it was last
 * planned at, kept by the leader; updated here). A plan that does not change the mode
 * or moves the interval by less than 10% is not proposed.
 */
export function planPolicies(state: ClusterState, now: number, priors: PolicyPriors, planned: Map<string, string>): Command[] {
  const commands: Command[] = [];
  for (const id of planned.keys()) if (state.jobs.get(id)?.state !== 'running') planned.delete(id);
  // The running jobs whose policy is not planned for their current attempt and
  // checkpoints: usually none, and then nothing else is computed this round.
  const due: Array<{ job: Readonly<JobRecord>; key: string }> = [];
  for (const job of state.runningJobs()) {
    if (job.spec.checkpoint.mode !== 'auto') continue;
    const checkpoints = state.checkpoints.get(job.id) ?? [];
    // Also once the attempt has started: only then is it known whether its restore worked.
    const key = `${job.epoch}:${checkpoints.length}:${state.attempts.get(job.id)?.[job.epoch - 1]?.startedAt != null}`;
    if (planned.get(job.id) !== key) due.push({ job, key });
  }
  if (due.length === 0) return commands;
  // Throughput from recent checkpoints big enough for their size to dominate the fixed part.
  const big = [...state.checkpoints.values()].flat().filter((c) => c.bytes >= MIN_THROUGHPUT_SAMPLE_BYTES && c.durationMs > 0);
  const recent = big.sort((a, b) => a.at - b.at).slice(-50);
  const throughput = median(recent.map((c) => c.bytes / MB / Math.max(0.1, costSeconds(c) - priors.checkpointBaseSeconds))) ?? priors.dumpMBps;
  const restores = restoreSamples(state, priors.detectionSeconds);
  const history = failureHistory(state, now);
  const failure = estimateMtbf(priors.failure, history.losses, history.exposureSeconds);
  const restart = estimateCost(restores, priors.restartSeconds);
  for (const { job, key } of due) {
    planned.set(job.id, key);
    const checkpoints = state.checkpoints.get(job.id) ?? [];
    const done = workKept(state, job);
    const remaining = job.spec.estimateSeconds === null ? null : Math.max(1, job.spec.estimateSeconds - done);
    const own = checkpoints.map(costSeconds);
    const predicted = priors.checkpointBaseSeconds + (job.spec.memoryMB ?? priors.defaultMemoryMB) / throughput;
    const checkpoint = { ...estimateCost(own, predicted), from: own.length > 0 ? `${own.length} checkpoints of this job` : `predicted: ${job.spec.memoryMB ?? priors.defaultMemoryMB} MB at ${throughput.toFixed(0)} MB/s` };
    const next = onlinePolicy({ remainingSeconds: remaining, checkpoint, restart, failure });
    if (job.policy.reason === 'not computed yet' || policyChanged(job.policy, next)) commands.push({ type: 'setPolicy', jobId: job.id, policy: next });
  }
  return commands;
}
