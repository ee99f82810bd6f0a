// The commands of the replicated state machine and their envelope, as they travel in
// the Raft log (msgpackr). Every node decodes each committed entry with
// decodeEnvelope, so the checks there are the boundary between bytes and types.
// Time and ids are chosen by the proposer and carried in the command: apply() never
// reads a clock or draws a random number.
//
// The shapes are in command-types.ts, the decoder in command-decode.ts; this module
// is where the rest of the program finds both, and the bytes codec.
import { Packr } from 'msgpackr';
import { decodeEnvelope } from './command-decode.js';
import { type Envelope, InvalidCommandError } from './command-types.js';

export * from './command-types.js';
export { decodeEnvelope } from './command-decode.js';
export { validateJobSpec, type JobSpec, type CheckpointMode, type SpecResult } from './spec.js';
export type { FieldError } from './parse.js';

// Bytes. One codec for proposers and appliers: plain maps and arrays, no shared
// structures, so an entry decodes the same in every future version of the program.

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

export function encodeEnvelope(env: Envelope): Uint8Array {
  return packr.pack(env);
}

/** decodeEnvelope on the bytes of a log entry; bytes that are not msgpack are an InvalidCommandError too. */
export function decodeEnvelopeBytes(data: Uint8Array): Envelope {
  let value: unknown;
  try {
    value = packr.unpack(data);
  } catch (err) {
    throw new InvalidCommandError([{ field: '', message: 'entry is not msgpack' }], { cause: err });
  }
  return decodeEnvelope(value);
}
