// The integer minimum of an expected completion time over the number of segments n.
// Both models give a function of n that falls to one minimum and then rises (the paper
// model is convex; see exact-model.ts for the exact one), so walking downhill one
// segment at a time from a starting point finds it. This is the prototype's search
// ("increase N from 1 while E decreases") when the walk starts at 1.

/** n equal segments (n − 1 checkpoints) and the expected completion time they give. */
export interface Minimum {
  segments: number;
  expectedSeconds: number;
}

/**
 * No plan has more segments than this. Without it a free checkpoint (C = 0) would have
 * no optimum: each extra one shortens the expected time a little, for ever. A million
 * segments is far beyond any real plan (a checkpoint every 3.6 ms of a one-hour job).
 */
export const MAX_SEGMENTS = 1_000_000;

/**
 * Walks from `start` (clamped to [1, maxSegments]) towards the neighbour with the lower
 * value until neither is lower. Ties stay put, so the fewer-segment plan wins a tie
 * when walking up. `f` may return Infinity (an overflowing exponential), never NaN.
 */
export function walkDownhill(f: (segments: number) => number, start: number, maxSegments = MAX_SEGMENTS): Minimum {
  const at = (segments: number): number => {
    const v = f(segments);
    if (Number.isNaN(v)) throw new Error(`expected completion time with ${segments} segments is NaN: a model formula is broken`);
    return v;
  };
  let n = Math.min(Math.max(1, Math.round(start)), maxSegments);
  let value = at(n);
  if (n > 1 && at(n - 1) < value) {
    while (n > 1) {
      const lower = at(n - 1);
      if (!(lower < value)) break;
      n -= 1;
      value = lower;
    }
  } else {
    while (n < maxSegments) {
      const higher = at(n + 1);
      if (!(higher < value)) break;
      n += 1;
      value = higher;
    }
  }
  return { segments: n, expectedSeconds: value };
}
