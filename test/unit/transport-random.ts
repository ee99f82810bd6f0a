// Seeded random bytes for the transport fuzz tests: a failure replays exactly.

/** Deterministic bytes (xorshift32) for fuzzing. */
export function seededBytes(seed: number, n: number): Buffer {
  let x = seed >>> 0 || 1;
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
