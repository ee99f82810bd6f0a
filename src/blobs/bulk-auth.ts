// Authentication of bulk-transfer requests on the peer port.
//
//   x-workrs-auth: <from>:<ts>:<nonce>:<body sha256>:<hmac>
//
//   from   the sender's node id, percent-encoded (encodeURIComponent: no ':' left)
//   ts     the sender's clock in milliseconds
//   nonce  32 hex digits, random per request
//   body   hex SHA-256 of the request body (of the empty body for a GET)
//   hmac   hex HMAC-SHA256(token, JSON ["workrs-bulk-v2", from, to, ts, nonce, method, path, body sha256])
//
// `to` is the receiver's node id: it is not sent, each receiver puts its own, so a
// request signed for one node does not verify at another. `path` includes the query.
// The MAC input is a JSON array, so no field can spill into the next (node ids may
// hold any character). Nodes use the empty key: in secure mode the request comes over
// mutual TLS and the caller checks that `from` is the node its certificate names
// (peer.ts), so the header binds receiver, method, path and body and stops replays;
// in dev mode the caller accepts loopback peers only, as the transport does.
// The version string keeps these MACs apart from the link handshake's and from the
// previous format's.
//
// A request is accepted within maxSkewMs of the receiver's clock either way, and each
// nonce once: the verifier keeps the nonces it accepted until their request could no
// longer pass the clock check, at most maxNonces of them. When that many are live it
// refuses new requests (REPLAY_CACHE_FULL) rather than forget one early, which would
// let that request be replayed. The caller must read the body it acts on and check it
// against the signed digest (bodyMatches) before using it.
//
// What it does not cover by itself: the answer (TLS does in secure mode; blob content
// is hash-checked anyway), nor which node sent the request (the certificate does).
// Pure: the clock and the nonce are passed in.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const AUTH_HEADER = 'x-workrs-auth';
export const DEFAULT_MAX_SKEW_MS = 60_000;
/**
 * Nonces held at once by default (≈100 bytes each, ≈25 MiB when full). Each is held at
 * most 2 × maxSkewMs: with the default window, ≈2,000 requests a second, sustained,
 * before requests are refused (a chunk request moves 64 KiB to 1 MiB).
 */
export const DEFAULT_MAX_NONCES = 262_144;
const MAC_VERSION = 'workrs-bulk-v2';
const HEX_256 = /^[0-9a-f]{64}$/;
const NONCE = /^[0-9a-f]{32}$/;
const TIMESTAMP = /^\d{1,16}$/;
/** A node id is at most 255 bytes, ×3 percent-encoded; plus the fixed fields. */
const MAX_HEADER_CHARS = 1024;

/** SHA-256 of the empty body: what a GET signs. */
export const EMPTY_BODY_SHA256 = bodySha256(new Uint8Array(0));

/** What a signature binds, besides the time and the nonce. */
export interface BulkRequestSubject {
  from: string; // the sender's node id
  to: string; // the receiver's node id
  method: string;
  path: string; // with the query, as sent on the request line
  bodySha256: string; // hex; EMPTY_BODY_SHA256 when there is no body
}

export type AuthFailureCode = 'UNAUTHORIZED' | 'REPLAY_CACHE_FULL';
export type AuthCheck = { ok: true; nodeId: string; bodySha256: string } | { ok: false; code: AuthFailureCode; reason: string };

export function bodySha256(body: Uint8Array | null): string {
  return createHash('sha256')
    .update(body ?? new Uint8Array(0))
    .digest('hex');
}

/** Whether the bytes the receiver read are those the sender signed. */
export function bodyMatches(signedSha256: string, body: Uint8Array): boolean {
  if (!HEX_256.test(signedSha256)) return false;
  return timingSafeEqual(Buffer.from(signedSha256, 'hex'), Buffer.from(bodySha256(body), 'hex'));
}

/** The header value a node sends with a request. `nonce`: 16 random bytes as hex, new for every request. */
export function signBulkRequest(token: Buffer | null, subject: BulkRequestSubject, tsMs: number, nonce: string): string {
  if (!NONCE.test(nonce)) throw new TypeError(`signBulkRequest: nonce must be 32 hex digits, got "${nonce}"`);
  if (!HEX_256.test(subject.bodySha256)) throw new TypeError('signBulkRequest: bodySha256 must be 64 hex digits');
  if (!Number.isSafeInteger(tsMs) || tsMs < 0) throw new TypeError(`signBulkRequest: tsMs must be a non-negative integer, got ${tsMs}`);
  return `${encodeURIComponent(subject.from)}:${tsMs}:${nonce}:${subject.bodySha256}:${mac(token, subject, String(tsMs), nonce)}`;
}

export interface BulkVerifierOptions {
  token: Buffer | null;
  /** The receiver's own node id: requests signed for another node do not verify. */
  nodeId: string;
  maxSkewMs?: number;
  maxNonces?: number;
}

/**
 * Checks request headers for one receiver and remembers the nonces it accepted. Not
 * safe to share between receivers (the nonce set is theirs).
 */
export class BulkVerifier {
  private readonly token: Buffer | null;
  private readonly nodeId: string;
  private readonly maxSkewMs: number;
  private readonly maxNonces: number;
  /**
   * Accepted nonce → the last receiver time its request could pass the clock check
   * (ts + maxSkewMs), in acceptance order. Expiries are not sorted (senders' clocks
   * differ), so the sweep stops at the first live entry; an entry behind it waits at
   * most until it too expires: every entry is gone 2 × maxSkewMs after its acceptance.
   */
  private readonly seen = new Map<string, number>();

  constructor(opts: BulkVerifierOptions) {
    this.token = opts.token;
    this.nodeId = opts.nodeId;
    this.maxSkewMs = atLeast('maxSkewMs', opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS, 0);
    this.maxNonces = atLeast('maxNonces', opts.maxNonces ?? DEFAULT_MAX_NONCES, 1);
  }

  /** Nonces held now (live or waiting for the sweep). */
  get heldNonces(): number {
    return this.seen.size;
  }

  /**
   * Checks the header's form, the clock, the MAC over (sender, this node, method,
   * path, signed body digest), then that the nonce is new; records it. The body is
   * the caller's to check against the returned digest.
   */
  verify(header: string | undefined, method: string, path: string, nowMs: number): AuthCheck {
    const refuse = (reason: string): AuthCheck => ({ ok: false, code: 'UNAUTHORIZED', reason });
    if (header === undefined || header.length === 0) return refuse(`no ${AUTH_HEADER} header`);
    if (header.length > MAX_HEADER_CHARS) return refuse(`${AUTH_HEADER} header longer than ${MAX_HEADER_CHARS} characters`);
    const fields = header.split(':');
    if (fields.length !== 5) return refuse(`${AUTH_HEADER} is not <from>:<ts>:<nonce>:<body sha256>:<hmac>`);
    const [encodedFrom = '', ts = '', nonce = '', digest = '', given = ''] = fields;
    const from = decodeNodeId(encodedFrom);
    if (from === null) return refuse('sender is not a percent-encoded node id');
    if (!TIMESTAMP.test(ts)) return refuse('timestamp is not milliseconds');
    if (!NONCE.test(nonce)) return refuse('nonce is not 32 hex digits');
    if (!HEX_256.test(digest)) return refuse('body digest is not 64 hex digits');
    if (!HEX_256.test(given)) return refuse('hmac is not 64 hex digits');
    const tsMs = Number(ts);
    const skewMs = Math.abs(nowMs - tsMs);
    if (skewMs > this.maxSkewMs) return refuse(`timestamp ${skewMs} ms away from this node's clock (window ${this.maxSkewMs} ms)`);
    const expected = Buffer.from(mac(this.token, { from, to: this.nodeId, method, path, bodySha256: digest }, ts, nonce), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(given, 'hex'))) {
      return refuse(`hmac does not verify (another token, signed for another node than ${this.nodeId}, or method, path or digest altered)`);
    }
    this.sweep(nowMs);
    if (this.seen.has(nonce)) return refuse('nonce already used: a replayed request');
    if (this.seen.size >= this.maxNonces) {
      return { ok: false, code: 'REPLAY_CACHE_FULL', reason: `${this.seen.size} bulk requests accepted within the last ${2 * this.maxSkewMs} ms, the most this node remembers; try again shortly` };
    }
    this.seen.set(nonce, tsMs + this.maxSkewMs);
    return { ok: true, nodeId: from, bodySha256: digest };
  }

  private sweep(nowMs: number): void {
    for (const [nonce, lastValidMs] of this.seen) {
      if (lastValidMs >= nowMs) return;
      this.seen.delete(nonce);
    }
  }
}

function mac(token: Buffer | null, s: BulkRequestSubject, ts: string, nonce: string): string {
  const input = JSON.stringify([MAC_VERSION, s.from, s.to, ts, nonce, s.method, s.path, s.bodySha256]);
  return createHmac('sha256', token ?? Buffer.alloc(0))
    .update(input)
    .digest('hex');
}

function decodeNodeId(encoded: string): string | null {
  if (encoded.length === 0) return null;
  try {
    return decodeURIComponent(encoded);
  } catch {
    return null; // not valid percent-encoding
  }
}

function atLeast(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`BulkVerifier: ${name} must be a number ≥ ${min}, got ${value}`);
  return value;
}
