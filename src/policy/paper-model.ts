// The research prototype's model (docs/checkpoint-model.md, "paper" model). Failure rate
// μ = 1/M, forecast T = W, N equal segments (N − 1 checkpoints of cost C). A failure
// sends the job back to its segment's start at no cost (no detection, no restore), and
// failures strike only while the job works, never during a checkpoint:
//
//   E(N) = N · (e^{μT/N} − 1)/μ + (N − 1) · C
//
// Each segment of length T/N takes (e^{μT/N} − 1)/μ in expectation (the classic time
// to finish x seconds of work when a failure restarts it: (e^{μx} − 1)/μ), and each
// checkpoint adds exactly C. R is ignored: the prototype had none.
import type { ModelInput } from './input.js';
import { MAX_SEGMENTS, type Minimum, walkDownhill } from './search.js';

/** E(N) in seconds; Infinity when e^{μT/N} overflows. Written with M = 1/μ and expm1 for accuracy when μT/N is small. */
export function paperExpectedSeconds(segments: number, input: ModelInput): number {
  const { workSeconds: w, mtbfSeconds: m, checkpointSeconds: c } = input;
  const work = segments * m * Math.expm1(w / segments / m);
  return work + (segments - 1) * c;
}

/**
 * The prototype's choice: increase N from 1 while E(N) decreases and keep the best. E
 * is convex in N (the second derivative of N·(e^{a/N} − 1) is a²·e^{a/N}/N³ > 0), so
 * this is the global minimum. One change: when E(1) overflows (W more than ~700 times
 * M) the walk starts at the first N whose E is finite, since the minimum cannot lie
 * where E is infinite; the prototype would have stopped at N = 1 with an infinite E.
 * Those N form a prefix (N·e^{a/N} falls while N < a), found by bisection. If no N up
 * to `maxSegments` gives a finite E, the answer is N = 1 with Infinity, as the exact
 * model's: no plan finishes, so none is worth its checkpoints.
 */
export function paperOptimum(input: ModelInput, maxSegments = MAX_SEGMENTS): Minimum {
  const f = (n: number): number => paperExpectedSeconds(n, input);
  if (f(1) < Infinity) return walkDownhill(f, 1, maxSegments);
  if (f(maxSegments) === Infinity) return { segments: 1, expectedSeconds: Infinity };
  let infinite = 1;
  let finite = maxSegments;
  while (finite - infinite > 1) {
    const mid = Math.floor((infinite + finite) / 2);
    if (f(mid) === Infinity) infinite = mid;
    else finite = mid;
  }
  return walkDownhill(f, finite, maxSegments);
}
