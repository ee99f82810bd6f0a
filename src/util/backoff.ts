// Reconnect delays: exponential with "equal jitter" (half fixed, half random), so a
// restarted node is not hit by all its peers in the same millisecond, and a delay is
// never close to zero.

export interface BackoffOptions {
  baseMs: number; // delay cap of the first retry
  maxMs: number; // delay cap once doubling has reached it
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 50, maxMs: 2_000 };

/** Delay before retry number `attempt` (0-based); `random` returns [0, 1). */
export function backoffDelayMs(attempt: number, random: () => number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const capMs = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return capMs / 2 + random() * (capMs / 2);
}

/** Calls `fn` until it succeeds or `attempts` calls failed (then throws the last error), sleeping a backoff delay between calls. */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: { attempts: number; sleep: (ms: number) => Promise<void>; random?: () => number; backoff?: BackoffOptions; retryable?: (err: unknown) => boolean },
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt + 1 >= opts.attempts || (opts.retryable !== undefined && !opts.retryable(err))) throw err;
      await opts.sleep(backoffDelayMs(attempt, opts.random ?? Math.random, opts.backoff));
    }
  }
}
