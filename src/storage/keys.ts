// Key layout of a node's LevelDB. One prefix byte per table, then big-endian numbers,
// so that range scans come back in numeric order.
export const PREFIX = {
  meta: 0x01,
  hardState: 0x02,
  logEntry: 0x03,
  snapshot: 0x04,
  /** The replicated state machine's tables live under 0x10.. (src/state). */
  state: 0x10,
} as const;

export function u64(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`key number ${n} is not a non-negative safe integer`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export function readU64(b: Uint8Array, offset: number): number {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigUInt64BE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`key number ${v} exceeds the safe integer range`);
  return Number(v);
}

export const metaKey = (name: string): Buffer => Buffer.concat([Buffer.from([PREFIX.meta]), Buffer.from(name, 'utf8')]);
export const HARD_STATE_KEY = Buffer.from([PREFIX.hardState]);
export const SNAPSHOT_KEY = Buffer.from([PREFIX.snapshot]);
export const logKey = (index: number): Buffer => Buffer.concat([Buffer.from([PREFIX.logEntry]), u64(index)]);
/** Bounds for a range over log keys: [logKey(lo), logKey(hi)). */
export const LOG_BOUNDS = { gte: logKey(0), lt: Buffer.from([PREFIX.logEntry + 1]) };
