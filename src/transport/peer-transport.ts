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
// with a share for peer hosts that strangers cannot take. The accepting side is in
// inbound.ts, the dialing side in dialer.ts; this file keeps the peers and their links.
import http from 'node:http';
import https from 'node:https';
import { pino, type Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import { assertPeerId, parsePeerAddress } from '../util/peer-address.js';
import type { Timer } from '../util/clock.js';
import { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { BATCH_HEADER_MAX_BYTES, decodeBatch, encodeBatch, encodeFrame } from './codec.js';
import { Dialer } from './dialer.js';
import { Acceptor } from './inbound.js';
import { newPeer, type Link, type LinkHost, type Peer } from './links.js';
import { CloseCode, transportSettings, type FrameHandler, type PeerLinkStats, type PeerTransportOptions, type TransportSettings, type TransportStats } from './options.js';
import { PeerHosts } from './peer-hosts.js';
import { asBinary, isLoopback, Sockets } from './sockets.js';

export { CloseCode, type FrameHandler, type PeerLinkStats, type PeerTls, type PeerTransportOptions, type TransportStats } from './options.js';

const WARN_INTERVAL_MS = 30_000;
const KEEPALIVE_MISSED_PINGS = 2; // consecutive unanswered pings that cut a link
/**
 * A link that carried no message for this many keepalive checks is checked only every
 * this many: nobody waits on it, and its next message brings back the check every
 * interval, which proves it within two intervals of its first use. A 20-node cluster's
 * links between followers carry nothing, and their pings were most of an idle node's
 * socket writes.
 */
const QUIET_LINK_CHECK_EVERY = 10;

export class PeerTransport {
  readonly id: string;
  /** The listening server; /peer is taken, other paths go to onHttpRequest / onHttpUpgrade. */
  readonly httpServer: http.Server | https.Server;

  private readonly token: Buffer | null;
  private readonly settings: TransportSettings;
  private readonly log: Logger;
  private readonly opts: PeerTransportOptions;
  private readonly sockets: Sockets;
  private readonly acceptor: Acceptor;
  private readonly dialer: Dialer;
  private readonly peerHosts: PeerHosts;

  private readonly peers = new Map<string, Peer>();
  private readonly handlers: FrameHandler[] = [];
  private readonly linkDownHandlers: Array<(peer: string) => void> = [];
  private closed = false;
  private closing: Promise<void> | null = null;
  /** One keepalive timer for all links (checkLinks), made with the first link. */
  private keepaliveTimer: Timer | null = null;

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
    this.settings = transportSettings(opts);
    const { clock } = this.settings;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'transport', node: opts.id });
    const warnings = new RateLimitedWarn(this.log, WARN_INTERVAL_MS, undefined, () => clock.now());
    this.sockets = new Sockets(this.log, warnings, clock, this.settings.maxPreAuthBytes);
    const host: LinkHost = {
      id: this.id,
      token: this.token,
      tls: opts.tls,
      settings: this.settings,
      clock,
      log: this.log,
      sockets: this.sockets,
      isClosed: () => this.closed,
      peer: (id) => this.peers.get(id),
      adopt: (peer, ws, dialedBy) => this.adopt(peer, ws, dialedBy),
      onLinkMessage: (peer, link, data, isBinary) => this.onLinkMessage(peer, link, data, isBinary),
      onSocketClosed: (peer, ws, code, reason) => this.onSocketClosed(peer, ws, code, reason),
    };
    this.httpServer = opts.tls ? https.createServer({ ...opts.tls.server, handshakeTimeout: this.settings.handshakeTimeoutMs }) : http.createServer();
    this.acceptor = new Acceptor(host, opts, this.httpServer);
    this.dialer = new Dialer(host, opts.listen.host, (peer, code, reason) => this.dropSockets(peer, code, reason));
    this.peerHosts = new PeerHosts(
      () => [...this.peers.values()].map((p) => p.address),
      (ips) => this.acceptor.admission.setPeerHosts(ips),
      () => this.closed,
      clock,
      this.log,
      warnings,
    );
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

  /**
   * Called when an established link to a peer closes (its process died, the network
   * broke, the peer restarted), not for a link replaced by a newer one: a hint that
   * the peer may be gone, which Raft uses to start an election early.
   */
  onLinkDown(handler: (peer: string) => void): void {
    this.linkDownHandlers.push(handler);
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
        peer = newPeer(id, address, this.settings.maxQueueBytes);
        this.peers.set(id, peer);
        this.log.debug({ peer: id, address }, 'peer added');
      } else if (peer.address !== address) {
        this.log.debug({ peer: id, from: peer.address, to: address }, 'peer address changed');
        peer.address = address;
        if (this.dialer.isDialer(peer)) this.dialer.restartDialing(peer);
      }
      this.dialer.dialIfDue(peer);
    }
    this.peerHosts.refresh();
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
    const { maxFrameBytes } = this.settings;
    if (encoded.length > maxFrameBytes - BATCH_HEADER_MAX_BYTES) {
      peer.counters.droppedFrames += 1;
      this.log.warn({ peer: to, frameBytes: encoded.length, maxFrameBytes }, 'frame larger than a link message; dropped');
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
    return { peers, rejectedConnections: this.sockets.rejected, pendingConnections: this.acceptor.admission.counts() };
  }

  /** Closes every link and the listening server. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

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

  // ---- links ----

  /** Makes an authenticated socket the peer's link, or closes it when the current link is the one to keep. */
  private adopt(peer: Peer, ws: WebSocket, dialedBy: string): Link | null {
    if (peer.dialing === ws) peer.dialing = null;
    if (this.closed || this.peers.get(peer.id) !== peer) {
      this.sockets.close(ws, CloseCode.PeerRemoved, 'not in the peer set');
      return null;
    }
    const existing = peer.link;
    if (existing !== null) {
      const preferredDialer = this.id < peer.id ? this.id : peer.id;
      if (existing.dialedBy === preferredDialer && dialedBy !== preferredDialer) {
        this.log.debug({ peer: peer.id, dialedBy }, 'second link to a peer; keeping the existing one');
        this.sockets.close(ws, CloseCode.Duplicate, 'a link to this peer exists');
        return null;
      }
      this.log.debug({ peer: peer.id, dialedBy, replacedDialedBy: existing.dialedBy }, 'second link to a peer; replacing the existing one');
      peer.link = null;
      this.sockets.close(existing.ws, CloseCode.Duplicate, 'replaced by a newer link');
    }
    const link: Link = { ws, dialedBy, upSinceMs: this.settings.clock.monotonic(), heardSincePing: true, missedPings: 0, inflightBytes: 0, carried: true, quietChecks: 0 };
    peer.link = link;
    this.keepAlive(link);
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
  // Anything heard from the peer (a message, a ping, a pong) proves the link as well as
  // a pong would: a link is pinged only after an interval with nothing from it, so a
  // busy link is never pinged and an idle one sees one ping and its pong per interval,
  // whichever end's check comes first. A link that carries no messages at all is
  // checked only every QUIET_LINK_CHECK_EVERY intervals. One timer checks every link:
  // an idle node wakes once an interval, not once per link.
  private keepAlive(link: Link): void {
    const heard = (): void => {
      link.heardSincePing = true;
    };
    link.ws.on('pong', heard);
    link.ws.on('ping', heard);
    this.keepaliveTimer ??= this.settings.clock.every(this.settings.keepaliveIntervalMs, () => this.checkLinks());
  }

  private checkLinks(): void {
    for (const peer of this.peers.values()) {
      const link = peer.link;
      if (link === null) continue;
      link.quietChecks = link.carried ? 0 : link.quietChecks + 1;
      link.carried = false;
      if (link.quietChecks >= QUIET_LINK_CHECK_EVERY && link.quietChecks % QUIET_LINK_CHECK_EVERY !== 0) continue;
      const heard = link.heardSincePing;
      link.missedPings = heard ? 0 : link.missedPings + 1;
      if (link.missedPings >= KEEPALIVE_MISSED_PINGS) {
        this.log.debug({ peer: peer.id, missedPings: link.missedPings }, 'peer link answers no pings; cutting it');
        link.ws.terminate();
        continue;
      }
      link.heardSincePing = false;
      if (!heard && link.ws.readyState === WebSocket.OPEN) link.ws.ping();
    }
  }

  private onSocketClosed(peer: Peer, ws: WebSocket, code: number, reason: string): void {
    if (peer.dialing === ws) peer.dialing = null;
    const link = peer.link;
    if (link !== null && link.ws === ws) {
      peer.link = null;
      // A link that stayed up a while was healthy: retry at once. One that broke quickly
      // (a peer rejecting our frames, a flapping network) keeps backing off.
      if (this.settings.clock.monotonic() - link.upSinceMs >= this.settings.backoff.maxMs) peer.failedDials = 0;
      this.log.debug({ peer: peer.id, code, reason, queuedFrames: peer.queue.length }, 'link down');
      if (!this.closed) for (const handler of this.linkDownHandlers) handler(peer.id);
    }
    this.dialer.scheduleRedial(peer);
  }

  private onLinkMessage(peer: Peer, link: Link, data: RawData, isBinary: boolean): void {
    if (peer.link !== link) return;
    link.heardSincePing = true;
    link.carried = true;
    let frames: unknown[];
    try {
      if (!isBinary) throw new Error('text message on a peer link');
      frames = decodeBatch(asBinary(data, isBinary));
    } catch (err) {
      this.log.warn({ err, peer: peer.id }, 'malformed message on a peer link; closing the link');
      peer.link = null;
      this.sockets.close(link.ws, CloseCode.BadFrame, 'malformed message');
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
    const { maxSocketBufferBytes, maxFrameBytes } = this.settings;
    if (this.closed || link === null || link.ws.readyState !== WebSocket.OPEN || this.peers.get(peer.id) !== peer) return;
    // Stop while the socket holds a full buffer (a slow reader): frames then wait in the
    // bounded queue, and the write callbacks resume the flush as the socket drains.
    while (peer.queue.length > 0 && link.inflightBytes < maxSocketBufferBytes && link.ws.bufferedAmount < maxSocketBufferBytes) {
      const frames = peer.queue.take(maxFrameBytes - BATCH_HEADER_MAX_BYTES);
      const batch = encodeBatch(frames);
      link.inflightBytes += batch.length;
      link.carried = true;
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
    this.dialer.cancelRedial(peer);
    const discarded = peer.queue.clear();
    this.dropSockets(peer, CloseCode.PeerRemoved, 'removed from the peer set');
    this.log.debug({ peer: peer.id, discardedFrames: discarded }, 'peer removed');
  }

  private dropSockets(peer: Peer, code: number, reason: string): void {
    const { link, dialing } = peer;
    peer.link = null;
    peer.dialing = null;
    if (link !== null) this.sockets.close(link.ws, code, reason);
    if (dialing !== null) this.sockets.close(dialing, code, reason);
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.keepaliveTimer?.cancel();
    const serverClosed = new Promise<void>((resolve) => this.httpServer.close(() => resolve()));
    for (const peer of this.peers.values()) this.dialer.cancelRedial(peer);
    this.acceptor.dropPending();
    const socketsClosed = [...this.sockets.all].map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) resolve();
          else ws.once('close', () => resolve());
          this.sockets.close(ws, CloseCode.GoingAway, 'node shutting down');
        }),
    );
    this.httpServer.closeAllConnections();
    await Promise.all(socketsClosed);
    this.acceptor.close();
    await serverClosed;
    this.log.debug('transport closed');
  }
}
