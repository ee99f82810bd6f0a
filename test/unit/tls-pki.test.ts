// The cluster PKI and enrollment in one process: certificates say what nodes check,
// the join secret opens only what it wrapped, and an enrollment without the secret, or
// relayed through a third party, gets nothing.
import { X509Certificate } from 'node:crypto';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { checkIssued, createCa, fingerprintOf, issueNodeCert, newNodeKey, nodeIdOf, normalizeFingerprint, publicKeyDerOf } from '../../src/tls/pki.js';
import { JoinSecret } from '../../src/tls/secret.js';
import { EnrollError, EnrollServer, enroll } from '../../src/tls/enroll.js';
import { NodeTls, peerNodeOf } from '../../src/tls/node-tls.js';
import { sendError } from '../../src/api/http.js';

async function nodeIdentity(ca: { certPem: string; keyPem: string }, id: string): Promise<NodeTls> {
  const { keyPem, publicKeyDer } = await newNodeKey();
  const certPem = await issueNodeCert(ca, id, publicKeyDer, ['127.0.0.1', 'localhost']);
  return new NodeTls(id, keyPem, certPem, ca.certPem, ca, Buffer.alloc(0));
}

t.test('a node certificate names its node, chains to the CA, and carries the key it was issued for', async (t) => {
  const ca = await createCa('0123456789abcdef');
  const { keyPem, publicKeyDer } = await newNodeKey();
  const certPem = await issueNodeCert(ca, 'n1', publicKeyDer, ['127.0.0.1', 'box.example', '0.0.0.0']);
  const cert = new X509Certificate(certPem);
  t.equal(nodeIdOf(cert), 'n1');
  t.ok(cert.checkIssued(new X509Certificate(ca.certPem)));
  t.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  t.match(cert.subjectAltName ?? '', /DNS:box\.example/);
  t.notMatch(cert.subjectAltName ?? '', /0\.0\.0\.0/, 'a wildcard address is no name');
  t.doesNotThrow(() => checkIssued(ca.certPem, certPem, 'n1', publicKeyDerOf(keyPem)));
  t.throws(() => checkIssued(ca.certPem, certPem, 'n2', publicKeyDerOf(keyPem)), /names node n1, not n2/);
  const other = await newNodeKey();
  t.throws(() => checkIssued(ca.certPem, certPem, 'n1', other.publicKeyDer), /another key/);
  const otherCa = await createCa('fedcba9876543210');
  t.throws(() => checkIssued(otherCa.certPem, certPem, 'n1', publicKeyDerOf(keyPem)), /not signed by the CA/);
  t.equal(fingerprintOf(ca.certPem).length, 64);
  t.equal(normalizeFingerprint(`SHA256:${fingerprintOf(ca.certPem).toUpperCase().match(/../g)!.join(':')}`), fingerprintOf(ca.certPem));
  t.equal(normalizeFingerprint('not-a-fingerprint'), null);
});

t.test('the join secret opens what it wrapped; the previous one too, flagged for rewrapping; another not', async (t) => {
  const old = new JoinSecret(Buffer.from('the-old-secret-0123456789'));
  const rotated = new JoinSecret(Buffer.from('the-new-secret-0123456789'), Buffer.from('the-old-secret-0123456789'));
  const stranger = new JoinSecret(Buffer.from('someone-elses-secret-000'));
  const blob = old.wrap(Buffer.from('ca key'), 'label');
  t.same(old.unwrap(blob, 'label'), { plain: Buffer.from('ca key'), rewrap: false });
  t.same(rotated.unwrap(blob, 'label'), { plain: Buffer.from('ca key'), rewrap: true });
  t.equal(stranger.unwrap(blob, 'label'), null);
  t.equal(old.unwrap(blob, 'another label'), null, 'the label is authenticated');
  const tampered = Buffer.from(blob);
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
  t.equal(old.unwrap(tampered, 'label'), null);
  const mac = old.mac(['x', 1]);
  t.ok(rotated.verify(['x', 1], mac), 'a proof under the previous secret verifies during a rotation');
  t.notOk(stranger.verify(['x', 1], mac));
  t.notOk(old.verify(['x', 2], mac));
});

/** An HTTPS server answering enrollments as a node holding `secret` and `ca` would. */
async function enrollServer(t: Test, secret: JoinSecret, ca: { certPem: string; keyPem: string }, serverId = 'n1'): Promise<string> {
  const identity = await nodeIdentity(ca, serverId);
  const enrollments = new EnrollServer({ secret, issuer: () => ({ ca, wrappedKey: secret.wrap(Buffer.from(ca.keyPem), 'workrs-ca-key') }) });
  const server: Server = createHttpsServer(identity.serverOptions(), (req, res) => {
    enrollments.handle(req, res).catch((err: unknown) => sendError(res, err));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('enrollment: the secret gets a certificate; another secret, or a pinned CA that is not the cluster\'s, gets nothing', async (t) => {
  const secret = new JoinSecret(Buffer.from('cluster-join-secret-0123'));
  const ca = await createCa('0123456789abcdef');
  const url = await enrollServer(t, secret, ca);
  const key = await newNodeKey();
  const got = await enroll({ url, secret, nodeId: 'n7', publicKeyDer: key.publicKeyDer, hosts: ['127.0.0.1'], pinnedFingerprint: null, timeoutMs: 5000 });
  t.equal(got.caPem, ca.certPem);
  t.equal(nodeIdOf(new X509Certificate(got.certPem)), 'n7');
  t.same(secret.unwrap(got.wrappedCaKey, 'workrs-ca-key')?.plain.toString(), ca.keyPem, 'the CA key comes wrapped under the secret');
  const pinned = await enroll({ url, secret, nodeId: 'n8', publicKeyDer: key.publicKeyDer, hosts: [], pinnedFingerprint: fingerprintOf(ca.certPem), timeoutMs: 5000 });
  t.equal(pinned.caPem, ca.certPem);

  const wrong = new JoinSecret(Buffer.from('a-submit-token-or-a-guess'));
  const refused = await enroll({ url, secret: wrong, nodeId: 'n9', publicKeyDer: key.publicKeyDer, hosts: [], pinnedFingerprint: null, timeoutMs: 5000 }).catch((e: unknown) => e);
  t.ok(refused instanceof EnrollError && refused.permanent, 'a wrong secret is refused for good');
  t.match(String(refused), /401 ENROLL_REFUSED/);
  const otherCa = await createCa('fedcba9876543210');
  const mismatch = await enroll({ url, secret, nodeId: 'n9', publicKeyDer: key.publicKeyDer, hosts: [], pinnedFingerprint: fingerprintOf(otherCa.certPem), timeoutMs: 5000 }).catch((e: unknown) => e);
  t.ok(mismatch instanceof EnrollError && mismatch.permanent);
  t.match(String(mismatch), /not the pinned/);
});

t.test('enrollment relayed by a third party in the middle fails: the proofs are bound to each TLS session', async (t) => {
  const secret = new JoinSecret(Buffer.from('cluster-join-secret-0123'));
  const ca = await createCa('0123456789abcdef');
  const target = new URL(await enrollServer(t, secret, ca));
  // The relay terminates TLS with a certificate of its own and opens its own session to
  // the real node, copying bytes both ways: the client's proof covers the first
  // session's keying material, the node checks it against the second's.
  const relayCa = await createCa('aaaaaaaaaaaaaaaa');
  const relayId = await nodeIdentity(relayCa, 'relay');
  const relay = createTlsServer({ key: relayId.keyPem, cert: relayId.certPem }, (client: TLSSocket) => {
    const upstream = tlsConnect({ host: target.hostname, port: Number(target.port), rejectUnauthorized: false });
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => relay.close(() => r())));
  const key = await newNodeKey();
  const url = `https://127.0.0.1:${(relay.address() as AddressInfo).port}`;
  const err = await enroll({ url, secret, nodeId: 'n5', publicKeyDer: key.publicKeyDer, hosts: [], pinnedFingerprint: null, timeoutMs: 5000 }).catch((e: unknown) => e);
  t.ok(err instanceof EnrollError, 'no certificate through a relay');
  t.match(String(err), /ENROLL_REFUSED/);
});

t.test('peerNodeOf: only an authorized certificate of the cluster CA, not revoked, proves a node', async (t) => {
  const ca = await createCa('0123456789abcdef');
  const server = await nodeIdentity(ca, 'n1');
  const client = await nodeIdentity(ca, 'n2');
  const otherCa = await createCa('fedcba9876543210');
  const stranger = await nodeIdentity(otherCa, 'n2');
  const revoked = new Set<string>();
  const seen: Array<string | null> = [];
  const srv = createTlsServer(server.serverOptions(), (s) => {
    seen.push(peerNodeOf(s, (serial) => revoked.has(serial))?.id ?? null);
    s.end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const port = (srv.address() as AddressInfo).port;
  const dial = (opts: object): Promise<void> =>
    new Promise((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, checkServerIdentity: () => undefined, ...opts }, () => s.on('close', () => resolve()));
      s.on('error', () => resolve());
      s.resume();
    });
  await dial({ key: client.keyPem, cert: client.certPem });
  await dial({ key: stranger.keyPem, cert: stranger.certPem });
  await dial({});
  revoked.add(client.serial);
  await dial({ key: client.keyPem, cert: client.certPem });
  t.same(seen, ['n2', null, null, null]);

  // The dialer's side: a server certificate naming another node is refused.
  const check = client.clientOptions('n3', () => false).checkServerIdentity!;
  t.ok(check('127.0.0.1', { subjectaltname: 'URI:urn:workrs:node:n1', serialNumber: '01' } as never) instanceof Error);
  t.equal(check('127.0.0.1', { subjectaltname: 'URI:urn:workrs:node:n3', serialNumber: '01' } as never), undefined);
});
