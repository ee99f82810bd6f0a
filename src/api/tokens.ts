// API tokens as the gateway creates them: the request's body checked, and the
// token made (its secret shown once; only its hash is replicated).
import { TOKEN_ROLES, type TokenRole } from '../state/commands.js';
import { HttpError } from './http.js';

/** The longest a token may live: ten years. */
const MAX_TOKEN_TTL_SECONDS = 10 * 365 * 86_400;

export interface TokenRequest {
  role: TokenRole;
  name: string;
  ttlSeconds: number | null;
}

/** POST /v1/acl/tokens's body: { role, name?, ttlSeconds? }. */
export function parseTokenRequest(body: unknown): TokenRequest {
  const bad = (message: string): never => {
    throw new HttpError(400, 'BAD_TOKEN_REQUEST', message);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('expected a JSON object { role, name?, ttlSeconds? }');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!['role', 'name', 'ttlSeconds'].includes(key)) bad(`unknown field ${key} (allowed: role, name, ttlSeconds)`);
  if (!TOKEN_ROLES.includes(b.role as TokenRole)) bad(`role must be one of ${TOKEN_ROLES.join(', ')}`);
  const name = b.name === undefined ? '' : b.name;
  if (typeof name !== 'string' || Buffer.byteLength(name) > 64 || /[\u0000-\u001f]/.test(name)) bad('name must be a string of at most 64 bytes, no control characters');
  const ttl = b.ttlSeconds;
  if (ttl !== undefined && ttl !== null && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL_SECONDS)) bad(`ttlSeconds must be an integer from 1 to ${MAX_TOKEN_TTL_SECONDS}`);
  return { role: b.role as TokenRole, name: name as string, ttlSeconds: typeof ttl === 'number' ? ttl : null };
}
