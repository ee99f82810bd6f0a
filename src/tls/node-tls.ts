// A node's TLS identity in secure mode: where its key and certificates live, how it
// gets them the first time, and the TLS options every listener and dialer uses.
//
//   DATA/tls/node-key.pem   the node's private key (0600); never leaves the box
//   DATA/tls/node-cert.pem  its certificate, from the cluster CA
//   DATA/tls/ca-cert.pem    the CA certificate
//   DATA/tls/ca-key.wrapped the CA's private key, wrapped under the join secret (0600)
//   DATA/ca.pem             the CA certificate again, for operators and clients
//
// The first start of a node obtains them (obtainIdentity):
//   - a node given --join enrolls through that node;
//   - in a --bootstrap list, the node with the smallest id is the seed: it creates the
//     CA, unless another bootstrap node already has one (its data folder was lost), in
//     which case it enrolls like the others; every other bootstrap node enrolls through
//     whichever bootstrap node answers with a certificate, retrying until one does.
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket, ConnectionOptions, TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import { EnrollError, enroll, type Enrolled } from './enroll.js';
import { checkIssued, createCa, fingerprintOf, issueNodeCert, newNodeKey, nodeIdOf, normalizeSerial, publicKeyDerOf, type CaMaterial } from './pki.js';
import type { JoinSecret } from './secret.js';
import { WorkrsError } from '../errors.js';
import { backoffDelayMs, type BackoffOptions } from '../util/backoff.js';
import { systemClock, type Clock } from '../util/clock.js';
import { writeFileAtomic } from '../util/write-file-atomic.js';

const CA_KEY_LABEL = 'workrs-ca-key';

/** Between enrollment rounds: from about 0.1 s, doubling, to at most 2.5 s. */
const ENROLL_BACKOFF: BackoffOptions = { baseMs: 150, maxMs: 2_500 };

export interface ObtainOptions {
  /** For the retry sleeps and the deadline; the system clock unless given. */
  clock?: Clock;
  dataDir: string;
  nodeId: string;
  secret: JoinSecret;
  /** Names the node's certificate carries for its API and peer addresses. */
  hosts: string[];
  /** Bootstrap voters: id → peer host:port (this node included); empty when joining. */
  bootstrap: ReadonlyMap<string, string>;
  /** API URL to join through, or null. */
  join: string | null;
  /** The CA fingerprint the operator pinned (--ca-fingerprint / --ca-file); null: trust the secret. */
  pinnedFingerprint: string | null;
  clusterId: string;
  logger: Logger;
  /** Give up enrolling after this long (default 10 minutes: bootstrap nodes start in any order). */
  enrollTimeoutMs?: number;
}

/** Everything TLS a running node needs. */
export class NodeTls {
  readonly fingerprint: string;
  /** This node's certificate serial (normalizeSerial). */
  readonly serial: string;

  constructor(
    readonly nodeId: string,
    readonly keyPem: string,
    readonly certPem: string,
    readonly caPem: string,
    /** The CA with its key, for issuing; null when the secret could not open the key. */
    readonly ca: CaMaterial | null,
    readonly wrappedCaKey: Buffer,
  ) {
    this.fingerprint = fingerprintOf(caPem);
    this.serial = normalizeSerial(new X509Certificate(certPem).serialNumber);
  }

  /**
   * A listener's options: its certificate, and a client certificate asked for but not
   * required (API clients present a token instead; enrollment comes without one).
   * Whoever needs a node checks `socket.authorized` and the certificate's node id.
   */
  serverOptions(): TlsOptions {
    return { key: this.keyPem, cert: this.certPem, ca: this.caPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' };
  }

  /**
   * A dialer's options: this node's certificate as client certificate, and the far end
   * must present a certificate of the cluster CA naming `expect` (any node when null),
   * not revoked. Host names are not what identifies a node: its id is.
   */
  clientOptions(expect: string | null, revoked: (serial: string) => boolean): ConnectionOptions {
    return {
      key: this.keyPem,
      cert: this.certPem,
      ca: this.caPem,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      checkServerIdentity: (_host, cert) => {
        const id = nodeIdOf(cert);
        if (id === null) return new Error('the peer\'s certificate names no workrs node');
        if (expect !== null && id !== expect) return new Error(`reached node ${id}, not ${expect}`);
        if (revoked(normalizeSerial(cert.serialNumber))) return new Error(`node ${id}'s certificate is revoked`);
        return undefined;
      },
    };
  }
}

/** The node a TLS connection's client certificate proves, or null (none, not from the cluster CA, revoked). */
export function peerNodeOf(socket: unknown, revoked: (serial: string) => boolean): { id: string; serial: string } | null {
  const s = socket as Partial<TLSSocket>;
  if (typeof s.getPeerCertificate !== 'function' || s.authorized !== true) return null;
  const cert = s.getPeerCertificate();
  if (!cert || !cert.raw) return null;
  const id = nodeIdOf(cert);
  const serial = normalizeSerial(cert.serialNumber);
  if (id === null || revoked(serial)) return null;
  return { id, serial };
}

/** Host names and addresses a node's certificate should name: its API and peer hosts, loopback, and on a wildcard listener every address of the box. */
export function certificateHosts(listenHosts: string[], extra: string[]): string[] {
  const hosts = new Set<string>(['localhost', '127.0.0.1', '::1', ...extra]);
  for (const h of listenHosts) {
    if (h === '0.0.0.0' || h === '::') {
      hosts.add(hostname());
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) hosts.add(a.address.replace(/%.*$/, ''));
    } else {
      hosts.add(h);
    }
  }
  return [...hosts];
}

function tlsDir(dataDir: string): string {
  return join(dataDir, 'tls');
}

const FILES = { key: 'node-key.pem', cert: 'node-cert.pem', ca: 'ca-cert.pem', caKey: 'ca-key.wrapped' } as const;

/** The node's TLS identity: read from DATA/tls, or obtained the first time (see the top of this file). */
export async function obtainIdentity(o: ObtainOptions): Promise<NodeTls> {
  const dir = tlsDir(o.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const paths = Object.fromEntries(Object.entries(FILES).map(([k, f]) => [k, join(dir, f)])) as Record<keyof typeof FILES, string>;
  if (!Object.values(paths).every((p) => existsSync(p))) {
    const { publicKeyDer, keyPem } = await newNodeKey();
    const got = await firstIdentity(o, publicKeyDer);
    writeFileAtomic(paths.key, keyPem, 0o600);
    writeFileAtomic(paths.caKey, got.wrappedCaKey, 0o600);
    writeFileAtomic(paths.ca, got.caPem, 0o644);
    writeFileAtomic(paths.cert, got.certPem, 0o644);
  }
  const keyPem = readFileSync(paths.key, 'utf8');
  const certPem = readFileSync(paths.cert, 'utf8');
  const caPem = readFileSync(paths.ca, 'utf8');
  let wrapped: Buffer = readFileSync(paths.caKey);
  try {
    checkIssued(caPem, certPem, o.nodeId, publicKeyDerOf(keyPem));
  } catch (err) {
    throw new WorkrsError('BAD_TLS_FILES', 400, `${dir}: ${err instanceof Error ? err.message : String(err)} (remove the folder to enroll again)`, { cause: err });
  }
  if (o.pinnedFingerprint !== null && fingerprintOf(caPem) !== o.pinnedFingerprint) {
    throw new WorkrsError('CA_MISMATCH', 400, `${dir}: this node's CA is sha256:${fingerprintOf(caPem)}, not the pinned sha256:${o.pinnedFingerprint}`);
  }
  const opened = o.secret.unwrap(wrapped, CA_KEY_LABEL);
  let ca: CaMaterial | null = null;
  if (opened === null) {
    o.logger.warn({ file: paths.caKey }, 'the join secret does not open the CA key: this node cannot enroll others (after a secret rotation, give the old one as --previous-secret-file once)');
  } else {
    ca = { certPem: caPem, keyPem: opened.plain.toString('utf8') };
    if (opened.rewrap) {
      wrapped = o.secret.wrap(opened.plain, CA_KEY_LABEL);
      writeFileAtomic(paths.caKey, wrapped, 0o600);
      o.logger.warn('the CA key was wrapped under the previous join secret; wrapped it under the current one');
    }
  }
  writeFileAtomic(join(o.dataDir, 'ca.pem'), caPem, 0o644);
  return new NodeTls(o.nodeId, keyPem, certPem, caPem, ca, wrapped);
}

async function firstIdentity(o: ObtainOptions, publicKeyDer: Buffer): Promise<Enrolled> {
  if (o.join !== null) return enrollUntil(o, publicKeyDer, [o.join.replace(/^http:/, 'https:')]);
  const others = [...o.bootstrap.keys()].filter((id) => id !== o.nodeId).map((id) => `https://${o.bootstrap.get(id)}`);
  const seed = [...o.bootstrap.keys()].sort()[0];
  if (seed !== o.nodeId) return enrollUntil(o, publicKeyDer, others);
  // The seed: a bootstrap node that answers already has the cluster's CA (this node's
  // folder was lost); none answering is the first start of the cluster.
  for (const url of others) {
    try {
      return await enroll({ url, secret: o.secret, nodeId: o.nodeId, publicKeyDer, hosts: o.hosts, pinnedFingerprint: o.pinnedFingerprint, timeoutMs: 2000 });
    } catch (err) {
      if (err instanceof EnrollError && err.permanent) throw err;
      o.logger.debug({ err, url }, 'no CA at this bootstrap node');
    }
  }
  if (o.pinnedFingerprint !== null) throw new WorkrsError('CA_MISMATCH', 400, 'a CA fingerprint is pinned, but no bootstrap node answered with a certificate: the seed does not create a new CA when one is pinned');
  const ca = await createCa(o.clusterId);
  const certPem = await issueNodeCert(ca, o.nodeId, publicKeyDer, o.hosts);
  o.logger.info({ fingerprint: fingerprintOf(ca.certPem) }, 'created the cluster CA (this node is the first of the bootstrap list)');
  return { caPem: ca.certPem, certPem, wrappedCaKey: o.secret.wrap(Buffer.from(ca.keyPem, 'utf8'), CA_KEY_LABEL) };
}

/** Tries `urls` in turn until one enrolls this node; a wrong secret or CA ends it at once. */
async function enrollUntil(o: ObtainOptions, publicKeyDer: Buffer, urls: string[]): Promise<Enrolled> {
  const clock = o.clock ?? systemClock;
  const deadline = clock.monotonic() + (o.enrollTimeoutMs ?? 600_000);
  let lastWarn = -Infinity;
  for (let round = 0; ; round++) {
    for (const url of urls) {
      try {
        const got = await enroll({ url, secret: o.secret, nodeId: o.nodeId, publicKeyDer, hosts: o.hosts, pinnedFingerprint: o.pinnedFingerprint, timeoutMs: 5000 });
        o.logger.info({ via: url, fingerprint: fingerprintOf(got.caPem) }, 'enrolled: got this node\'s certificate');
        return got;
      } catch (err) {
        if (err instanceof EnrollError && err.permanent) throw err;
        if (clock.monotonic() > deadline) throw err;
        if (clock.monotonic() - lastWarn > 10_000) {
          lastWarn = clock.monotonic();
          o.logger.warn({ url, err: err instanceof Error ? err.message : String(err) }, 'waiting to enroll: no node has given this node a certificate yet');
        }
      }
    }
    await clock.sleep(backoffDelayMs(round, Math.random, ENROLL_BACKOFF));
  }
}
