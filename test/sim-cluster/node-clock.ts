import type { Clock, Timer } from '../../src/util/clock.js';
import { sleepOn } from '../../src/util/clock.js';
import type { ManualClock } from '../../src/util/manual-clock.js';

/**
 * One process incarnation's view of the simulation's clock. Every box reads the same
 * simulated time, but with its own wall-clock offset (what `now()` says differs per
 * box, as real clocks do) and its own monotonic origin (code that compares one box's
 * monotonic readings with another's is wrong, and shows). A crash kills the view: its
 * timers are cancelled and it never fires again, so the dead process's code stops
 * running at the instant it crashed, whatever it was waiting for.
 */
export class NodeClock implements Clock {
  private readonly timers = new Set<Timer>();
  private dead = false;

  constructor(
    private readonly base: ManualClock,
    private readonly wallOffsetMs: number,
    private readonly monotonicOriginMs: number,
  ) {}

  now(): number {
    return this.base.now() + this.wallOffsetMs;
  }

  monotonic(): number {
    return this.base.monotonic() + this.monotonicOriginMs;
  }

  after(ms: number, fn: () => void): Timer {
    return this.arm(ms, fn, false);
  }

  every(ms: number, fn: () => void): Timer {
    return this.arm(ms, fn, true);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** The process died: nothing it armed fires any more. */
  kill(): void {
    this.dead = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
  }

  get alive(): boolean {
    return !this.dead;
  }

  private arm(ms: number, fn: () => void, repeat: boolean): Timer {
    if (this.dead) return { cancel: () => undefined, unref: function () { return this; } };
    const inner = repeat
      ? this.base.every(ms, () => {
          if (!this.dead) fn();
        })
      : this.base.after(ms, () => {
          this.timers.delete(timer);
          if (!this.dead) fn();
        });
    const timer: Timer = {
      cancel: () => {
        inner.cancel();
        this.timers.delete(timer);
      },
      unref: () => timer,
    };
    this.timers.add(timer);
    return timer;
  }
}
