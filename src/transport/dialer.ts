// The dialing side of the links. The node whose id is smaller dials (see
// peer-transport.ts); it runs the client half of the handshake and hands the socket to
// the transport once the far end has proved the token, and redials a broken or failed
// link after a backoff delay.
import { isIP, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { backoffDelayMs } from '../util/backoff.js';
import { parsePeerAddress } from '../util/peer-address.js';
import { peerUrl } from './address.js';
import { computeProof, encodeHello, newNonce, parseChallenge, parseWelcome, verifyProof, type HandshakeTranscript } from './handshake.js';
import type { Link, LinkHost, Peer } from './links.js';
import { CloseCode } from './options.js';
import { canonicalIp, dialSourceAddress, meterUntilAuthenticated } from './preauth.js';
import { isLoopbackIp } from './sockets.js';

export class Dialer {
  /** Where dials leave from (the listening IP), so peers count this node as a peer host; undefined: the system chooses. */
  private readonly dialSource: { localAddress: string; family: 4 | 6 } | undefined;

  constructor(
    private readonly host: LinkHost,
    listenHost: string,
    /** Drops the peer's link and dial in progress (its address changed). */
    private readonly dropSockets: (peer: Peer, code: number, reason: string) => void,
  ) {
    this.dialSource = dialSourceAddress(listenHost);
  }

  isDialer(peer: Peer): boolean {
    return this.host.id < peer.id;
  }

  dialIfDue(peer: Peer): void {
    if (!this.mayDial(peer)) return;
    this.dial(peer);
  }

  scheduleRedial(peer: Peer): void {
    if (!this.mayDial(peer)) return;
    const delayMs = backoffDelayMs(peer.failedDials, this.host.settings.random, this.host.settings.backoff);
    peer.failedDials += 1;
    peer.redialTimer = this.host.clock.after(delayMs, () => {
      peer.redialTimer = null;
      this.dialIfDue(peer);
    });
  }

  cancelRedial(peer: Peer): void {
    peer.redialTimer?.cancel();
    peer.redialTimer = null;
  }

  restartDialing(peer: Peer): void {
    this.cancelRedial(peer);
    peer.failedDials = 0;
    this.dropSockets(peer, CloseCode.PeerRemoved, 'peer address changed');
  }

  /** Whether this node dials `peer` now: it is the dialer, the peer is current, and nothing is up, under way or scheduled. */
  private mayDial(peer: Peer): boolean {
    if (this.host.isClosed() || !this.isDialer(peer) || this.host.peer(peer.id) !== peer) return false;
    return peer.link === null && peer.dialing === null && peer.redialTimer === null;
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

  private dial(peer: Peer): void {
    const { host } = this;
    const { sockets, settings } = host;
    const url = peerUrl(peer.address, host.tls !== undefined);
    const ws = new WebSocket(url, {
      maxPayload: settings.maxFrameBytes,
      perMessageDeflate: false,
      // A zero mask: masking guards browsers' intermediaries against cache poisoning,
      // which does not apply between nodes (TLS in secure mode); with it, both ends
      // would copy and XOR every frame.
      generateMask: zeroMask,
      handshakeTimeout: settings.handshakeTimeoutMs,
      ...this.dialSourceFor(peer.address),
      ...(host.tls ? host.tls.client(peer.id) : {}),
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
      stopMetering = meterUntilAuthenticated(upgradedSocket, settings.maxPreAuthBytes, (receivedBytes) => {
        phase = 'done';
        sockets.cutOverBudget(ws, receivedBytes, { peer: peer.id, url });
      });
    });
    peer.dialing = ws;
    sockets.all.add(ws);
    host.log.debug({ peer: peer.id, url, attempt: peer.failedDials }, 'dialing peer');
    // Not a refusal: an unreachable or hung peer is routine, the backoff handles it.
    const timer = host.clock.after(settings.handshakeTimeoutMs, () => {
      phase = 'done';
      host.log.debug({ peer: peer.id, url }, 'dial did not finish the handshake in time; closing it');
      sockets.close(ws, CloseCode.HandshakeTimeout, 'handshake timed out');
    });

    ws.on('error', (err) => sockets.onError(err, peer.id, url, phase === 'link'));
    ws.on('close', (code, reasonBuffer) => {
      timer.cancel();
      stopMetering();
      sockets.all.delete(ws);
      const reason = reasonBuffer.toString();
      if (phase !== 'link' && code >= 4000 && code < 5000) {
        sockets.warnings.warn(`refused-by:${peer.id}:${code}`, { peer: peer.id, url, code, reason }, 'peer refused our handshake');
      }
      host.onSocketClosed(peer, ws, code, reason);
    });
    ws.on('message', (data, isBinary) => {
      switch (phase) {
        case 'link':
          if (link !== null) host.onLinkMessage(peer, link, data, isBinary);
          return;
        case 'done':
          return;
        case 'challenge': {
          phase = 'done';
          const challenge = sockets.parseOrRefuse(ws, parseChallenge, data, isBinary, 'malformed challenge', { peer: peer.id, url });
          if (challenge === null) return;
          if (challenge.serverId !== peer.id) {
            sockets.refuse(ws, CloseCode.WrongNode, `dialed ${peer.id}, reached ${challenge.serverId}`, { peer: peer.id, url });
            return;
          }
          transcript = { clientId: host.id, serverId: peer.id, clientNonce, serverNonce: challenge.serverNonce };
          ws.send(encodeHello({ clientId: host.id, serverId: peer.id, clientNonce, proof: computeProof(host.token, 'client', transcript) }));
          phase = 'welcome';
          return;
        }
        case 'welcome': {
          phase = 'done';
          const welcome = sockets.parseOrRefuse(ws, parseWelcome, data, isBinary, 'malformed welcome', { peer: peer.id, url });
          if (welcome === null) return;
          if (transcript === null || !verifyProof(host.token, 'server', transcript, welcome.proof)) {
            sockets.refuse(ws, CloseCode.AuthFailed, 'peer failed to prove the token', { peer: peer.id, url });
            return;
          }
          timer.cancel();
          stopMetering();
          link = host.adopt(peer, ws, host.id);
          if (link !== null) phase = 'link';
          return;
        }
      }
    });
  }
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
