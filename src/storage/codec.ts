// Every stored value is framed as [format version: 1 byte][CRC-32 of the payload:
// 4 bytes, big-endian][msgpack payload], so a torn or corrupted value is detected on
// read instead of decoding into garbage.
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import { WorkrsError } from '../errors.js';

export const VALUE_FORMAT_VERSION = 1;
const HEADER_BYTES = 5;

// Plain maps and arrays, no shared-structure records: values must decode the same in
// every future version of the program.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

export class StorageCorruptionError extends WorkrsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORAGE_CORRUPT', 500, message, options);
    this.name = 'StorageCorruptionError';
  }
}

export function encodeValue(value: unknown): Buffer {
  const payload = packr.pack(value);
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out[0] = VALUE_FORMAT_VERSION;
  out.writeUInt32BE(crc32(payload), 1);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/** Decodes a framed value; `what` names it in the error (e.g. "log entry 42"). */
export function decodeValue(buf: Uint8Array, what: string): unknown {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_BYTES) throw new StorageCorruptionError(`${what}: value is ${b.length} bytes, shorter than its header`);
  if (b[0] !== VALUE_FORMAT_VERSION) throw new StorageCorruptionError(`${what}: unknown value format version ${b[0]}`);
  const payload = b.subarray(HEADER_BYTES);
  const want = b.readUInt32BE(1);
  const got = crc32(payload);
  if (want !== got) throw new StorageCorruptionError(`${what}: checksum mismatch (stored ${want.toString(16)}, computed ${got.toString(16)})`);
  try {
    return packr.unpack(payload);
  } catch (err) {
    throw new StorageCorruptionError(`${what}: payload does not decode`, { cause: err });
  }
}
