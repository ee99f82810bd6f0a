// The classic first- and higher-order approximations of the optimal checkpoint
// interval, for comparison with the models (docs/checkpoint-model.md, "Classic
// approximations"). Both ignore the job's length: they are intervals for a job that
// runs for ever.
import type { ModelInput } from './input.js';

/** Young (1974): τ ≈ √(2·C·M). */
export function youngIntervalSeconds(input: ModelInput): number {
  return Math.sqrt(2 * input.checkpointSeconds * input.mtbfSeconds);
}

/**
 * Daly (2006), the higher-order estimate: for C < 2M,
 * τ = √(2·C·M) · [1 + ⅓·√(C/(2M)) + (1/9)·(C/(2M))] − C; otherwise τ = M.
 */
export function dalyIntervalSeconds(input: ModelInput): number {
  const { checkpointSeconds: c, mtbfSeconds: m } = input;
  if (c >= 2 * m) return m;
  const ratio = c / (2 * m);
  return Math.sqrt(2 * c * m) * (1 + Math.sqrt(ratio) / 3 + ratio / 9) - c;
}
