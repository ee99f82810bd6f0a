// Who a request is (src/api/roles.ts authenticate) on hostile Authorization headers:
// random strings, and a valid token with one character changed. It never throws
// anything but a 401 HttpError; it accepts a token exactly when its id is in the table,
// its secret hashes to the kept hash and it has not expired, with that token's role.
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { HttpError } from '../../../src/api/http.js';
import { authenticate, newToken, type Credentials } from '../../../src/api/roles.js';
import type { TokenRecord } from '../../../src/state/records.js';
import type { FuzzTarget } from '../target.js';

const NOW_MS = 1_700_000_000_000;
const ROLES = ['read', 'submit', 'admin'] as const;

function requestWith(authorization: string | undefined): IncomingMessage {
  return { headers: authorization === undefined ? {} : { authorization } } as unknown as IncomingMessage;
}

function refused(creds: Credentials, authorization: string | undefined): boolean {
  try {
    authenticate(requestWith(authorization), creds);
    return false;
  } catch (err) {
    if (err instanceof HttpError && err.httpStatus === 401) return true;
    throw err;
  }
}

export const target: FuzzTarget = {
  name: 'api-credentials',
  property() {
    const token = fc.record({ role: fc.constantFrom(...ROLES), expiresIn: fc.option(fc.integer({ min: -10_000, max: 10_000 }), { nil: null }) });
    const edit = fc.record({ at: fc.nat(), char: fc.constantFrom('0', 'f', '_', 'g', ' ', '', 'A') });
    return fc.property(fc.array(token, { minLength: 1, maxLength: 4 }), fc.nat(), edit, fc.string({ maxLength: 200 }), (specs, pick, e, junk) => {
      const table = new Map<string, TokenRecord>();
      const issued = specs.map((s) => {
        const t = newToken();
        table.set(t.id, { id: t.id, name: '', role: s.role, hash: t.hash, createdAt: NOW_MS - 1, expiresAt: s.expiresIn === null ? null : NOW_MS + s.expiresIn });
        return t;
      });
      const creds: Credentials = { nodeOf: () => null, token: (id) => table.get(id), now: () => NOW_MS };
      if (!refused(creds, junk) && !issued.some((t) => junk === `Bearer ${t.token}`)) throw new Error(`a random header was accepted: ${junk}`);
      if (!refused(creds, undefined)) throw new Error('no header was accepted');
      const chosen = issued[pick % issued.length]!;
      const record = table.get(chosen.id)!;
      const live = record.expiresAt === null || record.expiresAt > NOW_MS;
      const header = `Bearer ${chosen.token}`;
      if (refused(creds, header) === live) throw new Error(`token ${chosen.id} (expires ${record.expiresAt}) was ${live ? 'refused' : 'accepted'}`);
      if (live) {
        const who = authenticate(requestWith(header), creds);
        if (who.role !== record.role || who.id !== chosen.id) throw new Error(`token ${chosen.id} authenticated as ${JSON.stringify(who)}`);
      }
      const at = e.at % header.length;
      const changed = header.slice(0, at) + e.char + header.slice(at + 1);
      if (changed !== header && !refused(creds, changed)) throw new Error(`a changed token was accepted: ${changed}`);
      table.delete(chosen.id);
      if (!refused(creds, header)) throw new Error('a revoked token was accepted');
      return true;
    });
  },
};
