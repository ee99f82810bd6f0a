// Frames on a peer link: each websocket message is one msgpack array of frames.
//
// A frame is encoded once, when it is sent, so the outgoing queue holds bytes of a known
// size (the backlog bound is exact) and a caller mutating the object later changes
// nothing. At flush time the queued encodings are concatenated behind one msgpack array
// header: no re-encoding.
import { Packr, Unpackr } from 'msgpackr';

/** The largest msgpack array header (0xdd + u32 count). */
export const BATCH_HEADER_MAX_BYTES = 5;

// Plain maps and arrays, no shared-structure records: both ends must decode every
// message alone, whatever the other end encoded before.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
// Frames come from authenticated peers but are still parsed defensively: no
// structured-clone references (they let a message build cycles), and binary fields are
// copied out so a small field kept by the receiver does not pin a whole 16 MiB message.
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, bundleStrings: false, structuredClone: false, mapsAsObjects: true, copyBuffers: true });

export class FrameDecodeError extends Error {
  readonly code = 'TRANSPORT_BAD_FRAME';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FrameDecodeError';
  }
}

/** Encodes one frame into a buffer of its own (msgpackr's result shares a reused slab). */
export function encodeFrame(frame: unknown): Buffer {
  return Buffer.from(packr.pack(frame));
}

/** One websocket message carrying `frames` (already encoded) in order. */
export function encodeBatch(frames: readonly Buffer[]): Buffer {
  const n = frames.length;
  let header: Buffer;
  if (n < 16) {
    header = Buffer.from([0x90 | n]);
  } else if (n < 0x10000) {
    header = Buffer.allocUnsafe(3);
    header[0] = 0xdc;
    header.writeUInt16BE(n, 1);
  } else {
    header = Buffer.allocUnsafe(5);
    header[0] = 0xdd;
    header.writeUInt32BE(n, 1);
  }
  return Buffer.concat([header, ...frames]);
}

/** The frames of one received message; throws FrameDecodeError unless it is exactly one msgpack array. */
export function decodeBatch(data: Buffer): unknown[] {
  let value: unknown;
  try {
    // unpack throws on truncated data and on bytes left after the first value.
    value = unpackr.unpack(data);
  } catch (err) {
    throw new FrameDecodeError(`message of ${data.length} bytes is not msgpack`, { cause: err });
  }
  if (!Array.isArray(value)) throw new FrameDecodeError(`message of ${data.length} bytes is msgpack but not an array of frames`);
  return value;
}
