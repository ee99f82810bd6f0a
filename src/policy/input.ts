// The four numbers every checkpoint model takes (docs/checkpoint-model.md, "Symbols"),
// checked once at the boundary so the formulas can assume them.
import { WorkrsError } from '../errors.js';

export interface ModelInput {
  /** W: the job's failure-free run time (its forecast, or what remains of it). */
  workSeconds: number;
  /** M = 1/λ: mean time between failures of the box running the job. */
  mtbfSeconds: number;
  /** C: cost of one checkpoint (the pause and the part of replication the job waits for). */
  checkpointSeconds: number;
  /** R: cost of a restart after a failure (detection, reassignment, fetch, restore). */
  restartSeconds: number;
}

/** A model input that no formula can take: a usage error for the CLI, a 400 for the API. */
export class InvalidModelInputError extends WorkrsError {
  constructor(
    readonly field: keyof ModelInput,
    message: string,
  ) {
    super('INVALID_MODEL_INPUT', 400, message);
    this.name = 'InvalidModelInputError';
  }
}

/**
 * The input, or an error naming the first bad number: W > 0, M > 0, C ≥ 0, R ≥ 0, all
 * finite. A missing R is 0 (the paper model has none).
 */
export function checkModelInput(raw: Omit<ModelInput, 'restartSeconds'> & { restartSeconds?: number }): ModelInput {
  const input: ModelInput = { ...raw, restartSeconds: raw.restartSeconds ?? 0 };
  const rules: Array<[keyof ModelInput, string, (x: number) => boolean, string]> = [
    ['workSeconds', 'the work W (estimate)', (x) => x > 0, 'greater than 0'],
    ['mtbfSeconds', 'the mean time between failures M', (x) => x > 0, 'greater than 0'],
    ['checkpointSeconds', 'the checkpoint cost C', (x) => x >= 0, '0 or more'],
    ['restartSeconds', 'the restart cost R', (x) => x >= 0, '0 or more'],
  ];
  for (const [key, what, ok, expected] of rules) {
    const x = input[key];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new InvalidModelInputError(key, `${what} must be a finite number of seconds, not ${String(x)}`);
    if (!ok(x)) throw new InvalidModelInputError(key, `${what} must be ${expected} seconds, not ${x}`);
  }
  return input;
}
