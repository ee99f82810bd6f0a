// Hostile input against real nodes: the peer port gets random bytes, handshakes that
// must not link (secure mode: no certificate, or a certificate of the cluster naming
// another node than the one claimed; dev mode: the wrong key), and an oversized
// message; the HTTP API gets malformed JSON, unknown fields, huge bodies, wrong types.
// Connections are refused or answered 4xx, and the cluster keeps serving.
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { LocalCluster, startedCluster } from './harness.js';
import { enrollAs, handshakeAs, openPeer, UpgradeRefused, type NodeCert } from '../helpers/secure-clients.js';

async function stillServes(c: LocalCluster, id: string): Promise<boolean> {
  const r = await c.post<{ id: string }>(id, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.1' } });
  return r.status === 202;
}

function rawSend(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.end(bytes));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.setTimeout(5000, () => s.destroy());
  });
}

async function http(c: LocalCluster, id: string, method: string, path: string, body: string | Buffer | undefined, headers: Record<string, string>): Promise<{ status: number; json: { error?: { code: string; message: string } } }> {
  const res = await fetch(`${c.url(id)}${path}`, { method, headers: { ...(await c.authHeaders()), ...headers }, body, signal: AbortSignal.timeout(10_000) });
  // Hostile input must still get answers the API's OpenAPI description allows.
  await c.checkAnswer(method, path, res);
  const text = await res.text();
  let json = {};
  try {
    json = JSON.parse(text) as object;
  } catch {
    // not JSON: the assertion below reports it
  }
  return { status: res.status, json };
}

// The peer port in both modes: what guards it differs (secure mode: TLS and the
// certificate; dev mode, loopback only: the handshake's proof), what it must withstand does not.
for (const mode of ['secure', 'dev'] as const) {
  t.test(`the peer port refuses garbage, impostors and oversized messages; the cluster keeps serving (${mode} mode)`, async (t) => {
    const { c, leader } = await startedCluster(t, ['n1', 'n2', 'n3'], [], { mode });
    const target = c.node(leader);
    const claimed = leader === 'n2' ? 'n3' : 'n2';
    // In parallel: a connection that sent no valid request is closed after the handshake timeout.
    await Promise.all(Array.from({ length: 20 }, () => rawSend(target.peerPort, randomBytes(1 + Math.floor(Math.random() * 4096)))));
    await rawSend(target.peerPort, Buffer.from('GET /peer HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' + 'x'.repeat(10_000)));
    // A certificate of the cluster, for a node id no member has: what a holder of the
    // join secret (or of a removed node's disk, before its revocation) could present.
    let other: NodeCert | null = null;
    if (c.secure) {
      const stranger = await openPeer(c, leader, t, null).then(() => 0, (err: unknown) => (err instanceof UpgradeRefused ? err.status : -1));
      t.equal(stranger, 401, 'without a certificate of the cluster CA the upgrade is refused with 401');
      other = await enrollAs(c, 'n9', leader);
      const impostor = await handshakeAs(c, leader, t, claimed, other);
      t.notOk(impostor.welcomed, `a certificate naming n9, claiming to be ${claimed}: no welcome`);
      const closed = await impostor.closed;
      t.equal(closed.code, 4001, `and closed with 4001 (${closed.reason})`);
    } else {
      // A handshake as a known member but with the wrong key (no token configured means the empty key).
      const impostor = await handshakeAs(c, leader, t, claimed, null, Buffer.from('not the cluster secret'));
      t.notOk(impostor.welcomed, 'a handshake with the wrong key: no welcome');
      const closed = await impostor.closed;
      t.ok(closed.code >= 4000, `a wrong key is refused with close code ${closed.code}`);
    }
    // An oversized message on a fresh socket before any handshake.
    const big = await openPeer(c, leader, t, other);
    big.ws.send(Buffer.alloc(32 * 1024 * 1024, 1));
    const cut = await Promise.race([big.closed, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
    t.ok(cut !== null, `an oversized message before the handshake ends the connection (${cut === null ? 'still open after 15 s' : `${cut.code} ${cut.reason}`})`);
    t.ok(await stillServes(c, leader), 'the leader still accepts jobs');
    t.equal((await c.get<{ leader: string }>(leader, '/v1/cluster')).body.leader, leader, 'and is still the leader');
  });
}

t.test('the HTTP API answers bad input with 4xx JSON errors and keeps serving', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.allReady();
  const json = { 'content-type': 'application/json' };
  const cases: Array<[string, string, string, string | Buffer | undefined, Record<string, string>, number, string]> = [
    ['malformed JSON', 'POST', '/v1/jobs', '{"command": [', json, 400, 'BAD_JSON'],
    ['empty body', 'POST', '/v1/jobs', '', json, 400, 'EMPTY_BODY'],
    ['unknown field', 'POST', '/v1/jobs', JSON.stringify({ command: ['true'], colour: 'blue' }), json, 400, 'INVALID_SPEC'],
    ['wrong type', 'POST', '/v1/jobs', JSON.stringify({ command: 'true' }), json, 400, 'INVALID_SPEC'],
    ['a JSON array', 'POST', '/v1/jobs', '[1,2,3]', json, 400, 'INVALID_SPEC'],
    ['huge body', 'POST', '/v1/jobs', Buffer.alloc(5 * 1024 * 1024, 0x20), json, 413, 'BODY_TOO_LARGE'],
    ['not JSON at all', 'POST', '/v1/jobs', 'hello', { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['unknown job', 'GET', '/v1/jobs/nope', undefined, {}, 404, 'JOB_NOT_FOUND'],
    ['bad state filter', 'GET', '/v1/jobs?state=sleeping', undefined, {}, 400, 'BAD_QUERY'],
    ['bad limit', 'GET', '/v1/jobs?limit=-1', undefined, {}, 400, 'BAD_QUERY'],
    ['unknown path', 'GET', '/v2/everything', undefined, {}, 404, 'NOT_FOUND'],
    ['wrong method', 'PUT', '/v1/jobs', '{}', json, 405, 'METHOD_NOT_ALLOWED'],
    ['cancel unknown job', 'DELETE', '/v1/jobs/nope', undefined, {}, 404, 'JOB_NOT_FOUND'],
    ['a join without addresses', 'POST', '/v1/cluster/nodes', JSON.stringify({ id: 'x' }), json, 400, 'INVALID_COMMAND'],
    ['remove an unknown node', 'DELETE', '/v1/cluster/nodes/ghost', undefined, {}, 404, 'NODE_UNKNOWN'],
    ['bad Idempotency-Key', 'POST', '/v1/jobs', JSON.stringify({ command: ['true'] }), { ...json, 'idempotency-key': 'k'.repeat(500) }, 400, 'BAD_IDEMPOTENCY_KEY'],
  ];
  for (const [what, method, path, body, headers, status, code] of cases) {
    for (const id of ['n1', leader]) {
      const r = await http(c, id, method, path, body, headers);
      t.equal(r.status, status, `${what} via ${id}: HTTP ${status}`);
      t.equal(r.json.error?.code, code, `${what} via ${id}: error code ${code} (${r.json.error?.message ?? 'no message'})`);
    }
  }
  t.ok(await stillServes(c, leader), 'the cluster still accepts jobs after all that');
  failed = false;
});

t.test('Idempotency-Key: a retry returns the same job; the key reused for another spec is a conflict', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  const spec = { command: ['true'], env: { FAKE_SECONDS: '0.1' } };
  const a = await c.post<{ id: string }>(leader, '/v1/jobs', spec, { 'idempotency-key': 'order-42' });
  const other = ['n1', 'n2', 'n3'].find((id) => id !== leader) ?? 'n1';
  const b = await c.post<{ id: string }>(other, '/v1/jobs', spec, { 'idempotency-key': 'order-42' });
  t.equal(a.status, 202);
  t.equal(b.status, 202);
  t.equal(b.body.id, a.body.id, 'the retry through another node names the same job');
  const list = await c.get<{ jobs: unknown[] }>(leader, '/v1/jobs');
  t.equal(list.body.jobs.length, 1, 'one job stored');
  const conflict = await c.post<{ error: { code: string } }>(leader, '/v1/jobs', { command: ['false'] }, { 'idempotency-key': 'order-42' });
  t.equal(conflict.status, 409);
  t.equal(conflict.body.error.code, 'IDEMPOTENCY_KEY_REUSED');
  failed = false;
});
