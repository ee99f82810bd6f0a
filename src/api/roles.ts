// Who is calling the API, and what they may do.
//
// In secure mode a request is made by one of:
//   - a node: a TLS client certificate of the cluster CA, naming a node, not revoked
//     (nodes forward requests to the leader and proxy logs; a node may do everything);
//   - a token holder: `Authorization: Bearer wrs_<id>_<secret>`, looked up by id in the
//     replicated token table and checked against its SHA-256 hash.
// In dev mode (no join secret) every caller is the operator: admin.
//
// Roles nest: read ⊂ submit ⊂ admin. Each route says the least role it needs
// (server.ts); public routes need none.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http.js';
import type { TokenRole } from '../state/commands.js';
import type { TokenRecord } from '../state/records.js';

/** What a route needs: nothing (public), or at least this role. */
export type Need = 'public' | TokenRole;

const RANK: Record<TokenRole, number> = { read: 1, submit: 2, admin: 3 };

export interface Principal {
  kind: 'dev' | 'node' | 'token';
  role: TokenRole;
  /** The node's id, or the token's id. */
  id?: string;
  /** A node's certificate serial. */
  serial?: string;
  name?: string;
  expiresAt?: number | null;
}

export const DEV_PRINCIPAL: Principal = { kind: 'dev', role: 'admin' };

/** What the gateway needs to tell callers apart in secure mode. */
export interface Credentials {
  /** The node a TLS client certificate proves (cluster CA, not revoked), or null. */
  nodeOf(req: IncomingMessage): { id: string; serial: string } | null;
  token(id: string): Readonly<TokenRecord> | undefined;
  now(): number;
  /**
   * Resolves once this node has applied what was committed before the call (a read
   * barrier): a token made through another node a moment ago is then known here.
   */
  catchUp?(): Promise<void>;
}

const TOKEN_FORMAT = /^wrs_([0-9a-f]{16})_([0-9a-f]{64})$/;

export function hashTokenSecret(secretHex: string): string {
  return createHash('sha256').update(secretHex, 'utf8').digest('hex');
}

/** A new token: its id, the string the holder sends, and the hash the cluster keeps. */
export function newToken(): { id: string; token: string; hash: string } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('hex');
  return { id, token: `wrs_${id}_${secret}`, hash: hashTokenSecret(secret) };
}

/** Who made `req`; throws 401 when nobody valid. */
export function authenticate(req: IncomingMessage, creds: Credentials): Principal {
  const node = creds.nodeOf(req);
  if (node !== null) return { kind: 'node', role: 'admin', id: node.id, serial: node.serial };
  const header = req.headers.authorization;
  if (header === undefined) throw new HttpError(401, 'UNAUTHORIZED', 'this cluster needs Authorization: Bearer <token> (an admin makes tokens with `workrs tokens create`)');
  const m = /^Bearer (\S+)$/.exec(header);
  if (m?.[1] === undefined || !TOKEN_FORMAT.test(m[1])) throw new HttpError(401, 'UNAUTHORIZED', 'the Authorization header is not Bearer wrs_<id>_<secret>');
  return tokenHolder(m[1], creds);
}

/**
 * authenticate(), asked once more after the node caught up (Credentials.catchUp) when
 * the token's id is unknown here: a token is replicated, and one made through another
 * node may be used here before this node applied it. A wrong secret or an expired
 * token is refused at once.
 */
export async function authenticateCaughtUp(req: IncomingMessage, creds: Credentials): Promise<Principal> {
  try {
    return authenticate(req, creds);
  } catch (err) {
    const id = /^Bearer wrs_([0-9a-f]{16})_/.exec(req.headers.authorization ?? '')?.[1];
    if (!(err instanceof HttpError) || err.code !== 'TOKEN_INVALID' || creds.catchUp === undefined || id === undefined || creds.token(id) !== undefined) throw err;
    await creds.catchUp();
    return authenticate(req, creds);
  }
}

/**
 * A read barrier shared by the callers that arrive while one is under way: each waits
 * for a barrier begun after it called, so at most two run at a time however many ask
 * (a flood of unknown tokens costs no more than one).
 */
export function sharedBarrier(barrier: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  let next: Promise<void> | null = null;
  const ask = (): Promise<void> => {
    if (running === null) {
      running = barrier().finally(() => {
        running = null;
      });
      return running;
    }
    next ??= running.then(
      () => {
        next = null;
        return ask();
      },
      () => {
        next = null;
        return ask();
      },
    );
    return next;
  };
  return ask;
}

/**
 * The holder of `token` (wrs_<id>_<secret>), however it came: the Authorization header,
 * or the web UI's download form (server.ts). Throws 401 when it names no valid token.
 */
export function tokenHolder(token: string, creds: Credentials): Principal {
  const parts = TOKEN_FORMAT.exec(token);
  if (!parts?.[1] || !parts[2]) throw new HttpError(401, 'UNAUTHORIZED', 'the token is not wrs_<id>_<secret>');
  const record = creds.token(parts[1]);
  // Hash first whatever the outcome: an unknown id costs the same as a wrong secret.
  const presented = Buffer.from(hashTokenSecret(parts[2]), 'hex');
  const known = record === undefined ? null : Buffer.from(record.hash, 'hex');
  const invalid = new HttpError(401, 'TOKEN_INVALID', 'the token is unknown, revoked or expired');
  if (record === undefined || known === null || !timingSafeEqual(presented, known)) throw invalid;
  if (record.expiresAt !== null && record.expiresAt <= creds.now()) throw invalid;
  return { kind: 'token', role: record.role, id: record.id, name: record.name, expiresAt: record.expiresAt };
}

/** Throws 403 unless `who` has at least the role `need` names. */
export function authorize(who: Principal, need: Need, what: string): void {
  if (need === 'public' || RANK[who.role] >= RANK[need]) return;
  throw new HttpError(403, 'FORBIDDEN', `${what} needs the ${need} role; this token has ${who.role}`);
}
