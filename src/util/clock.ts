// Time as a dependency. Production code reads the wall clock, measures durations and
// arms timers only through a Clock, so that tests and the whole-node simulator can run
// the same code on simulated time (ManualClock in src/util/manual-clock.ts).

/** A pending timer; cancel() is idempotent. */
export interface Timer {
  cancel(): void;
  /** Lets the process exit while this timer is pending (a no-op on simulated time). */
  unref(): Timer;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch: what records and users see. */
  now(): number;
  /** Milliseconds from an arbitrary origin that never go backwards: for durations and deadlines. */
  monotonic(): number;
  /** Runs `fn` once after `ms`. */
  after(ms: number, fn: () => void): Timer;
  /** Runs `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Timer;
  /** Resolves after `ms`; rejects with the signal's reason if it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function wrap(handle: NodeJS.Timeout, clear: (h: NodeJS.Timeout) => void): Timer {
  const timer: Timer = {
    cancel: () => clear(handle),
    unref: () => {
      handle.unref();
      return timer;
    },
  };
  return timer;
}

/** Sleeps on any clock, honouring an abort signal. */
export function sleepOn(clock: Pick<Clock, 'after'>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = clock.after(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The process's real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  after: (ms, fn) => wrap(setTimeout(fn, ms), clearTimeout),
  every: (ms, fn) => wrap(setInterval(fn, ms), clearInterval),
  sleep: (ms, signal) => sleepOn(systemClock, ms, signal),
};
