// What a PeerTransport is configured with, what it reports, and the close codes its
// links end with; the options' defaults and bounds are settled here, once.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import { DEFAULT_BACKOFF, type BackoffOptions } from '../util/backoff.js';
import { type Clock, systemClock } from '../util/clock.js';
import { HANDSHAKE_MESSAGE_MAX_BYTES } from './handshake.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Close codes a link ends with (4xxx: ours; ws itself uses 1009 for an oversized message). */
export const CloseCode = {
  GoingAway: 1001, // the transport is closing
  BadHandshake: 4000, // a handshake message did not parse or came out of turn
  AuthFailed: 4001, // the proof of the token did not verify, or the certificate names another node
  BadFrame: 4002, // an authenticated peer sent something that is not a batch of frames
  UnknownPeer: 4003, // the id is not in this node's peer set
  WrongNode: 4004, // the node reached is not the one dialed
  HandshakeTimeout: 4008, // the connection did not complete the handshake within handshakeTimeoutMs of its TCP accept
  Duplicate: 4009, // another link to the same peer is kept instead
  PeerRemoved: 4010, // the peer left the set, or its address changed
} as const;

export interface PeerTransportOptions {
  id: string; // this node's id
  listen: { host: string; port: number }; // port 0 = ephemeral; see `port`
  /** Shared cluster secret; null = none configured (the caller then binds loopback only); the handshake runs the same with an empty key. */
  token: Buffer | null;
  /** Largest websocket message sent or accepted; a bigger one closes the link (ws maxPayload). Default 16 MiB. */
  maxFrameBytes?: number;
  /** Per-peer bound on frames waiting to be handed to the link. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Per-link bound on bytes handed to the socket but not yet written out (a slow reader); above it frames stay queued. Default 8 MiB. */
  maxSocketBufferBytes?: number;
  /** A connection must finish the upgrade and the handshake within this of its TCP accept (a dial: of its start), or it is closed. Default 5 s. */
  handshakeTimeoutMs?: number;
  /** Bytes a connection may deliver before the handshake completes (frame headers included); beyond it the connection is cut. Default 4 KiB, at least two handshake messages. */
  maxPreAuthBytes?: number;
  /** Each end pings its links this often; a link that answers neither of two pings in a row is cut (a peer whose box died without closing its sockets). Default 1 s. */
  keepaliveIntervalMs?: number;
  /** Inbound connections not yet authenticated that all strangers (addresses no peer advertises) may hold together; beyond it a stranger's connection is closed at once. Default 64. */
  maxPendingHandshakes?: number;
  /** Inbound connections not yet authenticated that one stranger source (IPv4 address, IPv6 /64) may hold; a peer host may hold this many per peer advertising it, outside the strangers' budget. Default 8. */
  maxPendingPerSource?: number;
  backoff?: BackoffOptions; // reconnect delays; default 50 ms doubling to 2 s
  random?: () => number; // jitter source, [0, 1); default Math.random
  /** Time for the reconnect, keepalive, handshake and close timers. Default: the system clock. */
  clock?: Clock;
  logger?: Logger;
  /** Plain HTTP requests on the listening port (later: bulk data). Default: 404 (426 on the peer path). */
  onHttpRequest?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Upgrade requests on paths other than /peer. Default: 404. */
  onHttpUpgrade?: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  /**
   * Secure mode: the port speaks TLS, and a link needs a certificate of the cluster CA
   * on both ends naming the node the handshake claims (src/tls/node-tls.ts). Without
   * it, links are authenticated by the token's proofs alone (dev mode: loopback).
   */
  tls?: PeerTls;
}

export interface PeerTls {
  server: TlsOptions;
  /** Options to dial `peerId` with: this node's certificate, and the check that the far end is that node. */
  client: (peerId: string) => ConnectionOptions;
  /** The node a connection's client certificate proves (cluster CA, not revoked), or null. */
  nodeOf: (socket: unknown) => string | null;
}

export interface PeerLinkStats {
  connected: boolean;
  queuedBytes: number; // waiting in the queue (≤ maxQueueBytes)
  queuedFrames: number;
  inflightBytes: number; // handed to the socket, not yet written out
  sentFrames: number;
  sentMessages: number; // websocket messages; sentFrames / sentMessages shows batching
  droppedFrames: number;
  receivedFrames: number;
  receivedMessages: number;
  reconnects: number; // links established after the first one
}

export interface TransportStats {
  peers: Record<string, PeerLinkStats>;
  rejectedConnections: number; // connections refused before or during the handshake, both directions
  pendingConnections: { strangers: number; peerHosts: number }; // inbound, not yet authenticated
}

export type FrameHandler = (from: string, frame: unknown) => void;

/** The options with their defaults filled in and their bounds checked. */
export interface TransportSettings {
  maxFrameBytes: number;
  maxQueueBytes: number;
  maxSocketBufferBytes: number;
  handshakeTimeoutMs: number;
  keepaliveIntervalMs: number;
  maxPreAuthBytes: number;
  maxPendingStrangers: number;
  maxPendingPerSource: number;
  backoff: BackoffOptions;
  random: () => number;
  clock: Clock;
}

const WS_FRAME_HEADER_MAX_BYTES = 14; // 2 + 8 (64-bit length) + 4 (mask)
/** Least pre-authentication budget: each side receives at most two handshake messages before it completes. */
const PRE_AUTH_MIN_BYTES = 2 * (HANDSHAKE_MESSAGE_MAX_BYTES + WS_FRAME_HEADER_MAX_BYTES);

/** Throws a RangeError naming the first option out of its bounds. */
export function transportSettings(opts: PeerTransportOptions): TransportSettings {
  return {
    maxFrameBytes: positive('maxFrameBytes', opts.maxFrameBytes ?? 16 * MiB, 256),
    maxQueueBytes: positive('maxQueueBytes', opts.maxQueueBytes ?? 64 * MiB, 1),
    maxSocketBufferBytes: positive('maxSocketBufferBytes', opts.maxSocketBufferBytes ?? 8 * MiB, 1),
    handshakeTimeoutMs: positive('handshakeTimeoutMs', opts.handshakeTimeoutMs ?? 5_000, 1),
    keepaliveIntervalMs: positive('keepaliveIntervalMs', opts.keepaliveIntervalMs ?? 1_000, 1),
    maxPreAuthBytes: positive('maxPreAuthBytes', opts.maxPreAuthBytes ?? 4 * KiB, PRE_AUTH_MIN_BYTES),
    maxPendingStrangers: positive('maxPendingHandshakes', opts.maxPendingHandshakes ?? 64, 1),
    maxPendingPerSource: positive('maxPendingPerSource', opts.maxPendingPerSource ?? 8, 1),
    backoff: opts.backoff ?? DEFAULT_BACKOFF,
    random: opts.random ?? Math.random,
    clock: opts.clock ?? systemClock,
  };
}

function positive(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`PeerTransport: ${name} must be a number ≥ ${min}, got ${value}`);
  return value;
}
