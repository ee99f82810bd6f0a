// `workrs plan`: every model evaluated on one input, in the JSON shape that
// `workrs plan --json` prints (docs/checkpoint-policy.md). Pure: the CLI parses
// durations and prints; the online policy can call it too.
import { dalyIntervalSeconds, youngIntervalSeconds } from './intervals.js';
import { exactExpectedSeconds, exactOptimum } from './exact-model.js';
import { checkModelInput, type ModelInput } from './input.js';
import { paperOptimum } from './paper-model.js';
import type { Minimum } from './search.js';

/** A model's best plan: `checkpoints` = segments − 1, taken every `intervalSeconds` = W / segments. */
export interface ModelPlan {
  checkpoints: number;
  intervalSeconds: number;
  /** Infinity when the expected time overflows a double (JSON.stringify writes null). */
  expectedSeconds: number;
}

export interface Plan {
  /** The prototype's model and search (no restart cost, no failures during checkpoints). */
  paper: ModelPlan;
  /** The exact model: restart cost R, failures at any time. */
  exact: ModelPlan;
  young: { intervalSeconds: number };
  daly: { intervalSeconds: number };
  /**
   * Expected completion with no checkpoint: the exact model's T(1), so it counts R,
   * like the plan it is compared with. With R = 0 it equals the paper model's E(1).
   */
  noCheckpointSeconds: number;
}

function modelPlan(best: Minimum, input: ModelInput): ModelPlan {
  return { checkpoints: best.segments - 1, intervalSeconds: input.workSeconds / best.segments, expectedSeconds: best.expectedSeconds };
}

/** Every model on one input; throws InvalidModelInputError on a bad number. R defaults to 0. */
export function plan(raw: Omit<ModelInput, 'restartSeconds'> & { restartSeconds?: number }): Plan {
  const input = checkModelInput(raw);
  return {
    paper: modelPlan(paperOptimum(input), input),
    exact: modelPlan(exactOptimum(input), input),
    young: { intervalSeconds: youngIntervalSeconds(input) },
    daly: { intervalSeconds: dalyIntervalSeconds(input) },
    noCheckpointSeconds: exactExpectedSeconds(1, input),
  };
}
