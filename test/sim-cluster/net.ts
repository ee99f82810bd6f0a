import type { NodeId } from '../../raft/types.js';
import { decodeBatch, encodeBatch, encodeFrame } from '../../src/transport/codec.js';
import type { ManualClock } from '../../src/util/manual-clock.js';
import type { Random } from '../sim/random.js';

/**
 * The peer links between boxes, on simulated time. A frame is encoded with the
 * transport's codec when sent and decoded when delivered, as on a real link, so the
 * receiver never shares an object with the sender. Every fault is drawn from the
 * run's random stream: a frame may be dropped when sent (a reconnect losing its
 * queue), delayed (a share of frames much longer, so later ones overtake them unless
 * the seed keeps links in order, as TCP does), and is lost when a partition cuts its
 * link at send or at delivery time, or when either end's process died or restarted
 * meanwhile (its connections were reset).
 */

export interface LinkFaults {
  dropRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  /** A share of frames waits up to `longDelayMs` instead. */
  longDelayRate: number;
  longDelayMs: number;
  /** In order per link (TCP) or free to overtake one another. */
  inOrder: boolean;
}

export const CALM: LinkFaults = { dropRate: 0, minDelayMs: 1, maxDelayMs: 5, longDelayRate: 0, longDelayMs: 0, inOrder: true };

/**
 * `symmetric`: nothing crosses between `side` and the rest; `outbound`: `side` cannot
 * send out; `inbound`: nothing reaches `side`. `inFlight`: frames already on their way
 * when the partition began are cut (default) or still delivered.
 */
export interface Partition {
  id: number;
  side: ReadonlySet<NodeId>;
  mode: 'symmetric' | 'outbound' | 'inbound';
  inFlight: 'cut' | 'delivered';
}

/** What a box exposes to the network: its current incarnation and its frame entry point. */
export interface Endpoint {
  /** Changes at every restart; 0 while the box is down. */
  incarnation(): number;
  receive(from: NodeId, frame: unknown): void;
}

export interface NetStats {
  sent: number;
  delivered: number;
  dropped: number;
  cut: number;
}

export class SimNetwork {
  faults: LinkFaults = CALM;
  partitions: Partition[] = [];
  readonly stats: NetStats = { sent: 0, delivered: 0, dropped: 0, cut: 0 };
  private nextPartitionId = 1;
  private readonly endpoints = new Map<NodeId, Endpoint>();
  /** Per link, the delivery time of the last frame (keeps in-order links in order). */
  private readonly lastDelivery = new Map<string, number>();

  /** Every frame sent, when set (debugging a replay: SIM_CLUSTER_FRAMES=1). */
  onSend: ((line: string) => void) | null = null;
  /** Every frame as it is sent, before any fault (scripted scenarios that watch a protocol). */
  onFrame: ((from: NodeId, to: NodeId, frame: unknown) => void) | null = null;
  /** Extra one-way delay of every frame on a link, by `from>to` (a slow path: scripted scenarios). */
  readonly slowLinks = new Map<string, number>();

  constructor(
    private readonly clock: ManualClock,
    private readonly random: Random,
  ) {}

  attach(id: NodeId, endpoint: Endpoint): void {
    this.endpoints.set(id, endpoint);
  }

  /** A frame from `from`'s incarnation `fromIncarnation`; false when `to` is unknown (no address), as the transport answers. */
  send(from: NodeId, fromIncarnation: number, to: NodeId, frame: unknown): boolean {
    const target = this.endpoints.get(to);
    if (target === undefined || to === from) return false;
    this.stats.sent += 1;
    this.onSend?.(`frame ${from}>${to} ${describeFrame(frame)}`);
    this.onFrame?.(from, to, frame);
    if (this.blocked(from, to)) {
      this.stats.cut += 1;
      return true;
    }
    if (this.random.chance(this.faults.dropRate)) {
      this.stats.dropped += 1;
      return true;
    }
    const f = this.faults;
    const long = f.longDelayRate > 0 && this.random.chance(f.longDelayRate);
    let delay = long ? this.random.int(f.maxDelayMs, Math.max(f.maxDelayMs, f.longDelayMs)) : this.random.int(f.minDelayMs, f.maxDelayMs);
    const link = `${from}>${to}`;
    delay += this.slowLinks.get(link) ?? 0;
    const now = this.clock.monotonic();
    if (f.inOrder) delay = Math.max(delay, (this.lastDelivery.get(link) ?? 0) - now);
    this.lastDelivery.set(link, now + delay);
    const bytes = encodeFrame(frame);
    const toIncarnation = target.incarnation();
    this.clock.after(delay, () => {
      const source = this.endpoints.get(from);
      if (source?.incarnation() !== fromIncarnation || target.incarnation() !== toIncarnation || toIncarnation === 0 || this.blocked(from, to, 'delivery')) {
        this.stats.cut += 1;
        return;
      }
      const [decoded] = decodeBatch(encodeBatch([bytes]));
      this.stats.delivered += 1;
      target.receive(from, decoded);
    });
    return true;
  }

  /** Whether a partition cuts `from` → `to`: for a frame being sent, or (`delivery`) one on its way. */
  blocked(from: NodeId, to: NodeId, at: 'send' | 'delivery' = 'send'): boolean {
    for (const p of this.partitions) {
      if (at === 'delivery' && p.inFlight === 'delivered') continue;
      const fromIn = p.side.has(from);
      const toIn = p.side.has(to);
      if (fromIn === toIn) continue;
      if (p.mode === 'symmetric') return true;
      if (p.mode === 'outbound' && fromIn) return true;
      if (p.mode === 'inbound' && toIn) return true;
    }
    return false;
  }

  partition(side: NodeId[], mode: Partition['mode'], inFlight: Partition['inFlight'] = 'cut'): Partition {
    const p: Partition = { id: this.nextPartitionId++, side: new Set(side), mode, inFlight };
    this.partitions.push(p);
    return p;
  }

  heal(id: number): void {
    this.partitions = this.partitions.filter((p) => p.id !== id);
  }

  healAll(): void {
    this.partitions = [];
  }
}

function describeFrame(frame: unknown): string {
  const f = frame as { k?: string; m?: { type?: string; term?: number; index?: number; entries?: unknown[]; commit?: number }; id?: string };
  if (f.k === 'raft' && f.m) return `raft ${f.m.type} t${f.m.term} i${f.m.index ?? ''} n${f.m.entries?.length ?? 0} c${f.m.commit ?? ''}`;
  return `${f.k ?? '?'}${f.id ? ` ${f.id}` : ''}`;
}
