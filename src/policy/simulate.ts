// A Monte Carlo simulation of the exact model's process, to check T(n) against
// something that does not share its algebra. One run: n equal segments of W/n, each
// followed by a checkpoint of C except the last. Failures come at exponentially
// distributed times (mean M) at any moment: during work, checkpoints and restarts. A
// failure throws away the current segment (its work and any part of its checkpoint)
// and costs a restart of R, itself interrupted by any failure during it, before the
// segment starts again. Exponential failures are memoryless, so drawing a fresh time
// to failure at every start or resume (as the prototype's injector did) is exact.
import type { ModelInput } from './input.js';
import { SeededRandom } from './random.js';

export interface SimulationResult {
  runs: number;
  /** Mean completion time over the runs. */
  meanSeconds: number;
  /** Standard error of that mean (sample standard deviation / √runs). */
  standardErrorSeconds: number;
  /** Mean number of failures per run. */
  meanFailures: number;
}

/**
 * Seconds until `neededSeconds` pass without a failure: each failure costs the time
 * spent so far in this try plus whatever `afterFailure` returns, and the try starts over.
 */
function untilFailureFree(neededSeconds: number, mtbfSeconds: number, random: SeededRandom, afterFailure: () => number): number {
  let seconds = 0;
  for (;;) {
    const failureIn = random.nextExponential(mtbfSeconds);
    if (failureIn >= neededSeconds) return seconds + neededSeconds;
    seconds += failureIn + afterFailure();
  }
}

/** One run's completion time and failure count. */
export function simulateRun(input: ModelInput, segments: number, random: SeededRandom): { seconds: number; failures: number } {
  const { workSeconds: w, mtbfSeconds: m, checkpointSeconds: c, restartSeconds: r } = input;
  const tau = w / segments;
  let failures = 0;
  const failed = (): number => {
    failures += 1;
    return 0;
  };
  // After a failure: a restart of R, started over (from its beginning) by any failure during it.
  const restart = (): number => failed() + untilFailureFree(r, m, random, failed);
  let seconds = 0;
  for (let i = 0; i < segments; i++) {
    const needed = i < segments - 1 ? tau + c : tau;
    seconds += untilFailureFree(needed, m, random, restart);
  }
  return { seconds, failures };
}

/** `runs` independent runs with n = `segments`, from one seeded stream. */
export function simulateCompletion(input: ModelInput, segments: number, runs: number, seed: number): SimulationResult {
  if (!Number.isInteger(segments) || segments < 1) throw new Error(`segments must be an integer ≥ 1, not ${segments}`);
  if (!Number.isInteger(runs) || runs < 2) throw new Error(`runs must be an integer ≥ 2, not ${runs}`);
  const random = new SeededRandom(seed);
  // Welford's running mean and sum of squared deviations: no cancellation.
  let mean = 0;
  let squares = 0;
  let failures = 0;
  for (let i = 1; i <= runs; i++) {
    const run = simulateRun(input, segments, random);
    const delta = run.seconds - mean;
    mean += delta / i;
    squares += delta * (run.seconds - mean);
    failures += run.failures;
  }
  return { runs, meanSeconds: mean, standardErrorSeconds: Math.sqrt(squares / (runs - 1) / runs), meanFailures: failures / runs };
}
