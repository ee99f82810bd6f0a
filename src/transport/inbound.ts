// The accepting side of the peer port. Every connection is pending from its TCP accept
// until it proves the token (see preauth.ts): it takes a place in the budget of its
// source, and must complete the handshake (or, for the other uses of the port, send
// its request) before the deadline. Then the server half of the handshake runs, and
// the authenticated socket is handed to the transport as the peer's link.
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Timer } from '../util/clock.js';
import { PEER_PATH } from './address.js';
import { computeProof, encodeChallenge, encodeWelcome, newNonce, parseHello, verifyProof, type HandshakeTranscript } from './handshake.js';
import type { Link, LinkHost, Peer } from './links.js';
import { CloseCode, type PeerTransportOptions } from './options.js';
import { meterUntilAuthenticated, PendingConnections, type AdmissionTicket } from './preauth.js';
import { pathOf, refuseUpgrade, remoteOf, tcpOf } from './sockets.js';

/** An inbound connection from its TCP accept until it authenticates, is handed to another use of the port, or closes. */
interface PendingConnection {
  readonly ticket: AdmissionTicket;
  readonly timer: Timer; // the handshake deadline, from the accept
  expire: () => void; // what the deadline does: destroy the socket, or refuse the websocket once upgraded
  stopMetering: () => void; // ends the byte budget of an upgraded connection
  upgraded: boolean;
}

export class Acceptor {
  readonly admission: PendingConnections;
  private readonly wss: WebSocketServer;
  private readonly pending = new Map<Socket, PendingConnection>(); // inbound, not yet authenticated

  constructor(
    private readonly host: LinkHost,
    private readonly opts: Pick<PeerTransportOptions, 'onHttpRequest' | 'onHttpUpgrade'>,
    server: http.Server,
  ) {
    const { settings } = host;
    this.admission = new PendingConnections({ maxPendingStrangers: settings.maxPendingStrangers, maxPendingPerSource: settings.maxPendingPerSource });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: settings.maxFrameBytes, perMessageDeflate: false, clientTracking: false });
    server.on('connection', (socket: Socket) => this.onTcpConnection(socket));
    server.on('request', (req, res) => this.onHttpRequest(req, res));
    server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  /** Drops the connections still pending before their upgrade (the upgraded ones are websockets, closed with the others). */
  dropPending(): void {
    for (const [socket, entry] of [...this.pending]) {
      if (entry.upgraded) continue;
      this.settlePending(socket);
      socket.destroy();
    }
  }

  close(): void {
    this.wss.close();
  }

  private onTcpConnection(socket: Socket): void {
    const admission = this.host.isClosed() ? null : this.admission.admit(socket.remoteAddress);
    if (admission === null || !admission.admitted) {
      this.host.sockets.rejected += 1;
      if (admission !== null) {
        this.host.sockets.warnings.warn(`busy:${admission.source}`, { remote: remoteOf(socket), reason: admission.reason, pending: this.admission.counts() }, 'too many unauthenticated connections; connection closed');
      }
      socket.destroy();
      return;
    }
    this.trackPending(socket, admission.ticket);
  }

  private trackPending(socket: Socket, ticket: AdmissionTicket): void {
    const entry: PendingConnection = {
      ticket,
      timer: this.host.clock.after(this.host.settings.handshakeTimeoutMs, () => entry.expire()),
      expire: () => {
        this.host.sockets.rejected += 1;
        this.host.sockets.warnings.warn(`idle:${socket.remoteAddress}`, { remote: remoteOf(socket) }, 'connection sent no request within the handshake timeout; closed');
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
    entry.timer.cancel();
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
    const { host } = this;
    const tcp = tcpOf(req.socket);
    if (pathOf(req) !== PEER_PATH) {
      this.settlePending(tcp);
      if (this.opts.onHttpUpgrade !== undefined) this.opts.onHttpUpgrade(req, socket, head);
      else refuseUpgrade(socket, '404 Not Found', host.log);
      return;
    }
    // A kept-alive connection that served plain requests first is pending again.
    if (!host.isClosed() && !this.pending.has(tcp)) {
      const admission = this.admission.admit(tcp.remoteAddress);
      if (admission.admitted) this.trackPending(tcp, admission.ticket);
      else host.sockets.warnings.warn(`busy:${admission.source}`, { remote: remoteOf(tcp), reason: admission.reason, pending: this.admission.counts() }, 'too many unauthenticated connections; upgrade refused');
    }
    if (host.isClosed() || !this.pending.has(tcp)) {
      host.sockets.rejected += 1;
      refuseUpgrade(socket, '503 Service Unavailable', host.log);
      return;
    }
    // Secure mode: no certificate of the cluster CA, no link (not even the handshake).
    const certified = host.tls ? host.tls.nodeOf(req.socket) : null;
    if (host.tls && certified === null) {
      host.sockets.rejected += 1;
      host.sockets.warnings.warn(`nocert:${tcp.remoteAddress}`, { remote: remoteOf(tcp) }, 'peer link without a valid cluster certificate refused');
      refuseUpgrade(socket, '401 Unauthorized', host.log);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, tcp, req.socket, certified));
  }

  /** `tcp`: the accepted connection (the pending budget's key); `socket`: what carries the bytes (the TLS socket in secure mode). */
  private accept(ws: WebSocket, tcp: Socket, socket: Socket, certified: string | null): void {
    const { host } = this;
    const { sockets } = host;
    const remote = remoteOf(tcp);
    const entry = this.pending.get(tcp);
    if (host.isClosed() || entry === undefined) {
      ws.terminate();
      return;
    }
    const serverNonce = newNonce();
    let phase: 'hello' | 'link' | 'done' = 'hello';
    let peer: Peer | null = null;
    let link: Link | null = null;
    sockets.all.add(ws);
    entry.upgraded = true;
    entry.expire = () => {
      phase = 'done';
      sockets.refuse(ws, CloseCode.HandshakeTimeout, 'handshake timed out', { remote });
    };
    entry.stopMetering = meterUntilAuthenticated(socket, host.settings.maxPreAuthBytes, (receivedBytes) => {
      phase = 'done';
      sockets.cutOverBudget(ws, receivedBytes, { remote });
    });

    ws.on('error', (err) => sockets.onError(err, peer?.id ?? null, remote, phase === 'link'));
    ws.on('close', (code, reason) => {
      sockets.all.delete(ws);
      this.settlePending(tcp);
      if (peer !== null) host.onSocketClosed(peer, ws, code, reason.toString());
    });
    ws.on('message', (data, isBinary) => {
      if (phase === 'link' && peer !== null && link !== null) {
        host.onLinkMessage(peer, link, data, isBinary);
        return;
      }
      if (phase !== 'hello') return; // refused and closing
      phase = 'done';
      const hello = sockets.parseOrRefuse(ws, parseHello, data, isBinary, 'malformed hello', { remote });
      if (hello === null) return;
      const transcript: HandshakeTranscript = { clientId: hello.clientId, serverId: host.id, clientNonce: hello.clientNonce, serverNonce };
      // Our own id is no secret (the challenge carries it); the peer set is: it is checked
      // only after the proof, so a caller without the token learns nothing about it.
      if (hello.serverId !== host.id) {
        sockets.refuse(ws, CloseCode.WrongNode, `this is ${host.id}, not ${hello.serverId}`, { remote, peer: hello.clientId });
        return;
      }
      if (!verifyProof(host.token, 'client', transcript, hello.proof)) {
        sockets.refuse(ws, CloseCode.AuthFailed, 'authentication failed', { remote, peer: hello.clientId });
        return;
      }
      if (host.tls && certified !== hello.clientId) {
        sockets.refuse(ws, CloseCode.AuthFailed, `the certificate names ${certified ?? 'no node'}, not ${hello.clientId}`, { remote, peer: hello.clientId });
        return;
      }
      const known = host.peer(hello.clientId);
      if (known === undefined) {
        sockets.refuse(ws, CloseCode.UnknownPeer, 'not in the peer set', { remote, peer: hello.clientId });
        return;
      }
      this.settlePending(tcp);
      ws.send(encodeWelcome({ proof: computeProof(host.token, 'server', transcript) }));
      peer = known;
      link = host.adopt(known, ws, hello.clientId);
      if (link !== null) phase = 'link';
    });
    ws.send(encodeChallenge({ serverId: host.id, serverNonce }));
  }
}
