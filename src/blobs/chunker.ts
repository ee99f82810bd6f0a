// Content-defined chunking (FastCDC: a gear rolling hash with normalized chunking).
//
// A cut falls where the hash of the last ~32 bytes matches a mask, so boundaries
// follow the content, not offsets: bytes inserted or changed in one place move the
// boundaries near that place only, and the chunks elsewhere hash the same as before.
// That is what lets successive checkpoints of a job (CRIU page images that change in
// places, tars whose members shift) share their unchanged chunks.
//
// Normalized chunking: below the average size the mask has more bits (a cut is rarer),
// above it fewer (a cut is likelier), which narrows the size distribution around the
// average. The hash is reset at each chunk start and only bytes past the minimum size
// are hashed, so the minimum also bounds the work per byte.
//
// Pure: no I/O. The gear table comes from a fixed seed; changing it (or the masks)
// changes every boundary, which breaks dedupe against chunks stored before (never
// correctness: chunks are addressed by their own hash).

export interface ChunkingParams {
  minBytes: number;
  avgBytes: number; // a power of two
  maxBytes: number;
}

const KiB = 1024;
export const DEFAULT_CHUNKING: ChunkingParams = { minBytes: 64 * KiB, avgBytes: 256 * KiB, maxBytes: 1024 * KiB };

/** The largest chunk any store accepts in a manifest (the default maximum). */
export const MAX_CHUNK_BYTES = DEFAULT_CHUNKING.maxBytes;

const GEAR_SEED = 0x5eed_c0de;
const GEAR = gearTable(GEAR_SEED);

/**
 * Splits a byte stream into chunks. `push` returns the chunks that the new bytes
 * complete; `end` returns the last (shorter) one. Boundaries depend only on the
 * content, not on how it is split into pushes.
 *
 * Chunks may be views of pushed buffers (no copy when a chunk lies inside one push):
 * callers must not reuse a pushed buffer until its chunks have been emitted and used.
 * Memory held: the current partial chunk, below `maxBytes`.
 */
export class Chunker {
  private readonly minBytes: number;
  private readonly avgBytes: number;
  private readonly maxBytes: number;
  private readonly maskSmall: number; // while the chunk is below the average: harder to match
  private readonly maskLarge: number; // from the average on: easier
  private parts: Buffer[] = []; // pieces of the current chunk from earlier pushes
  private partBytes = 0;
  private hash = 0;

  constructor(params: ChunkingParams = DEFAULT_CHUNKING) {
    const { minBytes, avgBytes, maxBytes } = params;
    const bits = Math.log2(avgBytes);
    if (!Number.isInteger(bits) || bits < 8 || bits > 28) throw new RangeError(`Chunker: avgBytes must be a power of two in [2^8, 2^28], got ${avgBytes}`);
    if (!(Number.isInteger(minBytes) && minBytes >= 64 && minBytes < avgBytes && avgBytes < maxBytes && Number.isInteger(maxBytes))) {
      throw new RangeError(`Chunker: need 64 ≤ minBytes < avgBytes < maxBytes, got ${minBytes}/${avgBytes}/${maxBytes}`);
    }
    this.minBytes = minBytes;
    this.avgBytes = avgBytes;
    this.maxBytes = maxBytes;
    this.maskSmall = topBitsMask(bits + 2);
    this.maskLarge = topBitsMask(bits - 2);
  }

  push(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let start = 0; // where the current chunk's bytes begin inside `data`
    let i = 0;
    while (i < data.length) {
      const chunkLen = this.partBytes + (i - start); // bytes of the chunk before data[i]
      if (chunkLen < this.minBytes) {
        i = Math.min(data.length, i + (this.minBytes - chunkLen));
        continue;
      }
      const cut = this.scan(data, i, chunkLen);
      if (cut < 0) {
        i = data.length;
        break;
      }
      out.push(this.take(data.subarray(start, cut)));
      start = cut;
      i = cut;
    }
    if (start < data.length) {
      this.parts.push(data.subarray(start));
      this.partBytes += data.length - start;
    }
    return out;
  }

  /** The last chunk (what remains), or null when nothing does. */
  end(): Buffer | null {
    if (this.partBytes === 0) return null;
    return this.take(Buffer.alloc(0));
  }

  /** Hashes data[from..] (chunk length `chunkLen` before data[from]); the index just past a cut, or -1. */
  private scan(data: Buffer, from: number, chunkLen: number): number {
    let h = this.hash;
    const toAvg = Math.max(0, this.avgBytes - chunkLen); // bytes hashed with the small mask
    const toMax = this.maxBytes - chunkLen; // the byte at which the chunk reaches maxBytes
    const endSmall = Math.min(data.length, from + toAvg);
    const endLarge = Math.min(data.length, from + toMax);
    const maskSmall = this.maskSmall;
    const maskLarge = this.maskLarge;
    let i = from;
    for (; i < endSmall; i++) {
      h = ((h << 1) + (GEAR[data[i] as number] as number)) | 0;
      if ((h & maskSmall) === 0) return this.cutAt(i + 1);
    }
    for (; i < endLarge; i++) {
      h = ((h << 1) + (GEAR[data[i] as number] as number)) | 0;
      if ((h & maskLarge) === 0) return this.cutAt(i + 1);
    }
    if (i === from + toMax) return this.cutAt(i); // reached maxBytes
    this.hash = h;
    return -1;
  }

  private cutAt(index: number): number {
    this.hash = 0;
    return index;
  }

  private take(last: Buffer): Buffer {
    const chunk = this.parts.length === 0 ? last : Buffer.concat([...this.parts, last], this.partBytes + last.length);
    if (chunk.length > this.maxBytes) throw new Error(`Chunker invariant broken: a ${chunk.length}-byte chunk exceeds maxBytes ${this.maxBytes}`);
    this.parts = [];
    this.partBytes = 0;
    this.hash = 0;
    return chunk;
  }
}

/** A 32-bit mask of the top `bits` bits: the hash's high bits mix the most bytes of the window. */
function topBitsMask(bits: number): number {
  return (~0 << (32 - bits)) | 0;
}

/** 256 pseudo-random 32-bit values from a fixed seed (mulberry32). */
function gearTable(seed: number): Int32Array {
  const table = new Int32Array(256);
  let a = seed | 0;
  for (let i = 0; i < 256; i++) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    table[i] = t ^ (t >>> 14);
  }
  return table;
}
