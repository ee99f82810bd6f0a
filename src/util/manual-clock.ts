// Simulated time: a Clock that moves only when told to. Timers fire in deadline order
// (ties in the order they were armed), each seeing now() equal to its own deadline, so a
// run is a pure function of the calls made on it. Used by unit tests and the simulators.
import type { Clock, Timer } from './clock.js';
import { sleepOn } from './clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  /** Repeat period for every(); null for after(). */
  period: number | null;
  cancelled: boolean;
}

export class ManualClock implements Clock {
  private t: number;
  private readonly epoch: number;
  private seq = 0;
  private pending: Pending[] = [];

  /** `epochMs` is what now() reads at monotonic time 0. */
  constructor(epochMs = 1_700_000_000_000) {
    this.t = 0;
    this.epoch = epochMs;
  }

  /** Whole milliseconds, as Date.now() reads (a timer may be due at a fractional time). */
  now(): number {
    return Math.floor(this.epoch + this.t);
  }

  monotonic(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    return this.arm(ms, fn, null);
  }

  every(ms: number, fn: () => void): Timer {
    return this.arm(ms, fn, Math.max(1, ms));
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Timers armed and not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.pending.filter((p) => !p.cancelled).length;
  }

  /** The deadline of the next timer, or null when none is pending. */
  nextDeadline(): number | null {
    this.pending = this.pending.filter((p) => !p.cancelled);
    if (this.pending.length === 0) return null;
    return Math.min(...this.pending.map((p) => p.at));
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in order. Between
   * timers it lets promise continuations run (awaited), so code that awaits a sleep and
   * arms the next one is driven as it would be on real time.
   */
  async advance(ms: number): Promise<void> {
    const target = this.t + Math.max(0, ms);
    for (;;) {
      await settle();
      const next = this.popDue(target);
      if (next === null) break;
      this.t = Math.max(this.t, next.at);
      this.fire(next.timer);
    }
    this.t = target;
    await settle();
  }

  /** Runs only the timers already due now (no time passes); synchronous. */
  runDue(): number {
    let fired = 0;
    for (let next = this.popDue(this.t); next !== null; next = this.popDue(this.t)) {
      this.fire(next.timer);
      fired += 1;
    }
    return fired;
  }

  /** Moves time to the next deadline (if any, and not beyond `limitMs` from now) and fires what is due there. */
  async step(limitMs = Infinity): Promise<boolean> {
    const at = this.nextDeadline();
    if (at === null || at - this.t > limitMs) return false;
    await this.advance(at - this.t);
    return true;
  }

  private arm(ms: number, fn: () => void, period: number | null): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, period, cancelled: false };
    this.pending.push(p);
    const timer: Timer = {
      cancel: () => {
        p.cancelled = true;
      },
      unref: () => timer,
    };
    return timer;
  }

  /** The next timer due by `limit` and its deadline (a repeating one is re-armed for its next period). */
  private popDue(limit: number): { timer: Pending; at: number } | null {
    let best: Pending | null = null;
    for (const p of this.pending) {
      if (p.cancelled || p.at > limit) continue;
      if (best === null || p.at < best.at || (p.at === best.at && p.seq < best.seq)) best = p;
    }
    if (best === null) return null;
    const at = best.at;
    if (best.period === null) best.cancelled = true;
    else {
      best.at += best.period;
      best.seq = this.seq++;
    }
    this.pending = this.pending.filter((p) => !p.cancelled);
    return { timer: best, at };
  }

  private fire(p: Pending): void {
    p.fn();
  }
}

/** Lets queued promise continuations (and continuations they queue) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
