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
