// Authentication of bulk-transfer requests on the peer port.
//
//   x-workrs-auth: <nodeId>:<ts>:<hex HMAC-SHA256(token, "workrs-bulk-v1|" nodeId "|" ts "|" method "|" path)>
//
// `ts` is the sender's clock in milliseconds; a request is accepted within maxSkewMs of
// the receiver's clock either way. The key is the cluster token, the empty key when
// none is configured (then the caller accepts loopback peers only, as the transport
// does). The version prefix keeps these MACs apart from the link handshake's.
//
// What it covers: who sent the request (a holder of the token), the method and the
// path with its query, and roughly when. Not the body (a POST /bulk/pull replayed
// within the window with another body would pass) and not the answer: like the peer
// links, bulk transfer trusts the network for that (its content is hash-checked).
// Pure: the clock is passed in.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const AUTH_HEADER = 'x-workrs-auth';
export const DEFAULT_MAX_SKEW_MS = 60_000;
const MAC_HEX_CHARS = 64;
const MAX_HEADER_CHARS = 512; // a node id is at most 255 bytes

export type AuthCheck = { ok: true; nodeId: string } | { ok: false; reason: string };

/** The header value a node sends with a request. */
export function signBulkRequest(token: Buffer | null, nodeId: string, tsMs: number, method: string, path: string): string {
  return `${nodeId}:${tsMs}:${mac(token, nodeId, String(tsMs), method, path)}`;
}

/** Checks a request's header against the token, its method and path (with query), and the clock. */
export function verifyBulkRequest(token: Buffer | null, header: string | undefined, method: string, path: string, nowMs: number, maxSkewMs: number): AuthCheck {
  if (header === undefined || header.length === 0) return { ok: false, reason: `no ${AUTH_HEADER} header` };
  if (header.length > MAX_HEADER_CHARS) return { ok: false, reason: `${AUTH_HEADER} header too long` };
  // Split from the right: the mac and the time have no ':', a node id might.
  const macAt = header.lastIndexOf(':');
  const tsAt = macAt > 0 ? header.lastIndexOf(':', macAt - 1) : -1;
  if (tsAt <= 0) return { ok: false, reason: `${AUTH_HEADER} is not <nodeId>:<ts>:<hmac>` };
  const nodeId = header.slice(0, tsAt);
  const ts = header.slice(tsAt + 1, macAt);
  const given = header.slice(macAt + 1);
  if (!/^\d{1,16}$/.test(ts)) return { ok: false, reason: 'timestamp is not milliseconds' };
  if (given.length !== MAC_HEX_CHARS || !/^[0-9a-f]+$/.test(given)) return { ok: false, reason: 'hmac is not 64 hex digits' };
  const skewMs = Math.abs(nowMs - Number(ts));
  if (skewMs > maxSkewMs) return { ok: false, reason: `timestamp ${skewMs} ms away from this node's clock (window ${maxSkewMs} ms)` };
  const expected = Buffer.from(mac(token, nodeId, ts, method, path), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(given, 'hex'))) return { ok: false, reason: 'hmac does not verify' };
  return { ok: true, nodeId };
}

function mac(token: Buffer | null, nodeId: string, ts: string, method: string, path: string): string {
  return createHmac('sha256', token ?? Buffer.alloc(0)).update(`workrs-bulk-v1|${nodeId}|${ts}|${method}|${path}`).digest('hex');
}
