// Issue 13 acceptance, the API port of a secure-mode cluster (three real `workrs start
// --secret-file` processes, the harness's default), one cluster for all of it:
// - `acl bootstrap` succeeds once only, raced on all three nodes at once (first: the
//   harness would otherwise bootstrap for itself);
// - plain HTTP to the API gets no service, and neither does HTTPS without the CA;
// - each role can do exactly what its row of the issue says, over every route;
// - a revoked token is refused on every node within 2 s.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Agent } from 'undici';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster, type Role } from './harness.js';
import { after, bearer, call, getWithDefaultTrust, makeToken, plainExchange, type Answer } from './trust-helpers.js';

const NODES = ['n1', 'n2', 'n3'];
const TOKEN_FORMAT = /^wrs_([0-9a-f]{16})_[0-9a-f]{64}$/;

type Need = 'public' | Role;

interface Route {
  method: string;
  /** `:id` stands for an id nothing has. */
  path: string;
  need: Need;
  /** A body that cannot do anything (refused as invalid once the caller is let in). */
  body?: { type: string; text: string };
}

const JSON_BODY = (value: unknown): { type: string; text: string } => ({ type: 'application/json', text: JSON.stringify(value) });

// The issue's rows, route by route, written here and not read from the server: a wrong
// table there must fail here.
//   public: /healthz, /readyz, the web UI's files, GET /v1/cluster/ca, GET /v1/openapi.json,
//           POST /v1/acl/bootstrap, POST /v1/jobs/:id/result (its token in the form's body),
//           and POST /v1/cluster/enroll (authenticated by its own proof of the join secret);
//   read:   every GET (jobs, logs, results, cluster, images, metrics, acl/self);
//   submit: read, plus submit and cancel jobs;
//   admin:  everything: image import and replace, node join, drain and remove, tokens.
const ROUTES: Route[] = [
  { method: 'GET', path: '/', need: 'public' },
  { method: 'GET', path: '/ui/lib.js', need: 'public' },
  { method: 'GET', path: '/ui/dom.js', need: 'public' },
  { method: 'GET', path: '/ui/app.js', need: 'public' },
  { method: 'GET', path: '/ui/app.css', need: 'public' },
  { method: 'GET', path: '/healthz', need: 'public' },
  { method: 'GET', path: '/readyz', need: 'public' },
  { method: 'GET', path: '/v1/cluster/ca', need: 'public' },
  { method: 'GET', path: '/v1/openapi.json', need: 'public' },
  { method: 'POST', path: '/v1/acl/bootstrap', need: 'public' },
  { method: 'POST', path: '/v1/cluster/enroll', need: 'public', body: JSON_BODY({}) },
  // The web UI's download form: public at the door, its token checked in the form's body.
  { method: 'POST', path: '/v1/jobs/:id/result', need: 'public' },

  { method: 'GET', path: '/metrics', need: 'read' },
  { method: 'GET', path: '/v1/jobs', need: 'read' },
  { method: 'GET', path: '/v1/jobs/:id', need: 'read' },
  { method: 'GET', path: '/v1/jobs/:id/logs', need: 'read' },
  { method: 'GET', path: '/v1/jobs/:id/result', need: 'read' },
  { method: 'GET', path: '/v1/images', need: 'read' },
  { method: 'GET', path: '/v1/cluster', need: 'read' },
  { method: 'GET', path: '/v1/acl/self', need: 'read' },

  { method: 'POST', path: '/v1/jobs', need: 'submit', body: JSON_BODY({ notAField: true }) },
  { method: 'DELETE', path: '/v1/jobs/:id', need: 'submit' },

  { method: 'POST', path: '/v1/images', need: 'admin', body: { type: 'application/x-tar', text: 'not a tar' } },
  { method: 'POST', path: '/v1/cluster/nodes', need: 'admin', body: JSON_BODY({}) },
  { method: 'DELETE', path: '/v1/cluster/nodes/:id', need: 'admin' },
  { method: 'POST', path: '/v1/cluster/nodes/:id/drain', need: 'admin' },
  { method: 'DELETE', path: '/v1/cluster/nodes/:id/drain', need: 'admin' },
  { method: 'POST', path: '/v1/acl/tokens', need: 'admin', body: JSON_BODY({ role: 'nobody' }) },
  { method: 'GET', path: '/v1/acl/tokens', need: 'admin' },
  { method: 'DELETE', path: '/v1/acl/tokens/:id', need: 'admin' },
];

/** Who may use a route that needs `need`. */
const ALLOWED: Record<Need, readonly Role[]> = {
  public: ['read', 'submit', 'admin'],
  read: ['read', 'submit', 'admin'],
  submit: ['submit', 'admin'],
  admin: ['admin'],
};

type Caller = 'no token' | 'garbage' | 'forged' | 'revoked admin' | 'expired admin' | Role;
/** What a caller that is not a valid token gets on a route that is not public. */
const REFUSAL: Record<Exclude<Caller, Role>, string> = {
  'no token': '401 UNAUTHORIZED',
  garbage: '401 UNAUTHORIZED', // not Bearer wrs_<id>_<secret>
  forged: '401 TOKEN_INVALID', // the right form, an id the cluster never issued
  'revoked admin': '401 TOKEN_INVALID',
  'expired admin': '401 TOKEN_INVALID',
};

function expected(route: Route, caller: Caller): string {
  if (route.need === 'public') return 'allowed';
  if (caller in REFUSAL) return REFUSAL[caller as keyof typeof REFUSAL];
  return ALLOWED[route.need].includes(caller as Role) ? 'allowed' : '403 FORBIDDEN';
}

/** An answer as the table speaks: the refusals by status and code, anything else is "allowed". */
function outcome(a: Answer): string {
  return a.status === 401 || a.status === 403 ? `${a.status} ${a.code}` : 'allowed';
}

/** Every (method, path) src/api/server.ts routes, read from its source: the table above must cover them all. */
function serverRoutes(): string[] {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const source = readFileSync(join(root, 'src/api/server.ts'), 'utf8');
  const routes = [...source.matchAll(/router\.add\('([A-Z]+)', '([^']+)'/g)].map((m) => `${m[1]} ${m[2]}`);
  const ui = /const UI_ROUTES[\s\S]*?\]\);/.exec(source)?.[0] ?? '';
  routes.push(...[...ui.matchAll(/\['(\/[^']*)', \{ file:/g)].map((m) => `GET ${m[1]}`));
  return routes.sort();
}

const c = await LocalCluster.create(NODES);
const startedAt = Date.now();
c.startAll();
// A failure here ends the file before any teardown: stop the nodes (and show their logs) first.
await c.allReady(30_000).catch(async (err: unknown) => {
  await c.destroy(true);
  throw err;
});
t.teardown(() => c.destroy(!t.passing()));
let admin = '';

/**
 * Asserts that `token` lets its holder in at node `id` (GET /v1/acl/self), within
 * `withinMs`: a node answers a token's creation when the leader applied it, and may
 * apply it itself a moment later.
 */
async function worksOn(t: Test, id: string, token: string, what: string, withinMs = 2000): Promise<void> {
  const status = await waitFor(what, async () => {
    const s = (await call(c, id, 'GET', '/v1/acl/self', bearer(token))).status;
    return s === 200 ? s : undefined;
  }, withinMs, 10).catch(() => 'no 200');
  t.equal(status, 200, what);
}

t.test('acl bootstrap succeeds once only, raced on every node', async (t) => {
  const race = await Promise.all(NODES.map(async (id) => ({ id, ...(await call(c, id, 'POST', '/v1/acl/bootstrap', null)) })));
  t.comment(`concurrent bootstraps: ${race.map((a) => `${a.id} ${a.status} ${a.code}`).join(', ')}`);
  const won = race.filter((a) => a.status === 200);
  t.equal(won.length, 1, 'exactly one node answers 200');
  for (const a of race.filter((x) => x.status !== 200)) t.same([a.status, a.code], [409, 'ACL_BOOTSTRAPPED'], `${a.id} answers 409 ACL_BOOTSTRAPPED`);
  const first = won[0]?.body as { id: string; token: string; name: string; role: string; expiresAt: unknown } | undefined;
  t.match(first, { name: 'bootstrap', role: 'admin', expiresAt: null }, 'the one answer is the first admin token');
  t.equal(TOKEN_FORMAT.exec(first?.token ?? '')?.[1], first?.id, 'in the form wrs_<id>_<secret>');
  admin = first?.token ?? '';
  await worksOn(t, 'n3', admin, 'n3 lets the bootstrap token in');
  const listed = await call(c, 'n3', 'GET', '/v1/acl/tokens', bearer(admin));
  t.equal(listed.status, 200, 'the token it gave is an admin token');
  t.notMatch(JSON.stringify(listed.body), admin.split('_')[2] ?? 'no-secret', 'the token list never shows the secret');
  for (const id of NODES) {
    const again = await call(c, id, 'POST', '/v1/acl/bootstrap', null);
    t.same([again.status, again.code], [409, 'ACL_BOOTSTRAPPED'], `a later bootstrap on ${id} is refused (409 ACL_BOOTSTRAPPED)`);
  }
});

t.test('plain HTTP to the API gets no service, nor HTTPS without the cluster CA', async (t) => {
  const n = c.node('n2');
  const healthy = await call(c, 'n2', 'GET', '/healthz', null);
  t.equal(healthy.status, 200, 'control: HTTPS trusting the cluster CA gets /healthz');
  for (const [what, port] of [['API', n.apiPort], ['peer', n.peerPort]] as const) {
    const plain = await plainExchange(n.host, port, `GET /healthz HTTP/1.1\r\nHost: ${n.host}:${port}\r\nConnection: close\r\n\r\n`);
    t.ok(plain.closedByPeer, `the ${what} port closes a plain HTTP connection (${plain.received.length} bytes back${plain.error ? `, ${plain.error}` : ''})`);
    t.notOk(plain.received.toString('latin1').includes('HTTP/1.'), `no HTTP answer comes back from the ${what} port`);
  }
  const viaFetch = await fetch(`http://${n.host}:${n.apiPort}/healthz`, { signal: AbortSignal.timeout(5000) }).then((r) => `status ${r.status}`, (err: unknown) => `failed: ${String((err as Error).cause ?? err)}`);
  t.match(viaFetch, /^failed/, `fetch of http://…/healthz gets no answer (${viaFetch})`);
  const untrusted = await getWithDefaultTrust(`${c.url('n2')}/healthz`);
  t.equal(untrusted.status, null, 'HTTPS with the default trust store gets no answer');
  t.match(untrusted.error ?? '', /CERT|SIGNATURE|ISSUER/, `the TLS handshake fails on the certificate (${untrusted.error})`);
  // fetch with a dispatcher of its own: the default trust store, not the cluster CA the harness made this process trust.
  const dispatcher = new Agent();
  const viaDefaultFetch = await fetch(`${c.url('n2')}/healthz`, { dispatcher, signal: AbortSignal.timeout(5000) } as RequestInit).then((r) => `status ${r.status}`, (err: unknown) => `failed: ${String((err as Error).cause ?? err)}`);
  await dispatcher.close();
  t.match(viaDefaultFetch, /^failed.*(CERT|SIGNATURE|ISSUER|certificate)/i, `so does fetch (${viaDefaultFetch})`);
});

t.test('each role can do exactly what its row says, on every route', async (t) => {
  t.same(ROUTES.map((r) => `${r.method} ${r.path}`).sort(), serverRoutes(), 'the table covers every route of src/api/server.ts, no more');
  // Valid tokens of each role, and admin tokens made invalid: expired, revoked. Each
  // worked before (the expiring one lives 2 s).
  const expiring = await makeToken(c, 'n1', admin, 'admin', { name: 'expiring', ttlSeconds: 2 });
  await worksOn(t, 'n1', expiring.token, 'control: the expiring admin token works before it expires', 1000);
  const revoked = await makeToken(c, 'n2', admin, 'admin', { name: 'revoked' });
  await worksOn(t, 'n2', revoked.token, 'control: the revoked admin token works before it is revoked');
  t.equal((await call(c, 'n3', 'DELETE', `/v1/acl/tokens/${revoked.id}`, bearer(admin))).status, 200, 'revoked');
  const tokens: Record<Caller, string | null> = {
    'no token': null,
    garbage: 'Bearer garbage',
    forged: bearer(`wrs_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('hex')}`),
    read: bearer((await makeToken(c, 'n3', admin, 'read')).token),
    submit: bearer((await makeToken(c, 'n1', admin, 'submit')).token),
    admin: bearer(admin),
    'revoked admin': bearer(revoked.token),
    'expired admin': bearer(expiring.token),
  };
  await after(Math.max(0, (expiring.expiresAt ?? 0) + 200 - Date.now()), null);

  const callers = Object.keys(tokens) as Caller[];
  const dummy = `x${randomBytes(6).toString('hex')}`;
  let i = 0;
  for (const route of ROUTES) {
    const path = route.path.replace(':id', dummy);
    const row: string[] = [];
    for (const who of callers) {
      const node = NODES[i++ % NODES.length] ?? 'n1';
      const a = await call(c, node, route.method, path, tokens[who], route.body);
      const want = expected(route, who);
      row.push(`${who}: ${a.status}${a.code ? ` ${a.code}` : ''}`);
      t.equal(outcome(a), want, `${route.method} ${route.path} as ${who} on ${node}: ${a.status} ${a.code}`);
      if (want === '403 FORBIDDEN') t.match(a.message, `needs the ${route.need} role`, 'the refusal names the role needed');
      if (want === 'allowed') t.ok(a.status !== 405 && !(a.status === 404 && a.code === 'NOT_FOUND'), 'the route exists (not 404 NOT_FOUND / 405)');
    }
    t.comment(`${route.method} ${route.path} [${route.need}]: ${row.join(', ')}`);
  }
});

t.test('a revoked token is refused on every node within 2 s', async (t) => {
  const read = await makeToken(c, 'n1', admin, 'read', { name: 'to-revoke' });
  for (const id of NODES) await worksOn(t, id, read.token, `the read token works on ${id}`);
  // Not c.leader(): it asks with the harness's own admin token, which the race above took.
  const leader = (await call(c, 'n1', 'GET', '/v1/cluster?stale=1', bearer(admin))).body as { leader: string | null };
  const via = NODES.find((id) => id !== leader.leader) ?? 'n1';
  const sentAt = Date.now();
  const revoke = await call(c, via, 'DELETE', `/v1/acl/tokens/${read.id}`, bearer(admin));
  const answeredAt = Date.now();
  t.same(revoke.body, { id: read.id, revoked: true }, `revoked through ${via} (leader ${leader.leader}), answered in ${answeredAt - sentAt} ms`);
  // Each node on its own: the first time it answers 401 TOKEN_INVALID, from the revoke's answer.
  const refusedAfter = await Promise.all(NODES.map((id) => waitFor(`${id} to refuse the revoked token`, async () => {
    const a = await call(c, id, 'GET', '/v1/acl/self', bearer(read.token));
    return a.status === 401 && a.code === 'TOKEN_INVALID' ? Date.now() - answeredAt : undefined;
  }, 5000, 10)));
  t.comment(`revocation seen (ms after the revoke's answer; the answer took ${answeredAt - sentAt} ms): ${NODES.map((id, k) => `${id} ${refusedAfter[k]}`).join(', ')}`);
  NODES.forEach((id, k) => t.ok((refusedAfter[k] ?? Infinity) <= 2000, `${id} refuses it ${refusedAfter[k]} ms after the revoke's answer (≤ 2000)`));
  for (const id of NODES) t.equal((await call(c, id, 'GET', '/v1/jobs', bearer(read.token))).status, 401, `${id} refuses it on other routes too`);
});

t.test('a token made through one node works at once on every other node', async (t) => {
  // Replicated: a node may not have applied it yet; it catches up before refusing.
  for (let round = 0; round < 5; round++) {
    const via = NODES[round % NODES.length] ?? 'n1';
    const made = await makeToken(c, via, admin, 'read', { name: `at-once-${round}` });
    const answers = await Promise.all(NODES.filter((id) => id !== via).map((id) => call(c, id, 'GET', '/v1/acl/self', bearer(made.token))));
    t.same(answers.map((a) => a.status), answers.map(() => 200), `made through ${via}, accepted right away elsewhere`);
  }
  const unknown = `wrs_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('hex')}`;
  t.equal((await call(c, 'n2', 'GET', '/v1/acl/self', bearer(unknown))).code, 'TOKEN_INVALID', 'an unknown token is still refused after the catch-up');
});

t.test("every node shows when the leader last heard each node, not when it registered", async (t) => {
  // Renewals come every 0.5 s; registration was at the start, seconds ago by now.
  const upFor = Date.now() - startedAt;
  if (upFor < 8000) await new Promise((r) => setTimeout(r, 8000 - upFor));
  for (const id of NODES) {
    const view = (await call(c, id, 'GET', '/v1/cluster', bearer(admin))).body as { leader: string; nodes: Array<{ id: string; state: string; lastSeenMs: number | null }> };
    const seen = view.nodes.map((n) => `${n.id} ${String(n.lastSeenMs)}`).join(', ');
    t.ok(view.nodes.every((n) => n.state === 'alive' && n.lastSeenMs !== null && n.lastSeenMs < 4000), `${id}${id === view.leader ? ' (leader)' : ''}: every node last seen moments ago (${seen} ms)`);
  }
});
