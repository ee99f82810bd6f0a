// The cluster's small PKI: one CA per cluster, one key and certificate per node.
//
// Certificates are made with @peculiar/x509 over Node's WebCrypto (ECDSA P-256,
// SHA-256); Node's own X509Certificate reads and checks them, and node:tls uses them.
// No cryptography is written here: this file only says what goes into a certificate.
//
// A node certificate names its node in two places: the subject's CN, and a URI SAN
// `urn:workrs:node:<id>`, which is what peers check (nodeIdOf). Its other SANs are the
// addresses clients reach its API at, so `curl --cacert ca.pem https://host:port`
// verifies the host name the usual way.
import { X509Certificate, createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { WorkrsError } from '../errors.js';

let x509Library: Promise<typeof X509> | null = null;

/**
 * @peculiar/x509 (and the reflect-metadata it needs first), loaded when a certificate
 * is first made: only a secure-mode node that issues certificates needs it, and a
 * loaded library costs every node memory (scripts/build.mjs keeps it out of the
 * executable's main script).
 */
function loadX509(): Promise<typeof X509> {
  x509Library ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  })();
  return x509Library;
}

type Key = webcrypto.CryptoKey;
type KeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** The CA lives ten years; rotating it is an operator's act (docs/security.md). */
export const CA_VALIDITY_DAYS = 3650;
/** Node certificates live five years; a node gets a new one by enrolling again. */
export const NODE_CERT_VALIDITY_DAYS = 1825;
/** Clocks of edge boxes drift: a certificate is valid from a little before it was made. */
const BACKDATE_MS = 10 * 60_000;
const NODE_URI_PREFIX = 'urn:workrs:node:';

export class PkiError extends WorkrsError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, 400, message, options);
    this.name = 'PkiError';
  }
}

/** A CA: its certificate (PEM) and, where this node may issue, its private key. */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

/** A node's own identity: key and certificate, and the CA that signed it. */
export interface NodeIdentity {
  nodeId: string;
  keyPem: string;
  certPem: string;
  caPem: string;
}

function serial(): string {
  // Positive (top bit clear), 16 bytes: unique without coordination.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

async function exportKeyPem(key: Key): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

async function importKeyPem(pem: string): Promise<Key> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

async function newKeyPair(): Promise<KeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']) as Promise<KeyPair>;
}

/** A new cluster CA (self-signed, may sign node certificates only: path length 0). */
export async function createCa(clusterId: string): Promise<CaMaterial> {
  const x509 = await loadX509();
  const keys = await newKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=workrs cluster CA ${clusterId}, O=workrs`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

/** A new node key pair; the public half goes to the issuer as SPKI DER. */
export async function newNodeKey(): Promise<{ keyPem: string; publicKeyDer: Buffer }> {
  const keys = await newKeyPair();
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return { keyPem: await exportKeyPem(keys.privateKey), publicKeyDer: spki };
}

/** Names a node certificate carries besides its id: host names and IP addresses. */
export function subjectAltNames(hosts: readonly string[]): Array<{ type: 'dns' | 'ip'; value: string }> {
  const seen = new Set<string>();
  const out: Array<{ type: 'dns' | 'ip'; value: string }> = [];
  for (const raw of hosts) {
    const host = raw.replace(/^\[|\]$/g, '');
    if (host === '' || host === '0.0.0.0' || host === '::' || seen.has(host)) continue;
    seen.add(host);
    out.push({ type: isIP(host) === 0 ? 'dns' : 'ip', value: host });
  }
  return out;
}

/** Signs a certificate for `nodeId` over `publicKeyDer` (SPKI), valid as TLS server and client. */
export async function issueNodeCert(ca: CaMaterial, nodeId: string, publicKeyDer: Buffer, hosts: readonly string[]): Promise<string> {
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(ca.certPem);
  let publicKey: Key;
  try {
    publicKey = await webcrypto.subtle.importKey('spki', publicKeyDer, ALGORITHM, true, ['verify']);
  } catch (err) {
    throw new PkiError('BAD_PUBLIC_KEY', 'the public key is not an ECDSA P-256 key in SPKI form', { cause: err });
  }
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${nodeId}, O=workrs`,
    issuer: caCert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + NODE_CERT_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey,
    signingKey: await importKeyPem(ca.keyPem),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `${NODE_URI_PREFIX}${nodeId}` }, ...subjectAltNames(hosts)]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return cert.toString('pem');
}

/** SHA-256 of the certificate's DER, 64 lower-case hex digits: what operators pin. */
export function fingerprintOf(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

/** A fingerprint as people write it (sha256: prefix, colons, upper case) in the form fingerprintOf gives; null when it is not one. */
export function normalizeFingerprint(text: string): string | null {
  const hex = text.trim().replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

/** The node a certificate names in its workrs URI SAN; null when it names none (or several). */
export function nodeIdOf(cert: { subjectaltname?: string | undefined } | X509Certificate): string | null {
  const san = cert instanceof X509Certificate ? cert.subjectAltName : cert.subjectaltname;
  if (!san) return null;
  const ids = san
    .split(/,\s*/)
    .filter((n) => n.startsWith(`URI:${NODE_URI_PREFIX}`))
    .map((n) => n.slice(`URI:${NODE_URI_PREFIX}`.length));
  return ids.length === 1 ? (ids[0] ?? null) : null;
}

/** The serial number as lower-case hex without leading zeros, as revocations record it. */
export function normalizeSerial(serialNumber: string): string {
  return serialNumber.toLowerCase().replace(/^0+(?=.)/, '');
}

/**
 * Checks what a node received from an issuer: the certificate is signed by the CA, is
 * for `nodeId`, carries `publicKeyDer`, and is valid now. Throws PkiError otherwise.
 */
export function checkIssued(caPem: string, certPem: string, nodeId: string, publicKeyDer: Buffer): void {
  let ca: X509Certificate;
  let cert: X509Certificate;
  try {
    ca = new X509Certificate(caPem);
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new PkiError('BAD_CERTIFICATE', 'the issuer sent something that is not a certificate', { cause: err });
  }
  if (!ca.ca) throw new PkiError('BAD_CERTIFICATE', 'the issuer\'s CA certificate is not a CA');
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new PkiError('BAD_CERTIFICATE', 'the node certificate is not signed by the CA sent with it');
  if (nodeIdOf(cert) !== nodeId) throw new PkiError('BAD_CERTIFICATE', `the certificate names node ${nodeIdOf(cert) ?? '(none)'}, not ${nodeId}`);
  const spki = cert.publicKey.export({ format: 'der', type: 'spki' });
  if (!spki.equals(publicKeyDer)) throw new PkiError('BAD_CERTIFICATE', 'the certificate is for another key');
  const now = Date.now();
  if (Date.parse(cert.validFrom) > now + BACKDATE_MS || Date.parse(cert.validTo) < now) throw new PkiError('BAD_CERTIFICATE', `the certificate is not valid now (${cert.validFrom} to ${cert.validTo})`);
}

/** The public key of a PEM private key, as SPKI DER (to check a certificate matches its key). */
export function publicKeyDerOf(keyPem: string | KeyObject): Buffer {
  return createPublicKey(keyPem).export({ format: 'der', type: 'spki' });
}
