// LevelDB (as classic-level builds it, without paranoid checks) silently skips a
// corrupted record of its write-ahead log when it opens, which would drop writes we
// synced and acknowledged. Before opening, this verifies every record of every
// `NNNNNN.log` file: a checksum failure followed by more data is corruption; only a
// torn record at the very end (a write that never completed, so never acknowledged)
// is accepted. Format: leveldb/doc/log_format.md (32 KiB blocks; records of
// [masked crc32c: 4][length: 2 LE][type: 1][data]).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const BLOCK_BYTES = 32 * 1024;
const HEADER_BYTES = 7;

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC32C_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** LevelDB stores checksums masked, so that a CRC of data containing CRCs stays well-behaved. */
function masked(crc: number): number {
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

export interface WalProblem {
  file: string;
  offset: number;
  reason: string;
}

/** Checks one log file; returns the first problem that is not a torn tail, or null. */
export function checkWalFile(file: string): WalProblem | null {
  const buf = readFileSync(file);
  let at = 0;
  while (at < buf.length) {
    const leftInBlock = BLOCK_BYTES - (at % BLOCK_BYTES);
    if (leftInBlock < HEADER_BYTES) {
      at += leftInBlock; // trailer padding
      continue;
    }
    if (at + HEADER_BYTES > buf.length) return null; // torn header at the end
    const stored = buf.readUInt32LE(at);
    const length = buf.readUInt16LE(at + 4);
    const type = buf[at + 6] ?? 0;
    if (type === 0 && length === 0 && stored === 0) {
      // Zeroes: preallocated space after the last record. Anything non-zero later is corruption.
      const rest = buf.subarray(at);
      if (rest.every((b) => b === 0)) return null;
      return { file, offset: at, reason: 'zeroed record followed by data' };
    }
    const end = at + HEADER_BYTES + length;
    // A header is checked before it is believed: a corrupted length that points past
    // the end of the file must not pass for a torn tail (everything after it would be
    // dropped). A record never crosses its block, whatever the file's length.
    if (type < 1 || type > 4 || end > at + leftInBlock) {
      return { file, offset: at, reason: `invalid record header (type ${type}, length ${length})` };
    }
    if (end > buf.length) return null; // torn record at the end: never acknowledged
    const actual = masked(crc32c(buf.subarray(at + 6, end)));
    if (actual !== stored) {
      const rest = buf.subarray(end);
      if (rest.every((b) => b === 0)) return null; // the last record was torn
      return { file, offset: at, reason: 'record checksum mismatch' };
    }
    at = end;
  }
  return null;
}

/** Checks every write-ahead log file of a LevelDB folder (none yet: nothing to check). */
export function checkWal(dir: string): WalProblem | null {
  if (!existsSync(dir)) return null;
  for (const name of readdirSync(dir).filter((n) => /^\d+\.log$/.test(n)).sort()) {
    const problem = checkWalFile(join(dir, name));
    if (problem) return problem;
  }
  return null;
}
