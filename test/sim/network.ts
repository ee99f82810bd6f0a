import type { Message, NodeId } from '../../raft/types.js';
import type { Random } from './random.js';

/**
 * Messages in flight between nodes, with per-message delivery times in ticks. All
 * faults are decided by the run's PRNG: a message may be dropped or duplicated when
 * sent, delayed by several ticks (so later messages overtake it), and is lost when a
 * partition cuts its link at delivery time. Among the messages due, the simulator
 * delivers one picked at random, which reorders even messages sent in one tick.
 */

export interface NetworkFaults {
  dropRate: number;
  duplicateRate: number;
  /** Delays are mostly 0..maxDelayTicks; a `longDelayRate` share waits up to 4× that. */
  maxDelayTicks: number;
  longDelayRate: number;
}

export const NO_FAULTS: NetworkFaults = { dropRate: 0, duplicateRate: 0, maxDelayTicks: 1, longDelayRate: 0 };

/**
 * `symmetric`: no message crosses between `side` and the rest. `outbound`: `side`
 * cannot send to the rest (it still hears them). `inbound`: the rest cannot send to `side`.
 */
export interface Partition {
  id: number;
  side: ReadonlySet<NodeId>;
  mode: 'symmetric' | 'outbound' | 'inbound';
}

export interface InFlight {
  msg: Message;
  sentAtTick: number;
}

export class Network {
  faults: NetworkFaults = NO_FAULTS;
  partitions: Partition[] = [];
  private nextPartitionId = 1;
  /** Due now: deliverable in any order. */
  private readonly due: InFlight[] = [];
  /** Not yet due, by delivery tick. */
  private readonly later = new Map<number, InFlight[]>();
  private inFlightCount = 0;

  constructor(private readonly random: Random) {}

  /** Returns how many copies were put in flight (0: dropped, 2: duplicated). */
  send(msg: Message, nowTick: number): number {
    if (this.random.chance(this.faults.dropRate)) return 0;
    const copies = this.random.chance(this.faults.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const long = this.random.chance(this.faults.longDelayRate);
      const delay = this.random.int(0, long ? 4 * this.faults.maxDelayTicks : this.faults.maxDelayTicks);
      const item = { msg, sentAtTick: nowTick };
      if (delay === 0) this.due.push(item);
      else {
        const at = nowTick + delay;
        const bucket = this.later.get(at);
        if (bucket) bucket.push(item);
        else this.later.set(at, [item]);
      }
      this.inFlightCount += 1;
    }
    return copies;
  }

  /** Puts a taken message back, due at `atTick` (its receiver is paused until then). */
  deliverLater(item: InFlight, atTick: number): void {
    const bucket = this.later.get(atTick);
    if (bucket) bucket.push(item);
    else this.later.set(atTick, [item]);
    this.inFlightCount += 1;
  }

  /** Time moved to `nowTick`: messages due by then become deliverable. */
  advanceTo(nowTick: number): void {
    const bucket = this.later.get(nowTick);
    if (!bucket) return;
    this.later.delete(nowTick);
    for (const item of bucket) this.due.push(item);
  }

  hasDue(): boolean {
    return this.due.length > 0;
  }

  inFlight(): number {
    return this.inFlightCount;
  }

  /** Removes and returns a random due message. */
  takeDue(): InFlight | undefined {
    if (this.due.length === 0) return undefined;
    const i = this.random.int(0, this.due.length - 1);
    const item = this.due[i] as InFlight;
    const last = this.due.pop() as InFlight;
    if (i < this.due.length) this.due[i] = last;
    this.inFlightCount -= 1;
    return item;
  }

  blocked(from: NodeId, to: NodeId): boolean {
    for (const p of this.partitions) {
      const fromIn = p.side.has(from);
      const toIn = p.side.has(to);
      if (fromIn === toIn) continue;
      if (p.mode === 'symmetric') return true;
      if (p.mode === 'outbound' && fromIn) return true;
      if (p.mode === 'inbound' && toIn) return true;
    }
    return false;
  }

  partition(side: NodeId[], mode: Partition['mode']): Partition {
    const p: Partition = { id: this.nextPartitionId++, side: new Set(side), mode };
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
