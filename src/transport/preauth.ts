// What a connection to the peer port may cost before it has proved the cluster token:
// how many such connections one source and all strangers together may hold, and how
// many bytes each may deliver. Anyone who can reach the port can open connections, so
// without these bounds a caller with no secret could fill the node's memory or keep
// its own peers from getting in.
//
// Sources: an IPv4 address, or an IPv6 /64 (one host commonly holds a whole /64). A
// source is a peer host when a peer of this node advertises that address. Peer hosts
// get a share of their own, which strangers cannot consume, so a flood from elsewhere
// never keeps the node's peers out; a stranger sharing an address with a peer (the
// same machine) shares that peer's share.
//
// The byte budget. ws fixes the largest message (maxPayload) once per server, when it
// builds a connection's receiver, and offers no public way to change it afterwards;
// the receiver only checks it against a message's announced length. The ways to give
// unauthenticated connections a smaller limit were:
//   - authenticate inside the HTTP upgrade request: the handshake is challenge-response
//     (the server's nonce comes first), so that needs another round trip and a new wire
//     protocol that old nodes do not speak;
//   - two WebSocketServers: a connection's receiver is fixed at upgrade, before the
//     handshake starts, so a connection cannot move from one to the other;
//   - lowering the receiver's limit and raising it after the handshake: writes a
//     private field of ws (`_receiver._maxPayload`) that any release may rename.
// Instead the socket under the websocket is metered, with its public 'data' event:
// until the handshake completes, a connection that has delivered more than
// maxPreAuthBytes (all bytes: frame headers, fragments, control frames) is cut. This
// holds whatever the framing, needs nothing private from ws, and bounds what a
// stranger makes the node buffer to maxPreAuthBytes per pending connection, plus the
// one socket read (at most 64 KiB) being processed when the budget runs out. The
// normal limit (maxFrameBytes, ws's maxPayload) applies once the peer has proved the
// token.
import { isIP, type Socket } from 'node:net';

export interface AdmissionLimits {
  /** Unauthenticated connections one stranger source may hold; also each peer's share at its host. */
  maxPendingPerSource: number;
  /** Unauthenticated connections all strangers together may hold. */
  maxPendingStrangers: number;
}

/** A pending connection's place in the budget; give it back with release(). */
export interface AdmissionTicket {
  readonly source: string;
  readonly peerHost: boolean;
  released: boolean;
}

export type Admission =
  | { admitted: true; ticket: AdmissionTicket }
  | { admitted: false; source: string; reason: 'source-busy' | 'strangers-busy' | 'no-address' };

/** Counts unauthenticated connections per source and decides whether one more may come in. No I/O. */
export class PendingConnections {
  /** Canonical IP → number of peers advertising it. */
  private peerHosts: ReadonlyMap<string, number> = new Map();
  /** Per source key (see sourceKey): connections pending now. */
  private readonly bySource = new Map<string, number>();
  private strangers = 0;
  private peers = 0;

  constructor(private readonly limits: AdmissionLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`PendingConnections: ${name} must be an integer ≥ 1, got ${value}`);
    }
  }

  /** The addresses peers advertise (canonical IPs, see canonicalIp), one entry per peer. */
  setPeerHosts(addresses: Iterable<string>): void {
    const hosts = new Map<string, number>();
    for (const address of addresses) hosts.set(address, (hosts.get(address) ?? 0) + 1);
    this.peerHosts = hosts;
  }

  admit(remoteAddress: string | undefined): Admission {
    const ip = remoteAddress === undefined ? null : canonicalIp(remoteAddress);
    if (ip === null) return { admitted: false, source: String(remoteAddress), reason: 'no-address' };
    const peersThere = this.peerHosts.get(ip);
    if (peersThere !== undefined) {
      const source = `peer-host ${ip}`;
      if ((this.bySource.get(source) ?? 0) >= this.limits.maxPendingPerSource * peersThere) return { admitted: false, source, reason: 'source-busy' };
      return { admitted: true, ticket: this.take(source, true) };
    }
    const source = sourceKey(ip);
    if ((this.bySource.get(source) ?? 0) >= this.limits.maxPendingPerSource) return { admitted: false, source, reason: 'source-busy' };
    if (this.strangers >= this.limits.maxPendingStrangers) return { admitted: false, source, reason: 'strangers-busy' };
    return { admitted: true, ticket: this.take(source, false) };
  }

  /** Idempotent. A ticket keeps the class it was admitted in, even if the peer set changed since. */
  release(ticket: AdmissionTicket): void {
    if (ticket.released) return;
    ticket.released = true;
    const n = this.bySource.get(ticket.source) ?? 0;
    if (n <= 0) throw new Error(`PendingConnections: release of ${ticket.source} with none pending`);
    if (n === 1) this.bySource.delete(ticket.source);
    else this.bySource.set(ticket.source, n - 1);
    if (ticket.peerHost) this.peers -= 1;
    else this.strangers -= 1;
  }

  /** Connections pending now, by class. */
  counts(): { strangers: number; peerHosts: number } {
    return { strangers: this.strangers, peerHosts: this.peers };
  }

  private take(source: string, peerHost: boolean): AdmissionTicket {
    this.bySource.set(source, (this.bySource.get(source) ?? 0) + 1);
    if (peerHost) this.peers += 1;
    else this.strangers += 1;
    return { source, peerHost, released: false };
  }
}

/**
 * Cuts `socket` (with `onExceeded`) once more than `maxBytes` have arrived on it, until
 * the returned function is called (the handshake completed). Register it after the
 * websocket's own 'data' listener: ws then parses each read, and emits the messages in
 * it, before this counts it (ws emits messages synchronously while
 * allowSynchronousEvents is on, its default). A read that carries the last handshake
 * message and the first frames behind it therefore completes the handshake before it
 * is counted.
 */
export function meterUntilAuthenticated(socket: Socket, maxBytes: number, onExceeded: (receivedBytes: number) => void): () => void {
  let receivedBytes = 0;
  let stopped = false;
  const onData = (chunk: Buffer): void => {
    if (stopped) return;
    receivedBytes += chunk.length;
    if (receivedBytes <= maxBytes) return;
    stop();
    onExceeded(receivedBytes);
  };
  const stop = (): void => {
    stopped = true;
    socket.off('data', onData);
  };
  socket.on('data', onData);
  return stop;
}

/**
 * The address outgoing peer connections should leave from: the listening host when it
 * is one specific IP (then known to be this machine's), so that peers see the address
 * this node advertises and count it as a peer host. Undefined (the system chooses) for
 * a wildcard or a host name.
 */
export function dialSourceAddress(listenHost: string): { localAddress: string; family: 4 | 6 } | undefined {
  const bare = listenHost.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(bare);
  if (family !== 4 && family !== 6) return undefined;
  const ip = canonicalIp(bare);
  if (ip === null || ip === '0.0.0.0' || ip === '0000:0000:0000:0000:0000:0000:0000:0000') return undefined;
  return { localAddress: bare, family };
}

/**
 * The canonical text of an IP address, so that two spellings of one address compare
 * equal: IPv4 dotted (IPv4-mapped IPv6 unwrapped, as a dual-stack socket reports
 * IPv4 callers), IPv6 as eight 4-digit lowercase groups, no zone. Null when `address`
 * is not an IP literal.
 */
export function canonicalIp(address: string): string | null {
  const bare = address.replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family !== 6) return null;
  const groups = ipv6Groups(bare);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return groups.map((g) => g.toString(16).padStart(4, '0')).join(':');
}

/** The source a stranger's connection counts against: its IPv4 address, or the /64 of its IPv6 address (given canonical). */
export function sourceKey(canonical: string): string {
  return canonical.includes(':') ? `${canonical.split(':').slice(0, 4).join(':')}::/64` : canonical;
}

/** The eight 16-bit groups of an IPv6 address that isIP accepted. */
function ipv6Groups(address: string): number[] {
  const parse = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((g) => {
      if (!g.includes('.')) return [parseInt(g, 16)];
      const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const gap = address.indexOf('::');
  if (gap < 0) return parse(address);
  const head = parse(address.slice(0, gap));
  const tail = parse(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}
