// Which addresses the peers advertise, for the admission of pending connections
// (preauth.ts): IPs as they are, host names looked up, and again once their answer is
// older than PEER_HOST_REFRESH_MS (at the next refresh).
import { lookup } from 'node:dns/promises';
import type { Logger } from 'pino';
import type { Clock } from '../util/clock.js';
import { parsePeerAddress } from '../util/peer-address.js';
import type { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { canonicalIp } from './preauth.js';

const PEER_HOST_REFRESH_MS = 60_000;

/** What a peer host name resolved to. */
interface ResolvedHost {
  addresses: string[]; // canonical IPs
  resolvedAtMs: number; // clock.monotonic()
  inFlight: boolean;
}

export class PeerHosts {
  private readonly resolved = new Map<string, ResolvedHost>();

  constructor(
    /** The peers' addresses ("host:port") now. */
    private readonly peerAddresses: () => Iterable<string>,
    /** Receives the advertised IPs after every refresh. */
    private readonly onAddresses: (ips: string[]) => void,
    private readonly isClosed: () => boolean,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly warnings: RateLimitedWarn,
  ) {}

  refresh(): void {
    const addresses: string[] = [];
    const names = new Set<string>();
    const nowMs = this.clock.monotonic();
    for (const address of this.peerAddresses()) {
      const { host } = parsePeerAddress(address);
      const ip = canonicalIp(host);
      if (ip !== null) {
        addresses.push(ip);
        continue;
      }
      names.add(host);
      const resolved = this.resolved.get(host);
      if (resolved !== undefined) addresses.push(...resolved.addresses);
      if (resolved === undefined || (!resolved.inFlight && nowMs - resolved.resolvedAtMs >= PEER_HOST_REFRESH_MS)) this.resolve(host);
    }
    for (const name of this.resolved.keys()) if (!names.has(name)) this.resolved.delete(name);
    this.onAddresses(addresses);
  }

  private resolve(host: string): void {
    const entry: ResolvedHost = this.resolved.get(host) ?? { addresses: [], resolvedAtMs: 0, inFlight: false };
    entry.inFlight = true;
    this.resolved.set(host, entry);
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
        entry.resolvedAtMs = this.clock.monotonic();
        if (!this.isClosed() && this.resolved.get(host) === entry) this.refresh();
      })
      .catch((err: unknown) => this.log.error({ err, host }, 'updating the peer hosts failed'));
  }
}
