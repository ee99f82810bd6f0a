// A small seeded generator for the Monte Carlo simulation: xoshiro128** (Blackman and
// Vigna; 128 bits of state, period 2¹²⁸ − 1), its state filled from the seed by a few
// steps of mulberry32. Plenty for the tens of millions of draws of a simulated grid,
// and distinct seeds give streams that do not overlap in practice. The simulator must
// not depend on Math.random: every run replays from its seed.

/** mulberry32: one 32-bit output per call from a 32-bit counter; used only to seed. */
function mulberry32(seed: number): () => number {
  let counter = seed >>> 0;
  return () => {
    counter = (counter + 0x6d2b79f5) | 0;
    let z = counter;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return (z ^ (z >>> 14)) >>> 0;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class SeededRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    const seeder = mulberry32(seed);
    this.s0 = seeder();
    this.s1 = seeder();
    this.s2 = seeder();
    this.s3 = seeder();
    // An all-zero state would stay zero for ever.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next 32 uniformly distributed bits, as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform in (0, 1], with 53 random bits (never 0, so its logarithm is finite). */
  nextUnit(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67_108_864 + low + 1) / 9_007_199_254_740_992;
  }

  /** Exponentially distributed with the given mean: −mean · ln(U), as the prototype drew its faults. */
  nextExponential(mean: number): number {
    return -mean * Math.log(this.nextUnit());
  }
}
