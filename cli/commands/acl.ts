// acl bootstrap and tokens create/ls/revoke: HTTP clients of /v1/acl (docs/api.md).
// A new token's secret is printed once, alone on stdout, so it can go straight into
// a file: `workrs tokens create --role submit > submit.token`.
import { parseDurationSeconds } from '../../src/util/units.js';
import { ApiClient, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { retryUnavailable } from './jobs.js';

export type Role = 'read' | 'submit' | 'admin';

/** A token as POST /v1/acl/bootstrap and POST /v1/acl/tokens answer: the only time its secret is shown. */
export interface NewToken {
  id: string;
  token: string;
  name: string;
  role: Role;
  createdAt: number;
  expiresAt: number | null;
}

/** A row of GET /v1/acl/tokens (never the secret). */
export interface TokenRow {
  id: string;
  name: string;
  role: Role;
  createdAt: number;
  expiresAt: number | null;
}

/** A token string is wrs_<16 hex id>_<64 hex secret>; its id is what ls shows and revoke takes. */
const TOKEN_FORMAT = /^wrs_([0-9a-f]{16})_[0-9a-f]{64}$/;

function printNewToken(t: NewToken, json: boolean | undefined): void {
  if (json) process.stdout.write(`${JSON.stringify(t)}\n`);
  else process.stdout.write(`${t.token}\n`);
}

export async function aclBootstrapCommand(o: ClientOptions & { json?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const res = await retryUnavailable(() => client.request<NewToken>('POST', '/v1/acl/bootstrap'));
  printNewToken(res.body, o.json);
  process.stderr.write(`workrs: the cluster's first admin token (id ${res.body.id}): keep it now, e.g. in a 0600 file for --token-file; it is never shown again and bootstrap works only once\n`);
}

/** --ttl as the whole seconds POST /v1/acl/tokens takes (at least 1). */
export function ttlSeconds(text: string): number {
  let seconds: number;
  try {
    seconds = parseDurationSeconds(text);
  } catch (err) {
    throw new CliError(`--ttl: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
  }
  if (seconds < 1) throw new CliError(`--ttl: '${text}' is under a second`, EXIT.usage);
  return Math.round(seconds);
}

export async function tokensCreateCommand(o: ClientOptions & { role: Role; name?: string; ttl?: string; json?: boolean }): Promise<void> {
  const body: { role: Role; name?: string; ttlSeconds?: number } = { role: o.role };
  if (o.name !== undefined) body.name = o.name;
  if (o.ttl !== undefined) body.ttlSeconds = ttlSeconds(o.ttl);
  const client = new ApiClient(o);
  const res = await retryUnavailable(() => client.request<NewToken>('POST', '/v1/acl/tokens', { json: body }));
  printNewToken(res.body, o.json);
  if (!o.json) process.stderr.write(`workrs: token ${res.body.id} (${res.body.role}${res.body.expiresAt === null ? '' : `, expires ${when(res.body.expiresAt)}`}): shown only now\n`);
}

/** A time as tokens ls shows it: UTC, to the second. */
function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

export async function tokensLsCommand(o: ClientOptions & { json?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const { tokens } = (await client.request<{ tokens: TokenRow[] }>('GET', '/v1/acl/tokens')).body;
  if (o.json) {
    process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
    return;
  }
  const now = Date.now();
  process.stdout.write(`${'ID'.padEnd(16)}  ${'NAME'.padEnd(24)} ${'ROLE'.padEnd(6)} ${'CREATED'.padEnd(19)}  EXPIRES\n`);
  for (const t of tokens) {
    const expires = t.expiresAt === null ? 'never' : `${when(t.expiresAt)}${t.expiresAt <= now ? ' (expired)' : ''}`;
    process.stdout.write(`${t.id.padEnd(16)}  ${(t.name || '-').padEnd(24)} ${t.role.padEnd(6)} ${when(t.createdAt)}  ${expires}\n`);
  }
}

export async function tokensRevokeCommand(idOrToken: string, o: ClientOptions & { json?: boolean }): Promise<void> {
  // The whole token is accepted too: the quickest way to kill one that leaked.
  const id = TOKEN_FORMAT.exec(idOrToken.trim())?.[1] ?? idOrToken.trim();
  const client = new ApiClient(o);
  const res = await retryUnavailable(() => client.request<{ id: string; revoked: boolean }>('DELETE', `/v1/acl/tokens/${encodeURIComponent(id)}`));
  process.stdout.write(o.json ? `${JSON.stringify(res.body)}\n` : `${res.body.id} revoked\n`);
}
