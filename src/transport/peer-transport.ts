// Peer links between Workrs nodes: one authenticated websocket per pair of nodes, over
// which both ends send msgpack-encoded frames (Raft messages, small control frames).
// Bulk data never goes over these links.
//
// Who dials: the node whose id is smaller (JavaScript `<`, UTF-16 code units) dials,
// the other accepts. Should two links to one peer ever be up at once (a peer that
// dials against the rule, a half-open link from before a restart), both ends keep the
// same one: the link dialed by the smaller id, else the newer.
//
// Delivery is best effort, like the network Raft assumes: frames wait in a per-peer
// queue bounded in bytes while the link is down or slow, the oldest go first when it
// is full, and frames handed to a link that then breaks are lost.
//
// Until a connection has proved the token it is pending, and bounded (see preauth.ts):
// a deadline from its TCP accept, a byte budget, and a number per source and in all,
// with a share for peer hosts that strangers cannot take.
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { PEER_PATH, parsePeerAddress, peerUrl } from './address.js';
import { DEFAULT_BACKOFF, backoffDelayMs, type BackoffOptions } from '../util/backoff.js';
import { BATCH_HEADER_MAX_BYTES, decodeBatch, encodeBatch, encodeFrame } from './codec.js';
import { FrameQueue } from './frame-queue.js';
import {
  HANDSHAKE_MESSAGE_MAX_BYTES,
  assertPeerId,
  computeProof,
  encodeChallenge,
  encodeHello,
  encodeWelcome,
  newNonce,
  parseChallenge,
  parseHello,
  parseWelcome,
  verifyProof,
  type HandshakeTranscript,
} from './handshake.js';
import { PendingConnections, canonicalIp, dialSourceAddress, meterUntilAuthenticated, type AdmissionTicket } from './preauth.js';

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

interface Link {
  readonly ws: WebSocket;
  readonly dialedBy: string;
  readonly upSinceMs: number;
  heardSincePing: boolean; // a pong or a message arrived since the last ping
  missedPings: number; // consecutive pings with nothing heard before the next one
  inflightBytes: number;
}

/**
 * The accepted TCP connection under a socket: itself, or in secure mode the one the
 * TLS socket wraps (node:tls keeps it as _parent), the key of the pending budget.
 */
function tcpOf(socket: Socket): Socket {
  const parent = (socket as Socket & { _parent?: unknown })._parent;
  return parent instanceof Object && typeof (parent as Socket).remoteAddress === 'string' ? (parent as Socket) : socket;
}

/** An inbound connection from its TCP accept until it authenticates, is handed to another use of the port, or closes. */
interface PendingConnection {
  readonly ticket: AdmissionTicket;
  readonly timer: NodeJS.Timeout; // the handshake deadline, from the accept
  expire: () => void; // what the deadline does: destroy the socket, or refuse the websocket once upgraded
  stopMetering: () => void; // ends the byte budget of an upgraded connection
  upgraded: boolean;
}

/** What a peer host name resolved to, for the admission of peer hosts. */
interface ResolvedHost {
  addresses: string[]; // canonical IPs
  resolvedAtMs: number;
  inFlight: boolean;
}

interface Peer {
  readonly id: string;
  address: string;
  readonly queue: FrameQueue;
  link: Link | null;
  dialing: WebSocket | null; // outbound socket not yet authenticated
  redialTimer: NodeJS.Timeout | null;
  failedDials: number; // consecutive; drives the backoff
  flushScheduled: boolean;
  dropping: boolean; // the queue overflowed since it was last empty (to log once)
  everConnected: boolean;
  counters: { sentFrames: number; sentMessages: number; droppedFrames: number; receivedFrames: number; receivedMessages: number; reconnects: number };
}

const CLOSE_GRACE_MS = 1_000; // after a close frame, how long a peer gets to answer before the socket is destroyed
const WS_FRAME_HEADER_MAX_BYTES = 14; // 2 + 8 (64-bit length) + 4 (mask)
/** Least pre-authentication budget: each side receives at most two handshake messages before it completes. */
const PRE_AUTH_MIN_BYTES = 2 * (HANDSHAKE_MESSAGE_MAX_BYTES + WS_FRAME_HEADER_MAX_BYTES);
const PEER_HOST_REFRESH_MS = 60_000; // how often peer host names are looked up again (on the next setPeers)
const WARN_INTERVAL_MS = 30_000;
const REASON_MAX_BYTES = 120;
const KEEPALIVE_MISSED_PINGS = 2; // consecutive unanswered pings that cut a link // websocket close reasons are limited to 123 bytes

export class PeerTransport {
  readonly id: string;
  /** The listening server; /peer is taken, other paths go to onHttpRequest / onHttpUpgrade. */
  readonly httpServer: http.Server | https.Server;

  private readonly token: Buffer | null;
  private readonly maxFrameBytes: number;
  private readonly maxQueueBytes: number;
  private readonly maxSocketBufferBytes: number;
  private readonly handshakeTimeoutMs: number;
  private readonly keepaliveIntervalMs: number;
  private readonly maxPreAuthBytes: number;
  private readonly admission: PendingConnections;
  /** Where dials leave from (the listening IP), so peers count this node as a peer host; undefined: the system chooses. */
  private readonly dialSource: { localAddress: string; family: 4 | 6 } | undefined;
  private readonly backoff: BackoffOptions;
  private readonly random: () => number;
  private readonly log: Logger;
  /** Repeated warnings about the same peer and cause are logged at debug in between. */
  private readonly warnings: RateLimitedWarn;
  private readonly opts: PeerTransportOptions;
  private readonly wss: WebSocketServer;

  private readonly peers = new Map<string, Peer>();
  private readonly handlers: FrameHandler[] = [];
  private readonly sockets = new Set<WebSocket>(); // every websocket, for close()
  private readonly pending = new Map<Socket, PendingConnection>(); // inbound, not yet authenticated
  private readonly resolvedHosts = new Map<string, ResolvedHost>(); // peer host names
  private rejectedConnections = 0;
  private closed = false;
  private closing: Promise<void> | null = null;

  static async start(opts: PeerTransportOptions): Promise<PeerTransport> {
    const transport = new PeerTransport(opts);
    await transport.listen();
    return transport;
  }

  private constructor(opts: PeerTransportOptions) {
    assertPeerId(opts.id, 'PeerTransport id');
    this.opts = opts;
    this.id = opts.id;
    this.token = opts.token;
    this.maxFrameBytes = positive('maxFrameBytes', opts.maxFrameBytes ?? 16 * MiB, 256);
    this.maxQueueBytes = positive('maxQueueBytes', opts.maxQueueBytes ?? 64 * MiB, 1);
    this.maxSocketBufferBytes = positive('maxSocketBufferBytes', opts.maxSocketBufferBytes ?? 8 * MiB, 1);
    this.handshakeTimeoutMs = positive('handshakeTimeoutMs', opts.handshakeTimeoutMs ?? 5_000, 1);
    this.keepaliveIntervalMs = positive('keepaliveIntervalMs', opts.keepaliveIntervalMs ?? 1_000, 1);
    this.maxPreAuthBytes = positive('maxPreAuthBytes', opts.maxPreAuthBytes ?? 4 * KiB, PRE_AUTH_MIN_BYTES);
    this.admission = new PendingConnections({
      maxPendingStrangers: positive('maxPendingHandshakes', opts.maxPendingHandshakes ?? 64, 1),
      maxPendingPerSource: positive('maxPendingPerSource', opts.maxPendingPerSource ?? 8, 1),
    });
    this.dialSource = dialSourceAddress(opts.listen.host);
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.random = opts.random ?? Math.random;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'transport', node: opts.id });
    this.warnings = new RateLimitedWarn(this.log, WARN_INTERVAL_MS);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.maxFrameBytes, perMessageDeflate: false, clientTracking: false });
    this.httpServer = opts.tls ? https.createServer({ ...opts.tls.server, handshakeTimeout: this.handshakeTimeoutMs }) : http.createServer();
    this.httpServer.on('connection', (socket: Socket) => this.onTcpConnection(socket));
    this.httpServer.on('request', (req, res) => this.onHttpRequest(req, res));
    this.httpServer.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  /** The bound port (the real one when listen.port was 0). */
  get port(): number {
    const address = this.httpServer.address();
    if (address === null || typeof address === 'string') throw new Error('PeerTransport: not listening on a TCP port');
    return address.port;
  }

  /** Registers a receiver of every frame from every peer, in order per link. Register before setPeers: frames arriving with no handler are dropped. A handler must not throw (the error propagates out of the socket's event). */
  onFrame(handler: FrameHandler): void {
    this.handlers.push(handler);
  }

  /** The full current peer set (id → "host:port"). Links to peers not in it close and their queues are discarded; a changed address is redialed. */
  setPeers(peers: Map<string, string>): void {
    if (this.closed) throw new Error('PeerTransport: setPeers after close');
    for (const [id, address] of peers) {
      assertPeerId(id, 'setPeers');
      parsePeerAddress(address);
    }
    for (const [id, peer] of this.peers) {
      if (!peers.has(id)) this.removePeer(peer);
    }
    for (const [id, address] of peers) {
      if (id === this.id) continue;
      let peer = this.peers.get(id);
      if (peer === undefined) {
        peer = newPeer(id, address, this.maxQueueBytes);
        this.peers.set(id, peer);
        this.log.debug({ peer: id, address }, 'peer added');
      } else if (peer.address !== address) {
        this.log.debug({ peer: id, from: peer.address, to: address }, 'peer address changed');
        peer.address = address;
        if (this.isDialer(peer)) this.restartDialing(peer);
      }
      this.dialIfDue(peer);
    }
    this.refreshPeerHosts();
  }

  /**
   * Queues a frame for `to`; it leaves with the other frames sent to that peer in the
   * same event-loop turn, as one websocket message. Returns false when this frame is
   * not queued: unknown peer, frame larger than a message or than the queue, transport
   * closed. When the queue is full the oldest frames are dropped instead (counted in
   * droppedFrames) and this returns true. A frame msgpack cannot encode throws.
   */
  send(to: string, frame: unknown): boolean {
    if (this.closed) return false;
    const peer = this.peers.get(to);
    if (peer === undefined) return false;
    const encoded = encodeFrame(frame);
    if (encoded.length > this.maxFrameBytes - BATCH_HEADER_MAX_BYTES) {
      peer.counters.droppedFrames += 1;
      this.log.warn({ peer: to, frameBytes: encoded.length, maxFrameBytes: this.maxFrameBytes }, 'frame larger than a link message; dropped');
      return false;
    }
    const pushed = peer.queue.push(encoded);
    const dropped = pushed.droppedFrames + (pushed.queued ? 0 : 1);
    if (dropped > 0) {
      peer.counters.droppedFrames += dropped;
      if (!peer.dropping) this.log.debug({ peer: to, queuedBytes: peer.queue.bytes }, 'peer backlog full; dropping its oldest frames');
      peer.dropping = true;
    }
    this.scheduleFlush(peer);
    return pushed.queued;
  }

  stats(): TransportStats {
    const peers = Object.fromEntries(
      [...this.peers].map(([id, p]): [string, PeerLinkStats] => [
        id,
        {
          connected: p.link !== null && p.link.ws.readyState === WebSocket.OPEN,
          queuedBytes: p.queue.bytes,
          queuedFrames: p.queue.length,
          inflightBytes: p.link?.inflightBytes ?? 0,
          ...p.counters,
        },
      ]),
    );
    return { peers, rejectedConnections: this.rejectedConnections, pendingConnections: this.admission.counts() };
  }

  /** Closes every link and the listening server. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- listening side ----

  private async listen(): Promise<void> {
    const { host, port } = this.opts.listen;
    await new Promise<void>((resolve, reject) => {
      this.httpServer.once('error', reject);
      this.httpServer.listen(port, host, () => {
        this.httpServer.off('error', reject);
        resolve();
      });
    });
    this.httpServer.on('error', (err) => this.log.error({ err }, 'peer listener failed'));
    if (this.token === null && !this.opts.tls && !isLoopback(host)) this.log.warn({ host }, 'neither TLS nor a token configured, yet listening for peers beyond loopback');
    this.log.debug({ host, port: this.port }, 'listening for peers');
  }

  // Every connection is pending from its accept: it takes a place in the budget of its
  // source, and must complete the handshake (or, for the other uses of the port, send
  // its request) before the deadline. One refused is closed at once: it has sent nothing.
  private onTcpConnection(socket: Socket): void {
    const admission = this.closed ? null : this.admission.admit(socket.remoteAddress);
    if (admission === null || !admission.admitted) {
      this.rejectedConnections += 1;
      if (admission !== null) {
        this.warnings.warn(`busy:${admission.source}`, { remote: remoteOf(socket), reason: admission.reason, pending: this.admission.counts() }, 'too many unauthenticated connections; connection closed');
      }
      socket.destroy();
      return;
    }
    this.trackPending(socket, admission.ticket);
  }

  private trackPending(socket: Socket, ticket: AdmissionTicket): void {
    const entry: PendingConnection = {
      ticket,
      timer: setTimeout(() => entry.expire(), this.handshakeTimeoutMs),
      expire: () => {
        this.rejectedConnections += 1;
        this.warnings.warn(`idle:${socket.remoteAddress}`, { remote: remoteOf(socket) }, 'connection sent no request within the handshake timeout; closed');
        socket.destroy();
      },
      stopMetering: () => {},
      upgraded: false,
    };
    this.pending.set(socket, entry);
    socket.once('close', () => this.settlePending(socket));
  }

  /** The connection authenticated, was handed to another use of the port, or closed: it gives its place back. Idempotent. */
  private settlePending(socket: Socket): void {
    const entry = this.pending.get(socket);
    if (entry === undefined) return;
    this.pending.delete(socket);
    clearTimeout(entry.timer);
    entry.stopMetering();
    this.admission.release(entry.ticket);
  }

  private onHttpRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.settlePending(tcpOf(req.socket));
    if (this.opts.onHttpRequest !== undefined) {
      this.opts.onHttpRequest(req, res);
      return;
    }
    res.statusCode = pathOf(req) === PEER_PATH ? 426 : 404;
    res.end();
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const tcp = tcpOf(req.socket);
    if (pathOf(req) !== PEER_PATH) {
      this.settlePending(tcp);
      if (this.opts.onHttpUpgrade !== undefined) this.opts.onHttpUpgrade(req, socket, head);
      else refuseUpgrade(socket, '404 Not Found', this.log);
      return;
    }
    // A kept-alive connection that served plain requests first is pending again.
    if (!this.closed && !this.pending.has(tcp)) {
      const admission = this.admission.admit(tcp.remoteAddress);
      if (admission.admitted) this.trackPending(tcp, admission.ticket);
      else this.warnings.warn(`busy:${admission.source}`, { remote: remoteOf(tcp), reason: admission.reason, pending: this.admission.counts() }, 'too many unauthenticated connections; upgrade refused');
    }
    if (this.closed || !this.pending.has(tcp)) {
      this.rejectedConnections += 1;
      refuseUpgrade(socket, '503 Service Unavailable', this.log);
      return;
    }
    // Secure mode: no certificate of the cluster CA, no link (not even the handshake).
    const certified = this.opts.tls ? this.opts.tls.nodeOf(req.socket) : null;
    if (this.opts.tls && certified === null) {
      this.rejectedConnections += 1;
      this.warnings.warn(`nocert:${tcp.remoteAddress}`, { remote: remoteOf(tcp) }, 'peer link without a valid cluster certificate refused');
      refuseUpgrade(socket, '401 Unauthorized', this.log);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, tcp, req.socket, certified));
  }

  /** `tcp`: the accepted connection (the pending budget's key); `socket`: what carries the bytes (the TLS socket in secure mode). */
  private accept(ws: WebSocket, tcp: Socket, socket: Socket, certified: string | null): void {
    const remote = remoteOf(tcp);
    const entry = this.pending.get(tcp);
    if (this.closed || entry === undefined) {
      ws.terminate();
      return;
    }
    const serverNonce = newNonce();
    let phase: 'hello' | 'link' | 'done' = 'hello';
    let peer: Peer | null = null;
    let link: Link | null = null;
    this.sockets.add(ws);
    entry.upgraded = true;
    entry.expire = () => {
      phase = 'done';
      this.refuse(ws, CloseCode.HandshakeTimeout, 'handshake timed out', { remote });
    };
    entry.stopMetering = meterUntilAuthenticated(socket, this.maxPreAuthBytes, (receivedBytes) => {
      phase = 'done';
      this.cutOverBudget(ws, receivedBytes, { remote });
    });

    ws.on('error', (err) => this.onSocketError(err, peer?.id ?? null, remote, phase === 'link'));
    ws.on('close', (code, reason) => {
      this.sockets.delete(ws);
      this.settlePending(tcp);
      if (peer !== null) this.onSocketClosed(peer, ws, code, reason.toString());
    });
    ws.on('message', (data, isBinary) => {
      if (phase === 'link' && peer !== null && link !== null) {
        this.onLinkMessage(peer, link, data, isBinary);
        return;
      }
      if (phase !== 'hello') return; // refused and closing
      phase = 'done';
      let hello;
      try {
        hello = parseHello(asBinary(data, isBinary));
      } catch (err) {
        this.refuse(ws, CloseCode.BadHandshake, 'malformed hello', { remote, err });
        return;
      }
      const transcript: HandshakeTranscript = { clientId: hello.clientId, serverId: this.id, clientNonce: hello.clientNonce, serverNonce };
      // Our own id is no secret (the challenge carries it); the peer set is: it is checked
      // only after the proof, so a caller without the token learns nothing about it.
      if (hello.serverId !== this.id) {
        this.refuse(ws, CloseCode.WrongNode, `this is ${this.id}, not ${hello.serverId}`, { remote, peer: hello.clientId });
        return;
      }
      if (!verifyProof(this.token, 'client', transcript, hello.proof)) {
        this.refuse(ws, CloseCode.AuthFailed, 'authentication failed', { remote, peer: hello.clientId });
        return;
      }
      if (this.opts.tls && certified !== hello.clientId) {
        this.refuse(ws, CloseCode.AuthFailed, `the certificate names ${certified ?? 'no node'}, not ${hello.clientId}`, { remote, peer: hello.clientId });
        return;
      }
      const known = this.peers.get(hello.clientId);
      if (known === undefined) {
        this.refuse(ws, CloseCode.UnknownPeer, 'not in the peer set', { remote, peer: hello.clientId });
        return;
      }
      this.settlePending(tcp);
      ws.send(encodeWelcome({ proof: computeProof(this.token, 'server', transcript) }));
      peer = known;
      link = this.adopt(known, ws, hello.clientId);
      if (link !== null) phase = 'link';
    });
    ws.send(encodeChallenge({ serverId: this.id, serverNonce }));
  }

  // ---- dialing side ----

  private isDialer(peer: Peer): boolean {
    return this.id < peer.id;
  }

  private dialIfDue(peer: Peer): void {
    if (this.closed || !this.isDialer(peer) || this.peers.get(peer.id) !== peer) return;
    if (peer.link !== null || peer.dialing !== null || peer.redialTimer !== null) return;
    this.dial(peer);
  }

  private scheduleRedial(peer: Peer): void {
    if (this.closed || !this.isDialer(peer) || this.peers.get(peer.id) !== peer) return;
    if (peer.link !== null || peer.dialing !== null || peer.redialTimer !== null) return;
    const delayMs = backoffDelayMs(peer.failedDials, this.random, this.backoff);
    peer.failedDials += 1;
    peer.redialTimer = setTimeout(() => {
      peer.redialTimer = null;
      this.dialIfDue(peer);
    }, delayMs);
  }

  private restartDialing(peer: Peer): void {
    if (peer.redialTimer !== null) clearTimeout(peer.redialTimer);
    peer.redialTimer = null;
    peer.failedDials = 0;
    this.dropSockets(peer, CloseCode.PeerRemoved, 'peer address changed');
  }

  private dial(peer: Peer): void {
    const url = peerUrl(peer.address, this.opts.tls !== undefined);
    const ws = new WebSocket(url, {
      maxPayload: this.maxFrameBytes,
      perMessageDeflate: false,
      handshakeTimeout: this.handshakeTimeoutMs,
      ...this.dialSourceFor(peer.address),
      ...(this.opts.tls ? this.opts.tls.client(peer.id) : {}),
    });
    const clientNonce = newNonce();
    let phase: 'challenge' | 'welcome' | 'link' | 'done' = 'challenge';
    let transcript: HandshakeTranscript | null = null;
    let link: Link | null = null;
    // Whoever answers at a peer's address has proved nothing yet either: the same byte
    // budget holds until its welcome verifies.
    let stopMetering = (): void => {};
    let upgradedSocket: Socket | null = null;
    ws.once('upgrade', (res) => (upgradedSocket = res.socket));
    ws.once('open', () => {
      if (upgradedSocket === null || phase === 'done') return;
      stopMetering = meterUntilAuthenticated(upgradedSocket, this.maxPreAuthBytes, (receivedBytes) => {
        phase = 'done';
        this.cutOverBudget(ws, receivedBytes, { peer: peer.id, url });
      });
    });
    peer.dialing = ws;
    this.sockets.add(ws);
    this.log.debug({ peer: peer.id, url, attempt: peer.failedDials }, 'dialing peer');
    // Not a refusal: an unreachable or hung peer is routine, the backoff handles it.
    const timer = setTimeout(() => {
      phase = 'done';
      this.log.debug({ peer: peer.id, url }, 'dial did not finish the handshake in time; closing it');
      this.closeSocket(ws, CloseCode.HandshakeTimeout, 'handshake timed out');
    }, this.handshakeTimeoutMs);

    ws.on('error', (err) => this.onSocketError(err, peer.id, url, phase === 'link'));
    ws.on('close', (code, reasonBuffer) => {
      clearTimeout(timer);
      stopMetering();
      this.sockets.delete(ws);
      const reason = reasonBuffer.toString();
      if (phase !== 'link' && code >= 4000 && code < 5000) {
        this.warnings.warn(`refused-by:${peer.id}:${code}`, { peer: peer.id, url, code, reason }, 'peer refused our handshake');
      }
      this.onSocketClosed(peer, ws, code, reason);
    });
    ws.on('message', (data, isBinary) => {
      switch (phase) {
        case 'link':
          if (link !== null) this.onLinkMessage(peer, link, data, isBinary);
          return;
        case 'done':
          return;
        case 'challenge': {
          phase = 'done';
          let challenge;
          try {
            challenge = parseChallenge(asBinary(data, isBinary));
          } catch (err) {
            this.refuse(ws, CloseCode.BadHandshake, 'malformed challenge', { peer: peer.id, url, err });
            return;
          }
          if (challenge.serverId !== peer.id) {
            this.refuse(ws, CloseCode.WrongNode, `dialed ${peer.id}, reached ${challenge.serverId}`, { peer: peer.id, url });
            return;
          }
          transcript = { clientId: this.id, serverId: peer.id, clientNonce, serverNonce: challenge.serverNonce };
          ws.send(encodeHello({ clientId: this.id, serverId: peer.id, clientNonce, proof: computeProof(this.token, 'client', transcript) }));
          phase = 'welcome';
          return;
        }
        case 'welcome': {
          phase = 'done';
          let welcome;
          try {
            welcome = parseWelcome(asBinary(data, isBinary));
          } catch (err) {
            this.refuse(ws, CloseCode.BadHandshake, 'malformed welcome', { peer: peer.id, url, err });
            return;
          }
          if (transcript === null || !verifyProof(this.token, 'server', transcript, welcome.proof)) {
            this.refuse(ws, CloseCode.AuthFailed, 'peer failed to prove the token', { peer: peer.id, url });
            return;
          }
          clearTimeout(timer);
          stopMetering();
          link = this.adopt(peer, ws, this.id);
          if (link !== null) phase = 'link';
          return;
        }
      }
    });
  }

  /** Dials leave from the listening IP when it can reach the peer's address (same family, loopback only to loopback). */
  private dialSourceFor(address: string): { localAddress?: string; family?: 4 | 6 } {
    const source = this.dialSource;
    if (source === undefined) return {};
    const { host } = parsePeerAddress(address);
    const target = canonicalIp(host);
    if (target === null) return source; // a name: resolved within the source's family
    if (isIP(host) !== source.family || isLoopbackIp(target) !== isLoopbackIp(canonicalIp(source.localAddress) ?? '')) return {};
    return source;
  }

  // ---- peer hosts ----

  /** Tells the admission which addresses peers advertise; host names are looked up (again after PEER_HOST_REFRESH_MS). */
  private refreshPeerHosts(): void {
    const addresses: string[] = [];
    const names = new Set<string>();
    const nowMs = Date.now();
    for (const peer of this.peers.values()) {
      const { host } = parsePeerAddress(peer.address);
      const ip = canonicalIp(host);
      if (ip !== null) {
        addresses.push(ip);
        continue;
      }
      names.add(host);
      const resolved = this.resolvedHosts.get(host);
      if (resolved !== undefined) addresses.push(...resolved.addresses);
      if (resolved === undefined || (!resolved.inFlight && nowMs - resolved.resolvedAtMs >= PEER_HOST_REFRESH_MS)) this.resolvePeerHost(host);
    }
    for (const name of this.resolvedHosts.keys()) if (!names.has(name)) this.resolvedHosts.delete(name);
    this.admission.setPeerHosts(addresses);
  }

  private resolvePeerHost(host: string): void {
    const entry: ResolvedHost = this.resolvedHosts.get(host) ?? { addresses: [], resolvedAtMs: 0, inFlight: false };
    entry.inFlight = true;
    this.resolvedHosts.set(host, entry);
    lookup(host, { all: true })
      .then(
        (found) => {
          entry.addresses = [...new Set(found.map((a) => canonicalIp(a.address)).filter((ip): ip is string => ip !== null))];
        },
        (err: unknown) => {
          this.warnings.warn(`lookup:${host}`, { err, host }, 'peer host name did not resolve; connections from it count as strangers until it does');
        },
      )
      .then(() => {
        entry.inFlight = false;
        entry.resolvedAtMs = Date.now();
        if (!this.closed && this.resolvedHosts.get(host) === entry) this.refreshPeerHosts();
      })
      .catch((err: unknown) => this.log.error({ err, host }, 'updating the peer hosts failed'));
  }

  // ---- links ----

  /** Makes an authenticated socket the peer's link, or closes it when the current link is the one to keep. */
  private adopt(peer: Peer, ws: WebSocket, dialedBy: string): Link | null {
    if (peer.dialing === ws) peer.dialing = null;
    if (this.closed || this.peers.get(peer.id) !== peer) {
      this.closeSocket(ws, CloseCode.PeerRemoved, 'not in the peer set');
      return null;
    }
    const existing = peer.link;
    if (existing !== null) {
      const preferredDialer = this.id < peer.id ? this.id : peer.id;
      if (existing.dialedBy === preferredDialer && dialedBy !== preferredDialer) {
        this.log.debug({ peer: peer.id, dialedBy }, 'second link to a peer; keeping the existing one');
        this.closeSocket(ws, CloseCode.Duplicate, 'a link to this peer exists');
        return null;
      }
      this.log.debug({ peer: peer.id, dialedBy, replacedDialedBy: existing.dialedBy }, 'second link to a peer; replacing the existing one');
      peer.link = null;
      this.closeSocket(existing.ws, CloseCode.Duplicate, 'replaced by a newer link');
    }
    const nowMs = Date.now();
    const link: Link = { ws, dialedBy, upSinceMs: nowMs, heardSincePing: true, missedPings: 0, inflightBytes: 0 };
    peer.link = link;
    this.keepAlive(peer, link);
    if (peer.everConnected) peer.counters.reconnects += 1;
    peer.everConnected = true;
    this.log.debug({ peer: peer.id, dialedBy, reconnects: peer.counters.reconnects }, 'link up');
    this.scheduleFlush(peer);
    return link;
  }

  // TCP alone notices a peer whose box vanished only when a write times out (minutes);
  // pings bound that to about three intervals. Missed pings are counted, not silence
  // measured on the clock: a stall of this process (GC, load) delays the timer and the
  // pong alike, and must not cut a healthy link. A reader too slow to answer is cut too.
  private keepAlive(peer: Peer, link: Link): void {
    const timer = setInterval(() => {
      link.missedPings = link.heardSincePing ? 0 : link.missedPings + 1;
      if (link.missedPings >= KEEPALIVE_MISSED_PINGS) {
        this.log.debug({ peer: peer.id, missedPings: link.missedPings }, 'peer link answers no pings; cutting it');
        link.ws.terminate();
        return;
      }
      link.heardSincePing = false;
      if (link.ws.readyState === WebSocket.OPEN) link.ws.ping();
    }, this.keepaliveIntervalMs);
    link.ws.on('pong', () => (link.heardSincePing = true));
    link.ws.once('close', () => clearInterval(timer));
  }

  private onSocketClosed(peer: Peer, ws: WebSocket, code: number, reason: string): void {
    if (peer.dialing === ws) peer.dialing = null;
    const link = peer.link;
    if (link !== null && link.ws === ws) {
      peer.link = null;
      // A link that stayed up a while was healthy: retry at once. One that broke quickly
      // (a peer rejecting our frames, a flapping network) keeps backing off.
      if (Date.now() - link.upSinceMs >= this.backoff.maxMs) peer.failedDials = 0;
      this.log.debug({ peer: peer.id, code, reason, queuedFrames: peer.queue.length }, 'link down');
    }
    this.scheduleRedial(peer);
  }

  private onLinkMessage(peer: Peer, link: Link, data: RawData, isBinary: boolean): void {
    if (peer.link !== link) return;
    link.heardSincePing = true;
    let frames: unknown[];
    try {
      if (!isBinary) throw new Error('text message on a peer link');
      frames = decodeBatch(asBinary(data, isBinary));
    } catch (err) {
      this.log.warn({ err, peer: peer.id }, 'malformed message on a peer link; closing the link');
      peer.link = null;
      this.closeSocket(link.ws, CloseCode.BadFrame, 'malformed message');
      return;
    }
    peer.counters.receivedMessages += 1;
    for (const frame of frames) {
      if (peer.link !== link || this.closed) return; // a handler closed the link or the transport
      peer.counters.receivedFrames += 1;
      for (const handler of this.handlers) handler(peer.id, frame);
    }
  }

  private scheduleFlush(peer: Peer): void {
    if (peer.flushScheduled || peer.link === null || peer.queue.length === 0) return;
    peer.flushScheduled = true;
    // setImmediate, not a microtask: everything sent in this turn, including from other
    // I/O callbacks of the same poll phase, joins the batch.
    setImmediate(() => {
      peer.flushScheduled = false;
      this.flush(peer);
    });
  }

  private flush(peer: Peer): void {
    const link = peer.link;
    if (this.closed || link === null || link.ws.readyState !== WebSocket.OPEN || this.peers.get(peer.id) !== peer) return;
    // Stop while the socket holds a full buffer (a slow reader): frames then wait in the
    // bounded queue, and the write callbacks resume the flush as the socket drains.
    while (peer.queue.length > 0 && link.inflightBytes < this.maxSocketBufferBytes && link.ws.bufferedAmount < this.maxSocketBufferBytes) {
      const frames = peer.queue.take(this.maxFrameBytes - BATCH_HEADER_MAX_BYTES);
      const batch = encodeBatch(frames);
      link.inflightBytes += batch.length;
      link.ws.send(batch, { binary: true }, (err) => {
        link.inflightBytes -= batch.length;
        // An error means the socket is closing; its close event handles the link.
        if (err === undefined || err === null) this.scheduleFlush(peer);
      });
      peer.counters.sentFrames += frames.length;
      peer.counters.sentMessages += 1;
    }
    if (peer.queue.length === 0) peer.dropping = false;
  }

  // ---- closing ----

  private removePeer(peer: Peer): void {
    this.peers.delete(peer.id);
    if (peer.redialTimer !== null) clearTimeout(peer.redialTimer);
    peer.redialTimer = null;
    const discarded = peer.queue.clear();
    this.dropSockets(peer, CloseCode.PeerRemoved, 'removed from the peer set');
    this.log.debug({ peer: peer.id, discardedFrames: discarded }, 'peer removed');
  }

  private dropSockets(peer: Peer, code: number, reason: string): void {
    const { link, dialing } = peer;
    peer.link = null;
    peer.dialing = null;
    if (link !== null) this.closeSocket(link.ws, code, reason);
    if (dialing !== null) this.closeSocket(dialing, code, reason);
  }

  /** Refuses a connection during the handshake: counted, logged (warn, rate-limited), closed. */
  private refuse(ws: WebSocket, code: number, reason: string, context: { remote?: string; url?: string; peer?: string; err?: unknown }): void {
    this.rejectedConnections += 1;
    // Rate-limited per cause and claimed id, else per remote host (its port changes on every attempt).
    const who = context.peer ?? (context.remote ?? context.url ?? '').replace(/:[^:]*$/, '');
    this.warnings.warn(`refused:${code}:${who}`, { ...context, code, reason }, 'peer connection refused');
    this.closeSocket(ws, code, reason);
  }

  /**
   * Cuts a connection that delivered more than the pre-authentication budget. No close
   * frame and no grace period: while the socket stays open its reader keeps buffering
   * the oversized message, which is what the budget is there to prevent.
   */
  private cutOverBudget(ws: WebSocket, receivedBytes: number, context: { remote?: string; url?: string; peer?: string }): void {
    this.rejectedConnections += 1;
    const who = context.peer ?? (context.remote ?? context.url ?? '').replace(/:[^:]*$/, '');
    this.warnings.warn(`preauth-bytes:${who}`, { ...context, receivedBytes, maxPreAuthBytes: this.maxPreAuthBytes }, 'connection sent more than a handshake before authenticating; cut');
    ws.terminate();
  }

  private closeSocket(ws: WebSocket, code: number, reason: string): void {
    if (ws.readyState === WebSocket.CLOSED) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    if (ws.readyState === WebSocket.OPEN) ws.close(code, truncateUtf8(reason, REASON_MAX_BYTES));
    // A peer that does not answer the close frame is cut off.
    const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    timer.unref();
    ws.once('close', () => clearTimeout(timer));
  }

  private onSocketError(err: Error, peer: string | null, where: string, isLink: boolean): void {
    // ws reports protocol violations (oversized message, bad framing) as errors and closes
    // with 1009/1002: abnormal on an authenticated link. Refused dials are routine.
    const code = (err as NodeJS.ErrnoException).code;
    const protocolError = typeof code === 'string' && code.startsWith('WS_ERR_');
    if (isLink && protocolError) this.log.warn({ err, peer, where }, 'peer link protocol error; link closed');
    else this.log.debug({ err, peer, where }, 'peer socket error');
  }


  private async shutdown(): Promise<void> {
    this.closed = true;
    const serverClosed = new Promise<void>((resolve) => this.httpServer.close(() => resolve()));
    for (const peer of this.peers.values()) {
      if (peer.redialTimer !== null) clearTimeout(peer.redialTimer);
      peer.redialTimer = null;
    }
    for (const [socket, entry] of [...this.pending]) {
      if (entry.upgraded) continue; // its websocket is closed below
      this.settlePending(socket);
      socket.destroy();
    }
    const socketsClosed = [...this.sockets].map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) resolve();
          else ws.once('close', () => resolve());
          this.closeSocket(ws, CloseCode.GoingAway, 'node shutting down');
        }),
    );
    this.httpServer.closeAllConnections();
    await Promise.all(socketsClosed);
    this.wss.close();
    await serverClosed;
    this.log.debug('transport closed');
  }
}

function newPeer(id: string, address: string, maxQueueBytes: number): Peer {
  return {
    id,
    address,
    queue: new FrameQueue(maxQueueBytes),
    link: null,
    dialing: null,
    redialTimer: null,
    failedDials: 0,
    flushScheduled: false,
    dropping: false,
    everConnected: false,
    counters: { sentFrames: 0, sentMessages: 0, droppedFrames: 0, receivedFrames: 0, receivedMessages: 0, reconnects: 0 },
  };
}

function positive(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`PeerTransport: ${name} must be a number ≥ ${min}, got ${value}`);
  return value;
}

function asBinary(data: RawData, isBinary: boolean): Buffer {
  if (!isBinary) throw new Error('text message where binary was expected');
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** For a canonical IP (see canonicalIp). */
function isLoopbackIp(canonical: string): boolean {
  return canonical.startsWith('127.') || canonical === '0000:0000:0000:0000:0000:0000:0000:0001';
}

function pathOf(req: http.IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function remoteOf(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

function refuseUpgrade(socket: Duplex, status: string, log: Logger): void {
  socket.on('error', (err) => log.debug({ err }, 'error on a refused upgrade'));
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function truncateUtf8(s: string, maxBytes: number): string {
  const b = Buffer.from(s, 'utf8');
  return b.length <= maxBytes ? s : b.subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '');
}
