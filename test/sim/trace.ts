/**
 * The run's trace: every simulator event as one line. Lines are folded into a running
 * hash (so two runs of a seed can be compared without keeping either), the last
 * `tailLines` are kept for failure reports, and the whole trace only when asked
 * (replay writes it to test-results/).
 */
export class Trace {
  private hashHi = 0x811c9dc5;
  private hashLo = 0x01000193;
  private readonly tail: string[] = [];
  private tailStart = 0;
  readonly full: string[] | null;
  lines = 0;
  step = 0;

  constructor(
    keepFull: boolean,
    private readonly tailLines = 50,
  ) {
    this.full = keepFull ? [] : null;
  }

  add(event: string): void {
    const line = `${this.step} ${event}`;
    this.lines += 1;
    // Two FNV-1a lanes with different offsets: 64 bits of hash, no BigInt.
    let hi = this.hashHi;
    let lo = this.hashLo;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      hi = Math.imul(hi ^ c, 0x01000193);
      lo = Math.imul(lo ^ c, 0x01000193) ^ (hi >>> 15);
    }
    hi = Math.imul(hi ^ 10, 0x01000193);
    this.hashHi = hi;
    this.hashLo = lo;
    if (this.tail.length < this.tailLines) {
      this.tail.push(line);
    } else {
      this.tail[this.tailStart] = line;
      this.tailStart = (this.tailStart + 1) % this.tailLines;
    }
    this.full?.push(line);
  }

  hash(): string {
    return (this.hashHi >>> 0).toString(16).padStart(8, '0') + (this.hashLo >>> 0).toString(16).padStart(8, '0');
  }

  lastLines(): string[] {
    return [...this.tail.slice(this.tailStart), ...this.tail.slice(0, this.tailStart)];
  }
}
