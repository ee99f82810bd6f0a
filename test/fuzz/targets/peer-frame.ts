// The peer link's receive path on bytes: the transport codec's decodeBatch, then
// parsePeerFrame on each frame. Random bytes and corrupted encodings of correct
// frames: decodeBatch throws nothing but FrameDecodeError, parsePeerFrame throws
// nothing, and every frame it accepts keeps the contract (raft-frames.ts). Correct
// frames come back unchanged through encode → decode → parse.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { parsePeerFrame, type ParsedFrame } from '../../../src/node/frames.js';
import { decodeBatch, encodeBatch, encodeFrame, FrameDecodeError } from '../../../src/transport/codec.js';
import { canonical, contractBreach, validFrame } from '../raft-frames.js';
import type { FuzzTarget } from '../target.js';

/** What a node does with one websocket message: null when the codec refuses it. */
function receive(data: Buffer): ParsedFrame[] | null {
  let frames: unknown[];
  try {
    frames = decodeBatch(data);
  } catch (err) {
    if (err instanceof FrameDecodeError) return null;
    throw err;
  }
  return frames.map(parsePeerFrame);
}

type Mutation = { kind: 'flip'; at: number; bit: number } | { kind: 'truncate'; at: number } | { kind: 'splice'; at: number; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
);

function mutate(data: Buffer, m: Mutation): Buffer {
  if (data.length === 0) return data;
  const at = m.at % data.length;
  switch (m.kind) {
    case 'flip': {
      const out = Buffer.from(data);
      out[at] = (out[at] ?? 0) ^ (1 << m.bit);
      return out;
    }
    case 'truncate':
      return data.subarray(0, at);
    case 'splice':
      return Buffer.concat([data.subarray(0, at), m.bytes, data.subarray(at + m.bytes.length)]);
  }
}

function checkAccepted(results: ParsedFrame[] | null, what: string): void {
  for (const r of results ?? []) {
    if (!r.ok) {
      if (r.reason !== 'malformed' && r.reason !== 'out_of_range') throw new Error(`${what}: unknown refusal ${String(r.reason)}`);
      continue;
    }
    const breach = contractBreach(r.frame);
    if (breach !== null) throw new Error(`${what}: accepted a frame that breaks the contract (${breach}): ${JSON.stringify(canonical(r.frame))}`);
  }
}

export const target: FuzzTarget = {
  name: 'peer-frame',
  property() {
    return fc.property(fc.array(validFrame, { minLength: 1, maxLength: 4 }), fc.array(mutation, { maxLength: 3 }), fc.uint8Array({ maxLength: 256 }), (frames, mutations, noise) => {
      const encoded = encodeBatch(frames.map(encodeFrame));
      const back = receive(encoded);
      if (back === null || back.length !== frames.length) throw new Error(`correct frames did not decode: ${JSON.stringify(canonical(frames))}`);
      back.forEach((r, i) => {
        if (!r.ok) throw new Error(`a correct frame was refused as ${r.reason} (${r.detail}): ${JSON.stringify(canonical(frames[i]))}`);
        if (!isDeepStrictEqual(canonical(r.frame), canonical(frames[i]))) {
          throw new Error(`round trip changed a frame: ${JSON.stringify(canonical(frames[i]))} → ${JSON.stringify(canonical(r.frame))}`);
        }
      });
      checkAccepted(receive(mutations.reduce(mutate, encoded)), 'corrupted encoding');
      checkAccepted(receive(Buffer.from(noise)), 'random bytes');
      return true;
    });
  },
};
