// The exact expected completion time under exponential failures (docs/checkpoint-model.md,
// "exact" model): failures at rate 1/M at any moment, during work, checkpoints and
// restarts alike; a failure loses the current segment's work and costs a restart R
// (which can itself fail) before the segment is tried again.
//
// One segment that needs x seconds without a failure (τ + C, or τ for the last) takes
//
//   E(x) = M · e^{R/M} · (e^{x/M} − 1)
//
// in expectation. (A try lasts min(F, x) with F ~ Exp(M), E[min(F, x)] = M(1 − e^{−x/M});
// it fails with p = 1 − e^{−x/M}, and a failure costs a restart, itself retried until
// R seconds pass without a failure: M(e^{R/M} − 1) in expectation. Solving
// E = M(1 − e^{−x/M}) + p · (M(e^{R/M} − 1) + E) gives the formula.)
// With n equal segments of τ = W/n, the last one without a checkpoint:
//
//   T(n) = (n − 1) · M e^{R/M} (e^{(τ + C)/M} − 1) + M e^{R/M} (e^{τ/M} − 1)
//
// T(1) is the expected time with no checkpoint. Note that e^{R/M} multiplies every
// term: R changes the expected time but not the best n.
import type { ModelInput } from './input.js';
import { MAX_SEGMENTS, type Minimum, walkDownhill } from './search.js';

/**
 * E(x): expected seconds to get `neededSeconds` of failure-free time, restarts
 * included. Infinity (never NaN) when an exponential overflows a double, i.e. when x
 * or R is more than ~709 times M: such a segment essentially never completes.
 */
export function segmentExpectedSeconds(neededSeconds: number, input: ModelInput): number {
  const m = input.mtbfSeconds;
  const growth = Math.expm1(neededSeconds / m);
  const restart = Math.exp(input.restartSeconds / m);
  if (growth === Infinity || restart === Infinity) return Infinity;
  return m * restart * growth;
}

/** T(n) in seconds, for n ≥ 1 equal segments (n − 1 checkpoints). */
export function exactExpectedSeconds(segments: number, input: ModelInput): number {
  const tau = input.workSeconds / segments;
  const last = segmentExpectedSeconds(tau, input);
  // No checkpointed segment when n = 1: skip the term rather than compute 0 · Infinity.
  if (segments === 1) return last;
  return (segments - 1) * segmentExpectedSeconds(tau + input.checkpointSeconds, input) + last;
}

/**
 * The continuous optimum interval τ* of a long job: the τ that minimises the expected
 * time per second of work of a checkpointed segment, (e^{(τ+C)/M} − 1)/τ. Setting its
 * derivative to 0 gives e^{y + C/M} · (1 − y) = 1 with y = τ/M, whose left side falls
 * strictly from e^{C/M} at y = 0 to 0 at y = 1 (derivative −y·e^{y+C/M}), so there is
 * exactly one root in (0, 1), found here by bisection. (Closed form:
 * y = 1 + W₀(−e^{−1−C/M}), W₀ the Lambert function.) C = 0 gives τ* = 0: checkpoints
 * that cost nothing are best taken continuously.
 */
export function exactOptimalIntervalSeconds(input: ModelInput): number {
  const m = input.mtbfSeconds;
  const c = input.checkpointSeconds / m;
  if (c === 0) return 0;
  // e^{y+c}(1 − y) − 1, written with expm1 so that small y and c keep their digits.
  const excess = (y: number): number => Math.expm1(y + c) * (1 - y) - y;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 200 && hi - lo > 1e-15; i++) {
    const mid = (lo + hi) / 2;
    // An overflowing e^{y+c} (C > ~709 M) reads as positive: the root is then just below 1.
    if (excess(mid) > 0) lo = mid;
    else hi = mid;
  }
  return ((lo + hi) / 2) * m;
}

/**
 * The integer n ≥ 1 that minimises T(n). T is not convex everywhere. Divided by
 * M·e^{R/M} it is k·n·e^{a/n} − n − (k − 1)·e^{a/n}, with a = W/M and k = e^{C/M};
 * its second derivative in n is (e^{a/n}/n³) · [k·a² − (k − 1)(2a + a²/n)]. The
 * bracket grows with n, so T is concave below n₀ = (k − 1)·a / (k·a − 2(k − 1)) and
 * convex above it (concave throughout when k·a ≤ 2(k − 1), roughly W ≤ 2C, and then
 * increasing, since its slope tends to M·e^{R/M}·(k − 1) > 0). A concave stretch has
 * no interior minimum, so the only candidates are n = 1 and the minimum of the convex
 * part: the walk starts in the convex part, at W/τ* (at or within a few segments of
 * its minimum) or n₀ if that is further, and its result is compared with T(1).
 * Where T overflows around that start (a job thousands of times longer than M, or
 * R > ~700 M) the walk cannot tell which way is down and stays put: the answer is then
 * T(1), Infinity included, since no plan finishes in any useful sense.
 */
export function exactOptimum(input: ModelInput, maxSegments = MAX_SEGMENTS): Minimum {
  const f = (n: number): number => exactExpectedSeconds(n, input);
  const none: Minimum = { segments: 1, expectedSeconds: f(1) };
  const a = input.workSeconds / input.mtbfSeconds;
  const kMinus1 = Math.expm1(input.checkpointSeconds / input.mtbfSeconds);
  // A checkpoint more than ~709 M long never completes: every n > 1 is infinite.
  if (kMinus1 === Infinity) return none;
  // n₀ = a / (a·k/(k − 1) − 2), written so that nothing overflows: k/(k − 1) is in
  // (1, ∞], infinite when C = 0 (then T is convex throughout: n₀ = 0).
  const bend = a * (1 + 1 / kMinus1) - 2;
  if (bend <= 0) return none;
  const inflection = a / bend;
  const tau = exactOptimalIntervalSeconds(input);
  const guess = tau > 0 ? input.workSeconds / tau : Infinity;
  const start = Math.min(Math.max(guess, Math.ceil(inflection)), maxSegments);
  const walked = walkDownhill(f, start, maxSegments);
  return none.expectedSeconds <= walked.expectedSeconds ? none : walked;
}
