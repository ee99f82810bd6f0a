// The research prototype's experiment as data (docs/checkpoint-model.md, "The
// prototype's experiment"):
// a 300 s job with 5 s checkpoints, four failure rates, and per rate the plans it
// compared (no checkpoint, the paper model's count, a fixed 15) plus the exact model's.
// The Monte Carlo check and the experiments share it.
import { exactOptimum } from './exact-model.js';
import type { ModelInput } from './input.js';
import { paperOptimum } from './paper-model.js';

export const PROTOTYPE_WORK_SECONDS = 300;
export const PROTOTYPE_CHECKPOINT_SECONDS = 5;
/** μ, failures per second. */
export const PROTOTYPE_FAILURE_RATES = [0.0001, 0.0005, 0.003, 0.0131] as const;
export const PROTOTYPE_FIXED_CHECKPOINTS = 15;

export type GridPolicy = 'none' | 'paper' | 'fixed-15' | 'exact';

/** One failure rate and number of segments; `policies` lists every plan that chose it. */
export interface GridCell {
  failureRate: number;
  input: ModelInput;
  segments: number;
  policies: GridPolicy[];
}

/**
 * The grid's cells for a restart cost R, one per distinct (μ, n): where two plans
 * choose the same n (at μ = 0.0001 the paper and exact models both take none) they
 * share a cell.
 */
export function prototypeGrid(restartSeconds: number): GridCell[] {
  const cells: GridCell[] = [];
  for (const failureRate of PROTOTYPE_FAILURE_RATES) {
    const input: ModelInput = { workSeconds: PROTOTYPE_WORK_SECONDS, mtbfSeconds: 1 / failureRate, checkpointSeconds: PROTOTYPE_CHECKPOINT_SECONDS, restartSeconds };
    const plans: Array<[GridPolicy, number]> = [
      ['none', 1],
      ['paper', paperOptimum(input).segments],
      ['fixed-15', PROTOTYPE_FIXED_CHECKPOINTS + 1],
      ['exact', exactOptimum(input).segments],
    ];
    for (const [policy, segments] of plans) {
      const same = cells.find((c) => c.failureRate === failureRate && c.segments === segments);
      if (same) same.policies.push(policy);
      else cells.push({ failureRate, input, segments, policies: [policy] });
    }
  }
  return cells;
}
