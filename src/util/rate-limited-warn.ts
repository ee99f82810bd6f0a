import type { Logger } from 'pino';

/**
 * Logs a warning once per key per interval, and at debug level in between: for
 * refusals whose cause an unauthenticated caller controls, so it cannot flood the log.
 */
export class RateLimitedWarn {
  private readonly warnedAt = new Map<string, number>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 30_000,
    private readonly maxKeys = 1024,
    /** Wall-clock milliseconds (a Clock's now()). */
    private readonly now: () => number = () => Date.now(),
  ) {}

  warn(key: string, context: object, msg: string): void {
    const nowMs = this.now();
    const lastMs = this.warnedAt.get(key);
    if (lastMs !== undefined && nowMs - lastMs < this.intervalMs) {
      this.log.debug(context, msg);
      return;
    }
    if (this.warnedAt.size >= this.maxKeys) this.warnedAt.clear(); // bounded: keys come from unauthenticated callers
    this.warnedAt.set(key, nowMs);
    this.log.warn(context, msg);
  }
}
