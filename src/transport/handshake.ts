// The peer-link handshake: mutual proof of the shared cluster token, without sending it.
//
//   server → client  CHALLENGE  server id, server nonce
//   client → server  HELLO      client id, the id it meant to reach, client nonce,
//                               HMAC(token, "client" ‖ ids ‖ both nonces)
//   server → client  WELCOME    HMAC(token, "server" ‖ ids ‖ both nonces)
//
// Each side contributes a fresh nonce, so neither proof can be replayed into another
// connection; the role label keeps a proof from being reflected back as the other
// side's. Messages are a fixed binary layout (not msgpack) because they come from
// peers that have not authenticated yet: parsing them must be trivially bounded.
//
// Nodes run it with the empty key: in secure mode the link is TLS and each end's
// certificate says who it is (the hello's client id must be the one in the client's
// certificate, see peer-transport.ts), so the handshake only exchanges the ids; in dev
// mode (loopback only) nothing else authenticates a link. A non-empty key still works
// for callers that share one (the unit tests).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { assertPeerId, MAX_PEER_ID_BYTES } from '../util/peer-address.js';

export const HANDSHAKE_VERSION = 1;
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32; // HMAC-SHA256
export const MAX_ID_BYTES = MAX_PEER_ID_BYTES; // ids travel with a one-byte length
/** The largest handshake message: a hello carrying two ids of MAX_ID_BYTES. */
export const HANDSHAKE_MESSAGE_MAX_BYTES = 2 + NONCE_BYTES + PROOF_BYTES + 2 * (1 + MAX_ID_BYTES);

const Kind = { Challenge: 1, Hello: 2, Welcome: 3 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

export interface Challenge {
  serverId: string;
  serverNonce: Buffer;
}

export interface Hello {
  clientId: string;
  serverId: string; // the node the client meant to reach
  clientNonce: Buffer;
  proof: Buffer;
}

export interface Welcome {
  proof: Buffer;
}

/** What both proofs are computed over. */
export interface HandshakeTranscript {
  clientId: string;
  serverId: string;
  clientNonce: Buffer;
  serverNonce: Buffer;
}

export class HandshakeError extends Error {
  readonly code = 'TRANSPORT_HANDSHAKE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HandshakeError';
  }
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function encodeChallenge(c: Challenge): Buffer {
  return Buffer.concat([header(Kind.Challenge), fixed(c.serverNonce, NONCE_BYTES), idField(c.serverId)]);
}

export function encodeHello(h: Hello): Buffer {
  return Buffer.concat([header(Kind.Hello), fixed(h.clientNonce, NONCE_BYTES), fixed(h.proof, PROOF_BYTES), idField(h.clientId), idField(h.serverId)]);
}

export function encodeWelcome(w: Welcome): Buffer {
  return Buffer.concat([header(Kind.Welcome), fixed(w.proof, PROOF_BYTES)]);
}

export function parseChallenge(data: Buffer): Challenge {
  const r = new Reader(data, 'challenge');
  r.header(Kind.Challenge);
  const serverNonce = r.bytes(NONCE_BYTES);
  const serverId = r.id();
  r.end();
  return { serverId, serverNonce };
}

export function parseHello(data: Buffer): Hello {
  const r = new Reader(data, 'hello');
  r.header(Kind.Hello);
  const clientNonce = r.bytes(NONCE_BYTES);
  const proof = r.bytes(PROOF_BYTES);
  const clientId = r.id();
  const serverId = r.id();
  r.end();
  return { clientId, serverId, clientNonce, proof };
}

export function parseWelcome(data: Buffer): Welcome {
  const r = new Reader(data, 'welcome');
  r.header(Kind.Welcome);
  const proof = r.bytes(PROOF_BYTES);
  r.end();
  return { proof };
}

/** The proof `role` sends: HMAC-SHA256 keyed by the token (empty key when none is configured). */
export function computeProof(token: Buffer | null, role: 'client' | 'server', t: HandshakeTranscript): Buffer {
  const mac = createHmac('sha256', token ?? Buffer.alloc(0));
  // Every variable-length field is length-prefixed so no two transcripts share an encoding.
  mac.update(`workrs-peer-v${HANDSHAKE_VERSION}/${role}`);
  mac.update(idField(t.clientId));
  mac.update(idField(t.serverId));
  mac.update(fixed(t.clientNonce, NONCE_BYTES));
  mac.update(fixed(t.serverNonce, NONCE_BYTES));
  return mac.digest();
}

/** Constant-time check of a proof received from the other side. */
export function verifyProof(token: Buffer | null, role: 'client' | 'server', t: HandshakeTranscript, proof: Buffer): boolean {
  const expected = computeProof(token, role, t);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

function header(kind: Kind): Buffer {
  return Buffer.from([kind, HANDSHAKE_VERSION]);
}

function fixed(b: Buffer, sizeBytes: number): Buffer {
  if (b.length !== sizeBytes) throw new RangeError(`handshake field is ${b.length} bytes, expected ${sizeBytes}`);
  return b;
}

function idField(id: string): Buffer {
  assertPeerId(id, 'handshake');
  const utf8 = Buffer.from(id, 'utf8');
  return Buffer.concat([Buffer.from([utf8.length]), utf8]);
}

class Reader {
  private at = 0;
  constructor(
    private readonly data: Buffer,
    private readonly what: string,
  ) {}

  header(kind: Kind): void {
    const [gotKind, version] = this.bytes(2);
    if (gotKind !== kind) throw new HandshakeError(`${this.what}: message kind ${gotKind}, expected ${kind}`);
    if (version !== HANDSHAKE_VERSION) throw new HandshakeError(`${this.what}: handshake version ${version}, this node speaks ${HANDSHAKE_VERSION}`);
  }

  bytes(n: number): Buffer {
    if (this.at + n > this.data.length) throw new HandshakeError(`${this.what}: truncated at byte ${this.at} (${this.data.length} bytes, needs ${this.at + n})`);
    // A copy: the caller may keep it while the socket's buffer is reused.
    const out = Buffer.from(this.data.subarray(this.at, this.at + n));
    this.at += n;
    return out;
  }

  id(): string {
    const [sizeBytes] = this.bytes(1);
    if (sizeBytes === undefined || sizeBytes === 0) throw new HandshakeError(`${this.what}: empty peer id`);
    const raw = this.bytes(sizeBytes);
    const id = raw.toString('utf8');
    // Reject ids that are not valid UTF-8: they would not round-trip to the same bytes.
    if (!Buffer.from(id, 'utf8').equals(raw)) throw new HandshakeError(`${this.what}: peer id is not valid UTF-8`);
    return id;
  }

  end(): void {
    if (this.at !== this.data.length) throw new HandshakeError(`${this.what}: ${this.data.length - this.at} unexpected trailing bytes`);
  }
}
