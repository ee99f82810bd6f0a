// What the trust acceptance tests (issue 13, trust-*.test.ts) need beyond the harness
// and test/helpers/secure-clients.ts: the API as a caller that holds a given token
// (the bootstrap race takes the harness's own admin token away from it), plain bytes
// sent to a TLS port, certificates the cluster did not issue, bulk requests signed by
// hand, a node's peer links as its /metrics shows them, and a process's exit.
import 'reflect-metadata';
import type { ChildProcess } from 'node:child_process';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import https from 'node:https';
import { connect as netConnect } from 'node:net';
import * as x509 from '@peculiar/x509';
import { AUTH_HEADER, EMPTY_BODY_SHA256, bodySha256, signBulkRequest } from '../../src/blobs/bulk-auth.js';
import { createCa, issueNodeCert, newNodeKey } from '../../src/tls/pki.js';
import type { NodeCert } from '../helpers/secure-clients.js';
import type { LocalCluster, Role } from './harness.js';

export interface Answer {
  status: number;
  /** The error code of a `{error:{code,message}}` answer, else ''. */
  code: string;
  message: string;
  body: unknown;
}

/** Reads an answer's body as JSON when it is JSON (the UI's files and /metrics are not). */
export async function answerOf(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    // not JSON: kept as text
  }
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return { status: res.status, code: typeof error?.code === 'string' ? error.code : '', message: typeof error?.message === 'string' ? error.message : '', body };
}

/** A request to node `id`'s API with exactly this Authorization header (null: none). */
export async function call(c: LocalCluster, id: string, method: string, path: string, authorization: string | null, body?: { type: string; text: string }): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (authorization !== null) headers.authorization = authorization;
  if (body) headers['content-type'] = body.type;
  const res = await c.request(id, path, { method, headers, token: null, ...(body ? { body: body.text } : {}) }, 15_000);
  return answerOf(res);
}

export const bearer = (token: string): string => `Bearer ${token}`;

/** A new API token of `role`, made with `admin` (the harness's createToken uses its own admin token). */
export async function makeToken(c: LocalCluster, via: string, admin: string, role: Role, opts: { name?: string; ttlSeconds?: number } = {}): Promise<{ id: string; token: string; expiresAt: number | null }> {
  const a = await call(c, via, 'POST', '/v1/acl/tokens', bearer(admin), { type: 'application/json', text: JSON.stringify({ role, ...opts }) });
  if (a.status !== 201) throw new Error(`creating a ${role} token answered ${a.status}: ${JSON.stringify(a.body)}`);
  return a.body as { id: string; token: string; expiresAt: number | null };
}

/**
 * Writes `request` in clear to host:port and collects every byte the far end sends
 * until it closes the connection (or `timeoutMs` passes: `closedByPeer` false).
 */
export function plainExchange(host: string, port: number, request: string, timeoutMs = 5000): Promise<{ received: Buffer; closedByPeer: boolean; error: string | null }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | null = null;
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closedByPeer: false, error });
    }, timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (b: Buffer) => chunks.push(b));
    socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(chunks), closedByPeer: true, error });
    });
  });
}

/** GET over https with Node's default trust store (no cluster CA): the error it fails with, or the status it got. */
export function getWithDefaultTrust(url: string): Promise<{ status: number | null; error: string | null }> {
  return new Promise((resolve) => {
    const req = https.get(url, { agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, error: null });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: null, error: err.code ?? err.message }));
  });
}

/** A key and a self-signed certificate naming node `nodeId` the way cluster certificates do: no CA vouches for it. */
export async function selfSignedNodeCert(nodeId: string): Promise<NodeCert> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    name: `CN=${nodeId}, O=workrs`,
    notBefore: new Date(Date.now() - 600_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:workrs:node:${nodeId}` }, { type: 'ip', value: '127.0.0.1' }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  const certPem = cert.toString('pem');
  return { nodeId, keyPem, certPem, caPem: certPem };
}

/** A certificate naming `nodeId` from a CA of the caller's own making, exactly like the cluster's but not it. */
export async function rogueCaNodeCert(nodeId: string): Promise<NodeCert> {
  const ca = await createCa('rogue');
  const { keyPem, publicKeyDer } = await newNodeKey();
  const certPem = await issueNodeCert(ca, nodeId, publicKeyDer, ['127.0.0.1']);
  return { nodeId, keyPem, certPem, caPem: ca.certPem };
}

/** A well-formed blob id no node holds. */
export function absentBlobId(): string {
  return `sha256:${randomBytes(32).toString('hex')}`;
}

/**
 * A bulk request to node `to`'s peer port, signed as node `from` (the empty key: secure
 * mode authenticates bulk senders by certificate), over TLS presenting `cert`.
 */
export function bulkRequest(c: LocalCluster, to: string, cert: NodeCert, from: string, method: string, path: string, body: Buffer | null = null): Promise<Answer> {
  const n = c.node(to);
  const ca = c.caPem();
  if (ca === null) throw new Error('no node has written its ca.pem yet');
  const subject = { from, to, method, path, bodySha256: body === null ? EMPTY_BODY_SHA256 : bodySha256(body) };
  const headers: Record<string, string> = { [AUTH_HEADER]: signBulkRequest(null, subject, Date.now(), randomBytes(16).toString('hex')) };
  if (body !== null) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = https.request({ host: n.host, port: n.peerPort, method, path, headers, agent: false, ca, key: cert.keyPem, cert: cert.certPem, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        answerOf(new Response(text, { status: res.statusCode ?? 0 })).then(resolve, reject);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** Node `id`'s peer links as its /metrics shows them: peer → connected. */
export async function peerLinks(c: LocalCluster, id: string, token?: string): Promise<Record<string, boolean>> {
  const text = await (await c.request(id, '/metrics', token === undefined ? {} : { token })).text();
  const links: Record<string, boolean> = {};
  for (const m of text.matchAll(/^workrs_peer_connected\{peer="([^"]+)"\} (\d+)$/gm)) links[m[1] ?? ''] = m[2] === '1';
  return links;
}

/** How a process ended: resolves at its exit (call right after spawning it: an exit cannot be missed before the next tick). */
export function exitOf(proc: ChildProcess | null): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc === null) throw new Error('the process is not running');
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

/** How a process ended if it did within `ms`, else null (the timer does not outlive the exit: it would hold the test open). */
export async function exitWithin(proc: ChildProcess | null, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([exitOf(proc), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with `value` after `ms`. */
export function after<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}
