// Driving code under test on simulated time (ManualClock): no test here waits on the
// real clock, so none is slow or flaky on a loaded machine.
import type { ManualClock } from '../../src/util/manual-clock.js';

/** One turn of the event loop: every queued promise continuation runs; no time passes on any clock. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Moves simulated time forward `ms` in steps of `stepMs`, letting the code under test run between steps. */
export async function advance(clock: ManualClock, ms: number, stepMs = 50): Promise<void> {
  for (let left = ms; left > 0; left -= stepMs) {
    await clock.advance(Math.min(stepMs, left));
    await flush();
  }
  await flush();
}

/**
 * Moves simulated time forward in steps of `stepMs` until `probe` returns a value other
 * than undefined; fails with `what` once `limitMs` of simulated time went by without it.
 */
export async function advanceUntil<T>(clock: ManualClock, what: string, probe: () => Promise<T | undefined> | T | undefined, limitMs = 60_000, stepMs = 10): Promise<T> {
  const start = clock.monotonic();
  for (;;) {
    await flush();
    const value = await probe();
    if (value !== undefined) return value;
    if (clock.monotonic() - start >= limitMs) throw new Error(`still waiting for ${what} after ${limitMs} ms of simulated time`);
    await clock.advance(stepMs);
  }
}
