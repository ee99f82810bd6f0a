// The bulk-request header check (src/blobs/bulk-auth.ts) on hostile headers: a random
// string, or a correctly signed header with one character changed. verify never
// throws; it accepts a correct header exactly once (a second use is a replay), and
// never a changed one (unless the change only escapes the sender's id another way);
// the nonce memory never holds more than its bound.
import fc from 'fast-check';
import { BulkVerifier, EMPTY_BODY_SHA256, bodySha256, signBulkRequest } from '../../../src/blobs/bulk-auth.js';
import type { FuzzTarget } from '../target.js';

const TOKEN = Buffer.from('fuzz token for bulk requests');
const NOW_MS = 1_700_000_000_000;
const MAX_NONCES = 8;

const request = fc.record({
  from: fc.string({ minLength: 1, maxLength: 40 }),
  method: fc.constantFrom('GET', 'POST'),
  path: fc.string({ maxLength: 60 }).map((p) => `/bulk/${p}`),
  body: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }),
  skewMs: fc.integer({ min: -60_000, max: 60_000 }),
  nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex')),
});

const edit = fc.record({ at: fc.nat(), char: fc.constantFrom('0', 'f', ':', '%', 'x', '9', '') });

/** Whether two headers say the same: equal, or the sender's id escaped differently ("%2F" and "%2f"). */
function sameMeaning(a: string, b: string): boolean {
  if (a === b) return true;
  const [fromA = '', ...restA] = a.split(':');
  const [fromB = '', ...restB] = b.split(':');
  try {
    return restA.join(':') === restB.join(':') && decodeURIComponent(fromA) === decodeURIComponent(fromB);
  } catch {
    return false; // not percent-encoding: not the same id
  }
}

export const target: FuzzTarget = {
  name: 'bulk-auth',
  property() {
    return fc.property(request, edit, fc.string({ maxLength: 200 }), (r, e, junk) => {
      const v = new BulkVerifier({ token: TOKEN, nodeId: 'receiver', maxNonces: MAX_NONCES });
      const subject = { from: r.from, to: 'receiver', method: r.method, path: r.path, bodySha256: r.body === null ? EMPTY_BODY_SHA256 : bodySha256(r.body) };
      const header = signBulkRequest(TOKEN, subject, NOW_MS + r.skewMs, r.nonce);

      if (v.verify(junk, r.method, r.path, NOW_MS).ok) throw new Error(`a random header was accepted: ${junk}`);
      const at = e.at % header.length;
      const changed = header.slice(0, at) + e.char + header.slice(at + 1);
      if (!sameMeaning(changed, header) && v.verify(changed, r.method, r.path, NOW_MS).ok) throw new Error(`a changed header was accepted: ${changed} (signed ${header})`);
      const first = v.verify(header, r.method, r.path, NOW_MS);
      if (!first.ok || first.nodeId !== r.from || first.bodySha256 !== subject.bodySha256) throw new Error(`a correct header was refused: ${JSON.stringify(first)}`);
      const second = v.verify(header, r.method, r.path, NOW_MS);
      if (second.ok) throw new Error('a header was accepted twice');
      if (v.heldNonces > MAX_NONCES) throw new Error(`the nonce memory holds ${v.heldNonces} > ${MAX_NONCES}`);
      return true;
    });
  },
};
