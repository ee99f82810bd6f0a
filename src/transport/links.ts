// A peer as the transport keeps it (its address, its queue, its link, its dialing
// state), and what the accepting and dialing sides need from the transport to hand an
// authenticated socket over to it.
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import type { Clock, Timer } from '../util/clock.js';
import { FrameQueue } from './frame-queue.js';
import type { PeerTls, TransportSettings } from './options.js';
import type { Sockets } from './sockets.js';

export interface Link {
  readonly ws: WebSocket;
  readonly dialedBy: string;
  /** clock.monotonic() when it came up. */
  readonly upSinceMs: number;
  heardSincePing: boolean; // a pong or a message arrived since the last ping
  missedPings: number; // consecutive pings with nothing heard before the next one
  carried: boolean; // a message was sent or received since the last keepalive check
  quietChecks: number; // consecutive keepalive checks with no message either way
  inflightBytes: number;
}

export interface Peer {
  readonly id: string;
  address: string;
  readonly queue: FrameQueue;
  link: Link | null;
  dialing: WebSocket | null; // outbound socket not yet authenticated
  redialTimer: Timer | null;
  failedDials: number; // consecutive; drives the backoff
  flushScheduled: boolean;
  dropping: boolean; // the queue overflowed since it was last empty (to log once)
  everConnected: boolean;
  counters: { sentFrames: number; sentMessages: number; droppedFrames: number; receivedFrames: number; receivedMessages: number; reconnects: number };
}

export function newPeer(id: string, address: string, maxQueueBytes: number): Peer {
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

/** The transport as the accepting side (inbound.ts) and the dialing side (dialer.ts) see it. */
export interface LinkHost {
  readonly id: string;
  readonly token: Buffer | null;
  readonly tls: PeerTls | undefined;
  readonly settings: TransportSettings;
  readonly clock: Clock;
  readonly log: Logger;
  readonly sockets: Sockets;
  isClosed(): boolean;
  /** The peer of that id in the current set. */
  peer(id: string): Peer | undefined;
  /** Makes an authenticated socket the peer's link; null when it was closed instead (a better link exists, or the peer is gone). */
  adopt(peer: Peer, ws: WebSocket, dialedBy: string): Link | null;
  onLinkMessage(peer: Peer, link: Link, data: RawData, isBinary: boolean): void;
  onSocketClosed(peer: Peer, ws: WebSocket, code: number, reason: string): void;
}
