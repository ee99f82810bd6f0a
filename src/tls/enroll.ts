// Enrollment: how a node without a certificate gets one, by proving the join secret.
//
//   POST /v1/cluster/enroll   (on the API port and on the peer port, over TLS)
//   client → { v, nodeId, publicKey, hosts, nonce, proof }
//            proof = MAC(secret, "client", EKM, nodeId, publicKey, hosts, nonce)
//   server → { ca, cert, caKey, proof }
//            proof = MAC(secret, "server", EKM, nonce, sha256 of ca, cert and caKey)
//
// EKM is keying material exported from the TLS session (RFC 5705): both ends compute
// the same value, and no other session has it. So a proof is good for this connection
// only: an eavesdropper sees nothing (TLS), a relay in the middle holds two sessions
// with two EKMs and can forward neither proof, and a replay is a new session. The
// client has not verified the server's certificate when it sends (it does not have the
// CA yet, unless the operator pinned one): the server's proof over the same EKM is
// what tells it that it reached a holder of the secret, and the CA it receives is
// the cluster's. caKey is the CA's private key wrapped under the secret (secret.ts):
// every node may issue, so any node can enroll the next one.
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { HttpError, readJson, sendJson } from '../api/http.js';
import { checkIssued, fingerprintOf, issueNodeCert, type CaMaterial } from './pki.js';
import type { JoinSecret } from './secret.js';
import { isNodeId } from '../config/node-options.js';
import { WorkrsError } from '../errors.js';

export const ENROLL_PATH = '/v1/cluster/enroll';
const EKM_LABEL = 'EXPORTER-workrs-enroll-v1';
const VERSION = 1;
const MAX_HOSTS = 32;
const MAX_BODY_BYTES = 16 * 1024;
/** Failed proofs answered per minute, all sources together: guessing a secret online stays slow. */
const MAX_FAILURES_PER_MINUTE = 30;

export function exportEkm(socket: TLSSocket): string {
  return socket.exportKeyingMaterial(32, EKM_LABEL, Buffer.alloc(0)).toString('hex');
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface EnrollRequest {
  v: number;
  nodeId: string;
  publicKey: string; // base64 SPKI DER
  hosts: string[];
  nonce: string;
  proof: string;
}

export interface EnrollAnswer {
  ca: string;
  cert: string;
  caKey: string; // base64, wrapped under the secret
  proof: string;
}

export interface EnrollServerOptions {
  secret: JoinSecret;
  /** The CA this node issues with, and its key wrapped; null: this node cannot issue (yet). */
  issuer: () => { ca: CaMaterial; wrappedKey: Buffer } | null;
  onIssued?: (nodeId: string, serial: string) => void;
}

/** Serves enrollments; one instance per node, shared by both ports. */
export class EnrollServer {
  private failures: number[] = [];
  constructor(private readonly opts: EnrollServerOptions) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket as TLSSocket;
    if (typeof socket.exportKeyingMaterial !== 'function') throw new HttpError(400, 'TLS_REQUIRED', 'enrollment needs TLS');
    const body = await readJson(req, MAX_BODY_BYTES);
    const r = parseEnrollRequest(body);
    const ekm = exportEkm(socket);
    const now = Date.now();
    this.failures = this.failures.filter((t) => t > now - 60_000);
    if (this.failures.length >= MAX_FAILURES_PER_MINUTE) throw new HttpError(429, 'ENROLL_BUSY', 'too many failed enrollments in the last minute; try again later');
    if (!this.opts.secret.verify(['client', ekm, r.nodeId, r.publicKey, r.hosts, r.nonce], Buffer.from(r.proof, 'hex'))) {
      this.failures.push(now);
      throw new HttpError(401, 'ENROLL_REFUSED', 'the enrollment proof does not verify: this node holds another join secret');
    }
    const issuer = this.opts.issuer();
    if (issuer === null) throw new HttpError(503, 'NO_CA', 'this node has no cluster CA yet; try another node');
    const cert = await issueNodeCert(issuer.ca, r.nodeId, Buffer.from(r.publicKey, 'base64'), r.hosts);
    const caKey = issuer.wrappedKey.toString('base64');
    const proof = this.opts.secret.mac(['server', ekm, r.nonce, sha256(issuer.ca.certPem), sha256(cert), sha256(caKey)]).toString('hex');
    this.opts.onIssued?.(r.nodeId, new X509Certificate(cert).serialNumber);
    const answer: EnrollAnswer = { ca: issuer.ca.certPem, cert, caKey, proof };
    sendJson(res, 200, answer);
  }
}

/** The enrollment request's shape; HttpError 400 BAD_ENROLLMENT otherwise. */
export function parseEnrollRequest(body: unknown): EnrollRequest {
  const bad = (what: string): never => {
    throw new HttpError(400, 'BAD_ENROLLMENT', `enrollment: ${what}`);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('expected a JSON object');
  const b = body as Record<string, unknown>;
  if (b.v !== VERSION) bad(`version ${String(b.v)}; this node speaks ${VERSION}`);
  if (!isNodeId(b.nodeId)) bad('nodeId is not a node id');
  if (typeof b.publicKey !== 'string' || b.publicKey.length > 1024) bad('publicKey must be base64 SPKI');
  if (!Array.isArray(b.hosts) || b.hosts.length > MAX_HOSTS || !b.hosts.every((h) => typeof h === 'string' && /^[A-Za-z0-9.:_-]{1,253}$/.test(h))) bad(`hosts must be up to ${MAX_HOSTS} host names or addresses`);
  if (typeof b.nonce !== 'string' || !/^[0-9a-f]{64}$/.test(b.nonce)) bad('nonce must be 32 bytes of hex');
  if (typeof b.proof !== 'string' || !/^[0-9a-f]{64}$/.test(b.proof)) bad('proof must be 32 bytes of hex');
  return b as unknown as EnrollRequest;
}

export interface Enrolled {
  caPem: string;
  certPem: string;
  wrappedCaKey: Buffer;
}

export class EnrollError extends WorkrsError {
  constructor(
    message: string,
    /** Retrying will not help (a wrong secret, a CA other than the pinned one). */
    readonly permanent: boolean,
    options?: { cause?: unknown },
  ) {
    super('ENROLL_FAILED', 400, message, options);
    this.name = 'EnrollError';
  }
}

export interface EnrollClientOptions {
  /** https://host:port of a node (its API or peer port). */
  url: string;
  secret: JoinSecret;
  nodeId: string;
  publicKeyDer: Buffer;
  hosts: string[];
  /** The CA fingerprint the operator expects; null: trust the CA a holder of the secret sends. */
  pinnedFingerprint: string | null;
  timeoutMs: number;
}

/** Asks the node at `url` for a certificate; checks what comes back (see the top of this file). */
export async function enroll(o: EnrollClientOptions): Promise<Enrolled> {
  const url = new URL(ENROLL_PATH, o.url);
  const nonce = randomBytes(32).toString('hex');
  const publicKey = o.publicKeyDer.toString('base64');
  const { status, text, ekm, serverCertDer } = await new Promise<{ status: number; text: string; ekm: string; serverCertDer: Buffer | null }>((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', agent: false, rejectUnauthorized: false, headers: { 'content-type': 'application/json' }, timeout: o.timeoutMs });
    let ekm = '';
    req.on('socket', (s) => {
      const socket = s as TLSSocket;
      socket.once('secureConnect', () => {
        ekm = exportEkm(socket);
        const proof = o.secret.mac(['client', ekm, o.nodeId, publicKey, o.hosts, nonce]).toString('hex');
        req.end(JSON.stringify({ v: VERSION, nodeId: o.nodeId, publicKey, hosts: o.hosts, nonce, proof } satisfies EnrollRequest));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', (err) => reject(new EnrollError(`enrolling through ${url.origin}: ${err.message}`, false, { cause: err })));
    req.on('response', (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 1024 * 1024) req.destroy(new Error('enrollment answer larger than 1 MiB'));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), ekm, serverCertDer: peer?.raw ?? null }));
      res.on('error', reject);
    });
  });
  let answer: Partial<EnrollAnswer> & { error?: { code?: string; message?: string } };
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    throw new EnrollError(`enrolling through ${url.origin}: answer ${status} is not JSON`, false);
  }
  if (status !== 200) {
    const msg = `enrolling through ${url.origin} was refused (${status} ${answer.error?.code ?? ''}): ${answer.error?.message ?? ''}`;
    throw new EnrollError(msg, status === 401 || status === 400);
  }
  if (typeof answer.ca !== 'string' || typeof answer.cert !== 'string' || typeof answer.caKey !== 'string' || typeof answer.proof !== 'string') {
    throw new EnrollError(`enrolling through ${url.origin}: the answer lacks ca, cert, caKey or proof`, false);
  }
  const proofOk = o.secret.verify(['server', ekm, nonce, sha256(answer.ca), sha256(answer.cert), sha256(answer.caKey)], Buffer.from(answer.proof, 'hex'));
  if (!proofOk) throw new EnrollError(`the node at ${url.origin} does not hold this join secret (its proof does not verify)`, true);
  const fingerprint = fingerprintOf(answer.ca);
  if (o.pinnedFingerprint !== null && fingerprint !== o.pinnedFingerprint) {
    throw new EnrollError(`the cluster at ${url.origin} has CA sha256:${fingerprint}, not the pinned sha256:${o.pinnedFingerprint}`, true);
  }
  checkIssued(answer.ca, answer.cert, o.nodeId, o.publicKeyDer);
  // The node we talked to serves with a certificate of the same CA.
  if (serverCertDer === null || !new X509Certificate(serverCertDer).checkIssued(new X509Certificate(answer.ca))) {
    throw new EnrollError(`the node at ${url.origin} serves with a certificate the CA it sent did not issue`, true);
  }
  return { caPem: answer.ca, certPem: answer.cert, wrappedCaKey: Buffer.from(answer.caKey, 'base64') };
}
