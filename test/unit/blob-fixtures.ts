// Shared fixtures of the blob tests: seeded pseudo-random bytes (a failure replays
// exactly), temp folders removed at teardown.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `sizeBytes` pseudo-random bytes from `seed` (xorshift32): the same seed gives the same bytes. */
export function seededBytes(sizeBytes: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(sizeBytes);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= sizeBytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  for (; i < sizeBytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function tempFolder(t: { teardown(fn: () => void): void }, prefix = 'workrs-blobs-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** v1 of a "checkpoint": `sizeBytes` of seeded data. v2: 100 bytes inserted at the start and 1 MiB in the middle rewritten. */
export function checkpointVersions(sizeBytes: number, seed: number): { v1: Buffer; v2: Buffer } {
  const v1 = seededBytes(sizeBytes, seed);
  const changed = Buffer.from(v1);
  const mid = Math.floor(sizeBytes / 2);
  seededBytes(1024 * 1024, seed + 1).copy(changed, mid);
  const v2 = Buffer.concat([seededBytes(100, seed + 2), changed]);
  return { v1, v2 };
}

export async function collect(stream: AsyncIterable<Buffer | Uint8Array | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const piece of stream) parts.push(typeof piece === 'string' ? Buffer.from(piece) : Buffer.from(piece));
  return Buffer.concat(parts);
}
