// Attack: someone on a node's peer port replays or alters the signed bulk requests
// nodes send each other, or aims a pull at a host of their choosing. The attacker is
// as strong as each mode lets one be:
// - secure mode: a node of the cluster. It enrolled with the join secret as
//   "a-capture" and serves its peer port with that certificate, so nodes send it bulk
//   requests; it signs its own requests as itself (the bulk key is empty: the
//   certificate authenticates the sender). A stranger without a certificate, and the
//   node signing as another, are refused outright.
// - dev mode: any process on the box (dev mode is loopback only), with the empty key.
//
// The test first captures a genuine request: it registers "a-capture" (first by id, so
// the gateway pushes an uploaded file to it first), whose peer address is a listener
// of the test; that listener records the signed POST /bulk/pull and fails it, and the
// gateway places the copy on a real node instead. The captured header tells which wire
// format the binary under test speaks, and the test signs its own requests in that
// format. Then, at node n3's peer port:
// - the captured request, replayed: refused (401/403);
// - the captured header with another body: refused;
// - a request the test signed for n3, sent once (served), then again: refused;
// - a pull signed over one body and sent with another: refused;
// - a pull naming a host:port (another listener of the test), properly signed: 4xx,
//   and that listener never sees a connection.
// Then the cluster must be healthy.
import http from 'node:http';
import https from 'node:https';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { LocalCluster } from '../process/harness.js';
import { enrollAs, peerTlsOptions, type NodeCert } from '../helpers/secure-clients.js';
import { waitFor } from '../helpers/wait.js';
import { assertClusterHealthy } from './health.js';

/** The bulk key of a node without a cluster token, in either mode. */
const KEY = Buffer.alloc(0);
const AUTH = 'x-workrs-auth';
const CAPTURE = 'a-capture';

interface Captured {
  method: string;
  url: string;
  header: string;
  body: Buffer;
}

interface Listener {
  port: number;
  connections: () => number;
  requests: Captured[];
  close: () => Promise<void>;
}

/** A listener of the test (HTTPS with `cert` when given): records every request and connection, answers `status`. */
async function listener(status: number, cert: NodeCert | null = null): Promise<Listener> {
  const requests: Captured[] = [];
  let connections = 0;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const parts: Buffer[] = [];
    req.on('data', (p: Buffer) => parts.push(p));
    req.on('end', () => {
      const header = req.headers[AUTH];
      requests.push({ method: req.method ?? '', url: req.url ?? '', header: typeof header === 'string' ? header : '', body: Buffer.concat(parts) });
      const text = JSON.stringify({ error: { code: 'TEST_LISTENER', message: 'the test listener does not serve bulk requests' } });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  };
  const server = cert === null ? http.createServer(onRequest) : https.createServer({ key: cert.keyPem, cert: cert.certPem, ca: cert.caPem, requestCert: true, rejectUnauthorized: false }, onRequest);
  server.on('connection', () => (connections += 1));
  server.on('upgrade', (_req, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A raw request to node `id`'s peer port: over TLS presenting `cert` in secure mode (null: none), plain HTTP in dev mode. */
function peerRequest(c: LocalCluster, id: string, cert: NodeCert | null, method: string, path: string, header: string, body: Buffer | null): Promise<{ status: number; text: string }> {
  const headers: http.OutgoingHttpHeaders = { [AUTH]: header };
  if (body !== null) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = body.length;
  }
  const port = c.node(id).peerPort;
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method, path, headers, agent: false };
    const onResponse = (res: http.IncomingMessage): void => {
      const parts: Buffer[] = [];
      res.on('data', (p: Buffer) => parts.push(p));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
      res.on('error', reject);
    };
    const req = c.secure ? https.request({ ...options, ...peerTlsOptions(c, cert) }, onResponse) : http.request(options, onResponse);
    req.setTimeout(60_000, () => req.destroy(new Error(`no answer from port ${port} within 60 s`)));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

type WireFormat = 'v1' | 'v2';

/** Which bulk header format the binary under test speaks, from a header it sent. */
function formatOf(header: string): WireFormat {
  const fields = header.split(':').length;
  if (fields === 3) return 'v1'; // <nodeId>:<ts>:<hmac>, covering method and path only
  if (fields === 5) return 'v2'; // <from>:<ts>:<nonce>:<body sha256>:<hmac>
  throw new Error(`unknown bulk header format: ${header}`);
}

const hmac = (input: string): string => createHmac('sha256', KEY).update(input).digest('hex');
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** A header as node `from` would sign a request for node `to`, in the given format. */
function sign(format: WireFormat, from: string, to: string, method: string, path: string, body: Buffer | null): string {
  const ts = String(Date.now());
  if (format === 'v1') return `${from}:${ts}:${hmac(`workrs-bulk-v1|${from}|${ts}|${method}|${path}`)}`;
  const nonce = randomBytes(16).toString('hex');
  const digest = sha256(body ?? Buffer.alloc(0));
  return `${encodeURIComponent(from)}:${ts}:${nonce}:${digest}:${hmac(JSON.stringify(['workrs-bulk-v2', from, to, ts, nonce, method, path, digest]))}`;
}

/** A pull of `blob` from holder `holder` in the format's body shape (v1: id → address, v2: ids). */
function pullBody(format: WireFormat, blob: string, holder: string, holderAddress: string): Buffer {
  return Buffer.from(JSON.stringify({ id: blob, from: format === 'v1' ? { [holder]: holderAddress } : [holder] }));
}

const refused = (status: number): boolean => status === 401 || status === 403;

async function replays(t: Test, mode: 'secure' | 'dev'): Promise<void> {
  const c = await LocalCluster.create(['n1', 'n2', 'n3'], [], { mode });
  let failed = true;
  let capture: Listener | null = null;
  const elsewhere = await listener(404);
  t.teardown(async () => {
    await capture?.close();
    await elsewhere.close();
    await c.destroy(failed);
  });
  c.startAll();
  await c.leader(30_000);
  await c.allReady(30_000);
  // The attacker's certificate (secure mode), and the id it signs its own requests as.
  const cert = c.secure ? await enrollAs(c, CAPTURE, 'n1') : null;
  const signer = c.secure ? CAPTURE : 'n1';
  capture = await listener(502, cert);

  // A node of the test's own, no slots: the gateway's first replica target.
  const joined = await c.post<unknown>('n1', '/v1/cluster/nodes', {
    id: CAPTURE,
    api: `127.0.0.1:${capture.port}`,
    peer: `127.0.0.1:${capture.port}`,
    slots: 0,
    memoryMB: 0,
    versions: { docker: 'none', criu: 'none', kernel: 'none' },
  });
  t.equal(joined.status, 200, 'a new node joins through the API');
  await waitFor('every node to list a-capture', async () => {
    const views = await Promise.all(['n1', 'n2', 'n3'].map((id) => c.get<{ nodes: { id: string }[] }>(id, '/v1/cluster?stale=1')));
    return views.every((v) => v.body.nodes.some((n) => n.id === CAPTURE)) ? true : undefined;
  }, 20_000, 100);

  const form = new FormData();
  form.append('spec', JSON.stringify({ command: ['sh', 'job.sh'], files: ['job.sh'], env: { FAKE_SECONDS: '0.2' } }));
  form.append('file', new Blob([`#!/bin/sh\necho ${'x'.repeat(100_000)}\n`]), 'job.sh');
  const submitted = await fetch(`${c.url('n2')}/v1/jobs`, { method: 'POST', body: form, headers: await c.authHeaders(), signal: AbortSignal.timeout(60_000) });
  t.equal(submitted.status, 202, 'the upload is accepted (its copy went to a real node)');
  const pull = await waitFor('a pull request at the capturing listener', async () => capture.requests.find((r) => r.method === 'POST' && r.url === '/bulk/pull'), 20_000, 50);
  const format = formatOf(pull.header);
  const blob = (JSON.parse(pull.body.toString()) as { id: string }).id;
  t.comment(`captured a ${format} pull of ${blob} from n2: ${pull.body.toString()}`);

  // No node holds this blob: a node that obeyed a pull of it would have to connect out.
  const absent = `sha256:${'5'.repeat(64)}`;
  const n2Address = `127.0.0.1:${c.node('n2').peerPort}`;
  const elsewhereAddress = `127.0.0.1:${elsewhere.port}`;

  const replay = await peerRequest(c, 'n3', cert, 'POST', '/bulk/pull', pull.header, pull.body);
  t.ok(refused(replay.status), `the captured pull, replayed at n3: refused (got ${replay.status} ${replay.text})`);
  const rebodied = await peerRequest(c, 'n3', cert, 'POST', '/bulk/pull', pull.header, pullBody('v1', absent, 'evil', elsewhereAddress));
  t.ok(refused(rebodied.status), `the captured header with another body: refused (got ${rebodied.status} ${rebodied.text})`);

  const manifestPath = `/bulk/manifest/${encodeURIComponent(blob)}`;
  if (c.secure) {
    const stranger = await peerRequest(c, 'n3', null, 'GET', manifestPath, sign(format, 'n1', 'n3', 'GET', manifestPath, null), null);
    t.ok(refused(stranger.status), `a request signed as n1 from a client without a certificate: refused (got ${stranger.status} ${stranger.text})`);
    const posing = await peerRequest(c, 'n3', cert, 'GET', manifestPath, sign(format, 'n1', 'n3', 'GET', manifestPath, null), null);
    t.ok(refused(posing.status), `a request signed as n1 from ${CAPTURE}'s certificate: refused (got ${posing.status} ${posing.text})`);
  }
  const once = sign(format, signer, 'n3', 'GET', manifestPath, null);
  const first = await peerRequest(c, 'n3', cert, 'GET', manifestPath, once, null);
  t.notOk(refused(first.status), `a request signed for n3 is served once (got ${first.status})`);
  const second = await peerRequest(c, 'n3', cert, 'GET', manifestPath, once, null);
  t.ok(refused(second.status), `the same request again: refused (got ${second.status} ${second.text})`);

  const signedFor = pullBody(format, blob, 'n2', n2Address);
  const swapped = await peerRequest(c, 'n3', cert, 'POST', '/bulk/pull', sign(format, signer, 'n3', 'POST', '/bulk/pull', signedFor), pullBody('v1', absent, 'evil', elsewhereAddress));
  t.ok(refused(swapped.status), `a pull signed over one body, sent with another: refused (got ${swapped.status} ${swapped.text})`);

  for (const [what, body] of [
    ['holder → address', pullBody('v1', absent, 'evil', elsewhereAddress)],
    ['an address as a holder', Buffer.from(JSON.stringify({ id: absent, from: [elsewhereAddress] }))],
  ] as const) {
    const aimed = await peerRequest(c, 'n3', cert, 'POST', '/bulk/pull', sign(format, signer, 'n3', 'POST', '/bulk/pull', body), body);
    t.ok(aimed.status >= 400 && aimed.status < 500, `a signed pull naming ${what}: 4xx (got ${aimed.status} ${aimed.text})`);
  }
  t.equal(elsewhere.connections(), 0, 'the address named in the requests never saw a connection');

  const removed = await c.request('n1', `/v1/cluster/nodes/${CAPTURE}`, { method: 'DELETE' }, 30_000);
  t.equal(removed.status, 202, 'the test node is removed');
  await assertClusterHealthy(t, c);
  failed = t.counts.fail > 0;
}

for (const mode of ['secure', 'dev'] as const) {
  t.test(`a signed bulk request is served once, for its own body, and only pulls from nodes of the table (${mode} mode)`, (t) => replays(t, mode));
}
