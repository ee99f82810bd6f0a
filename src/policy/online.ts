// The online policy (`checkpoint: auto`): the exact model (exact-model.ts) fed with
// what the cluster has measured, re-planned on the work that remains after every
// checkpoint and attempt. Pure: the leader gathers the numbers (src/scheduler/
// policy.ts) and proposes the result as the job's policy, with the numbers behind it
// in its reason.
import type { CheckpointPolicy } from '../state/commands.js';
import { dalyIntervalSeconds } from './intervals.js';
import { exactExpectedSeconds, exactOptimum } from './exact-model.js';
import type { CostEstimate, FailureEstimate } from './estimators.js';
import { checkModelInput } from './input.js';

/** No interval shorter than this: a checkpoint takes about a second even for a small job. */
export const MIN_INTERVAL_SECONDS = 2;

export interface OnlineInput {
  /** W: what remains of the forecast; null when the job has no estimate. */
  remainingSeconds: number | null;
  checkpoint: CostEstimate & { from: string };
  restart: CostEstimate;
  failure: FailureEstimate;
}

const s = (x: number): string => (x >= 10_000 ? x.toFixed(0) : x.toFixed(1));

function numbers(i: OnlineInput): string {
  const hours = i.failure.exposureSeconds / 3600;
  return (
    `C=${s(i.checkpoint.seconds)} s (${i.checkpoint.from}), ` +
    `R=${s(i.restart.seconds)} s (${i.restart.samples} restores), ` +
    `M=${s(i.failure.mtbfSeconds)} s (${i.failure.losses} losses in ${hours.toFixed(1)} node-hours)`
  );
}

/**
 * The policy for a job now. With an estimate: the exact model's best number of
 * checkpoints over the remaining work, or off when none pays (T(best) ≥ T(1)).
 * Without one: Daly's interval, which needs no forecast.
 */
export function onlinePolicy(i: OnlineInput): CheckpointPolicy {
  const c = Math.max(0, i.checkpoint.seconds);
  const r = Math.max(0, i.restart.seconds);
  const m = i.failure.mtbfSeconds;
  if (i.remainingSeconds === null) {
    const daly = dalyIntervalSeconds(checkModelInput({ workSeconds: 1, mtbfSeconds: m, checkpointSeconds: c, restartSeconds: r }));
    const interval = Math.max(MIN_INTERVAL_SECONDS, daly);
    return { mode: 'auto', intervalSeconds: interval, reason: `auto, no estimate: Daly's interval ${s(interval)} s; ${numbers(i)}` };
  }
  const w = Math.max(1, i.remainingSeconds);
  const input = checkModelInput({ workSeconds: w, mtbfSeconds: m, checkpointSeconds: c, restartSeconds: r });
  const best = exactOptimum(input);
  const none = exactExpectedSeconds(1, input);
  const interval = w / best.segments;
  if (best.segments === 1 || interval < MIN_INTERVAL_SECONDS) {
    return { mode: 'off', intervalSeconds: null, reason: `auto: checkpoints do not pay for the remaining ${s(w)} s (expected ${s(none)} s without); ${numbers(i)}` };
  }
  return {
    mode: 'auto',
    intervalSeconds: interval,
    reason: `auto: ${best.segments - 1} checkpoints over the remaining ${s(w)} s, every ${s(interval)} s: expected ${s(best.expectedSeconds)} s instead of ${s(none)} s; ${numbers(i)}`,
  };
}

/** Whether a new plan is worth proposing over the current one: another mode, or an interval off by more than 10%. */
export function policyChanged(current: CheckpointPolicy, next: CheckpointPolicy): boolean {
  if (current.mode !== next.mode) return true;
  if (current.intervalSeconds === null || next.intervalSeconds === null) return current.intervalSeconds !== next.intervalSeconds;
  return Math.abs(next.intervalSeconds - current.intervalSeconds) > 0.1 * current.intervalSeconds;
}
