// The enrollment request's parser (src/tls/enroll.ts), the one body a node reads from
// callers that have proved nothing yet: on any JSON value it returns a request of the
// documented shape or throws a 400 HttpError, nothing else.
import fc from 'fast-check';
import { HttpError } from '../../../src/api/http.js';
import { parseEnrollRequest } from '../../../src/tls/enroll.js';
import type { FuzzTarget } from '../target.js';

const hex = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString('hex'));

const nearlyValid = fc.record(
  {
    v: fc.oneof(fc.constant(1), fc.integer(), fc.string()),
    nodeId: fc.oneof(fc.constant('n1'), fc.string({ maxLength: 80 })),
    publicKey: fc.oneof(fc.base64String({ maxLength: 200 }), fc.string({ maxLength: 1100 })),
    hosts: fc.oneof(fc.array(fc.constantFrom('127.0.0.1', 'box', '::1', 'a b', ''), { maxLength: 40 }), fc.anything()),
    nonce: fc.oneof(hex(32), fc.string({ maxLength: 70 })),
    proof: fc.oneof(hex(32), hex(31), fc.string({ maxLength: 70 })),
  },
  { requiredKeys: [] },
);

export const target: FuzzTarget = {
  name: 'enroll-request',
  property() {
    return fc.property(fc.oneof(nearlyValid, fc.anything()), (body) => {
      let parsed;
      try {
        parsed = parseEnrollRequest(body);
      } catch (err) {
        if (err instanceof HttpError && err.httpStatus === 400 && err.code === 'BAD_ENROLLMENT') return true;
        throw err;
      }
      const ok =
        parsed.v === 1 &&
        /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/.test(parsed.nodeId) &&
        typeof parsed.publicKey === 'string' &&
        Array.isArray(parsed.hosts) &&
        parsed.hosts.length <= 32 &&
        parsed.hosts.every((h) => typeof h === 'string' && h.length > 0 && h.length <= 253) &&
        /^[0-9a-f]{64}$/.test(parsed.nonce) &&
        /^[0-9a-f]{64}$/.test(parsed.proof);
      if (!ok) throw new Error(`accepted a malformed enrollment: ${JSON.stringify(parsed)}`);
      return true;
    });
  },
};
