// The CLI's API client over HTTPS (cli/client.ts) against in-process servers whose
// certificates come from a test CA: the CA trusted from --ca-file, or fetched and
// pinned by --ca-fingerprint; a wrong pin, a smuggled second CA, no CA at all and
// another cluster's CA each fail with exit 2 before any request carries the token;
// the token rides in Authorization; uploads (multipart, streamed) and streamed
// answers work over TLS; 401 and 403 are usage errors that say why.
import 'reflect-metadata';
import { createHash, createPrivateKey, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as x509 from '@peculiar/x509';
import { FormData } from 'undici';
import { ApiClient, type ClientOptions } from '../../cli/client.js';
import { CliError, EXIT } from '../../cli/exit.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const TOKEN = `wrs_${'0123456789abcdef'}_${'a'.repeat(64)}`;

interface Ca {
  pem: string;
  fingerprint: string;
  cert: x509.X509Certificate;
  key: webcrypto.CryptoKey;
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

async function makeCa(name: string): Promise<Ca> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + DAY_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const fingerprint = createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex');
  return { pem: cert.toString('pem'), fingerprint, cert, key: keys.privateKey };
}

/** A server certificate from `ca` for 127.0.0.1, with its key as PEM. */
async function makeLeaf(ca: Ca): Promise<{ certPem: string; keyPem: string }> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=n1',
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + DAY_MS),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
    ],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  return { certPem: cert.toString('pem'), keyPem };
}

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
}

/** A stand-in for a secure-mode node: its certificate from `ca`, serving `servedCa` at /v1/cluster/ca. */
async function startServer(ca: Ca, servedCa: string): Promise<{ server: Server; url: string; seen: Seen[] }> {
  const leaf = await makeLeaf(ca);
  const seen: Seen[] = [];
  const server = createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.url === '/v1/cluster/ca') {
      res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(servedCa);
      return;
    }
    if (req.headers.authorization === undefined) return json(401, { error: { code: 'UNAUTHORIZED', message: 'this request needs an API token' } });
    if (req.headers.authorization === 'Bearer read-token' && req.method !== 'GET') return json(403, { error: { code: 'FORBIDDEN', message: "this needs role 'admin'; the token's role is 'read'" } });
    if (req.url === '/v1/jobs/j-1/logs') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('line 1\n');
      setTimeout(() => res.end('line 2\n'), 20);
      return;
    }
    // Anything else: what arrived, so uploads can be checked.
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => json(200, { method: req.method, contentType: req.headers['content-type'] ?? null, body: Buffer.concat(chunks).toString('utf8') }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `https://127.0.0.1:${port}`, seen };
}

async function failure(p: Promise<unknown>): Promise<CliError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error('expected the request to fail');
}

t.test('the API client over HTTPS with the cluster CA', async (t) => {
  delete process.env.WORKRS_TOKEN;
  const dir = mkdtempSync(join(tmpdir(), 'workrs-cli-tls-'));
  const ca = await makeCa('test cluster CA');
  const other = await makeCa('another cluster CA');
  const node = await startServer(ca, ca.pem);
  // Another cluster's node, which hands out our CA first and its own after it.
  const impostor = await startServer(other, `${ca.pem}\n${other.pem}\n`);
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.pem);
  const otherCaFile = join(dir, 'other-ca.pem');
  writeFileSync(otherCaFile, other.pem);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const clients: ApiClient[] = [];
  const client = (o: Partial<ClientOptions>, server = node.url): ApiClient => {
    const c = new ApiClient({ server, tokenFile, ...o });
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) await c.close();
    for (const s of [node.server, impostor.server]) {
      s.closeAllConnections();
      s.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const since = (seen: Seen[]) => {
    const start = seen.length;
    return () => seen.slice(start);
  };

  t.test('--ca-file: the CA in the file is trusted and the token goes in Authorization', async (t) => {
    const seen = since(node.seen);
    const res = await client({ caFile }).request<{ method: string }>('GET', '/v1/jobs');
    t.equal(res.status, 200);
    t.same(seen(), [{ method: 'GET', url: '/v1/jobs', authorization: `Bearer ${TOKEN}` }]);
  });

  t.test('--ca-fingerprint: the served CA is fetched without the token, checked, then trusted', async (t) => {
    const colons = ca.fingerprint.toUpperCase().match(/../g)?.join(':') ?? '';
    for (const written of [ca.fingerprint, `sha256:${colons}`]) {
      const seen = since(node.seen);
      const res = await client({ caFingerprint: written }).request('GET', '/v1/jobs');
      t.equal(res.status, 200, `pinned as ${written.slice(0, 20)}…`);
      t.same(seen(), [
        { method: 'GET', url: '/v1/cluster/ca', authorization: undefined },
        { method: 'GET', url: '/v1/jobs', authorization: `Bearer ${TOKEN}` },
      ]);
    }
  });

  t.test('a wrong --ca-fingerprint fails with exit 2, naming both, before any request carries the token', async (t) => {
    const seen = since(node.seen);
    const err = await failure(client({ caFingerprint: other.fingerprint }).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.usage);
    t.match(err.message, ca.fingerprint, 'the fingerprint of the CA served');
    t.match(err.message, other.fingerprint, 'and the one given');
    t.same(seen().map((s) => s.url), ['/v1/cluster/ca']);
    t.ok(seen().every((s) => s.authorization === undefined), 'no request carried the token');
  });

  t.test('a fingerprint that is not one is a usage error', async (t) => {
    const err = await failure(client({ caFingerprint: 'abc' }).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.usage);
    t.match(err.message, /--ca-fingerprint/);
  });

  t.test('only the pinned certificate is trusted: a second CA in the answer is not', async (t) => {
    const seen = since(impostor.seen);
    const err = await failure(client({ caFingerprint: ca.fingerprint }, impostor.url).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.usage);
    t.match(err.message, /cannot trust/);
    t.same(seen().map((s) => s.url), ['/v1/cluster/ca'], 'the request with the token never reached the impostor');
  });

  t.test('without a CA the system store refuses the cluster CA, and the message says what to give', async (t) => {
    const seen = since(node.seen);
    const err = await failure(client({}).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.usage);
    t.match(err.message, /cannot trust https:\/\/127\.0\.0\.1/);
    t.match(err.message, /--ca-file DATA\/ca\.pem/);
    t.match(err.message, /--ca-fingerprint/);
    t.same(seen(), [], 'nothing reached the server');
    const streamed = await failure(client({}).stream('/v1/jobs/j-1/logs'));
    t.equal(streamed.exitCode, EXIT.usage, 'a streamed answer too');
    t.match(streamed.message, /--ca-file/);
  });

  t.test("another cluster's CA in --ca-file is refused", async (t) => {
    const err = await failure(client({ caFile: otherCaFile }).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.usage);
    t.match(err.message, /not from the CA in --ca-file/);
  });

  t.test('--ca-file and --ca-fingerprint together: the file must be the pinned CA', async (t) => {
    const seen = since(node.seen);
    const err = await failure(client({ caFile, caFingerprint: other.fingerprint }).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.usage);
    t.match(err.message, ca.fingerprint);
    t.same(seen(), [], 'refused before any request');
    t.equal((await client({ caFile, caFingerprint: ca.fingerprint }).request('GET', '/v1/jobs')).status, 200, 'a matching pair works');
    t.same(seen().map((s) => s.url), ['/v1/jobs'], 'without fetching the CA');
  });

  t.test('a CA option with a plain http:// server is refused rather than sending the token in clear', async (t) => {
    t.throws(() => new ApiClient({ server: 'http://127.0.0.1:7701', caFile }), { exitCode: EXIT.usage, message: /use https:\/\/127\.0\.0\.1:7701/ });
  });

  t.test('plain http:// to a TLS node gets no answer, and the message says to use https://', async (t) => {
    const plain = node.url.replace('https:', 'http:');
    const err = await failure(client({}, plain).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.unreachable);
    t.match(err.message, /serves HTTPS only: use https:\/\/127\.0\.0\.1:\d+/);
  });

  t.test('https:// to a plain HTTP (dev-mode) node is a usage error that says so', async (t) => {
    const dev = createHttpServer((_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => dev.listen(0, '127.0.0.1', resolve));
    t.teardown(() => dev.close());
    const err = await failure(client({ caFile }, `https://127.0.0.1:${(dev.address() as AddressInfo).port}`).request('GET', '/v1/jobs'));
    t.equal(err.exitCode, EXIT.usage);
    t.match(err.message, /does not speak TLS[^]*without --secret-file/);
  });

  t.test('uploads and streamed answers over TLS', async (t) => {
    const c = client({ caFile });
    const form = new FormData();
    form.append('spec', JSON.stringify({ command: ['true'] }));
    form.append('file', new Blob([Buffer.from('input bytes')]), 'in.txt');
    const multipart = await c.request<{ contentType: string; body: string }>('POST', '/v1/jobs', { form });
    t.match(multipart.body.contentType, /^multipart\/form-data; boundary=/);
    t.match(multipart.body.body, /filename="in\.txt"[^]*input bytes/);
    const bytes = Buffer.from('a streamed tar');
    async function* body(): AsyncGenerator<Uint8Array> {
      yield bytes.subarray(0, 5);
      yield bytes.subarray(5);
    }
    const streamed = await c.request<{ contentType: string; body: string }>('POST', '/v1/images', { stream: { body: body(), contentType: 'application/x-tar', bytes: bytes.length } });
    t.same(streamed.body, { method: 'POST', contentType: 'application/x-tar', body: 'a streamed tar' });
    const logs = await c.stream('/v1/jobs/j-1/logs');
    const chunks: Buffer[] = [];
    for await (const chunk of logs) chunks.push(chunk as Buffer);
    t.equal(Buffer.concat(chunks).toString(), 'line 1\nline 2\n');
  });

  t.test('401 and 403 are usage errors that say why', async (t) => {
    const anonymous = new ApiClient({ server: node.url, caFile, token: null });
    clients.push(anonymous);
    const noToken = await failure(anonymous.request('GET', '/v1/jobs'));
    t.equal(noToken.exitCode, EXIT.usage);
    t.match(noToken.message, /UNAUTHORIZED[^]*--token-file/);
    const weak = new ApiClient({ server: node.url, caFile, token: 'read-token' });
    clients.push(weak);
    const forbidden = await failure(weak.request('POST', '/v1/acl/tokens', { json: { role: 'admin' } }));
    t.equal(forbidden.exitCode, EXIT.usage);
    t.match(forbidden.message, /role 'admin'[^]*\(FORBIDDEN\)/);
  });
});
