// GET /v1/jobs/:id/logs: what the caller asked to read, and `since`, parsed at the boundary.
import { HttpError } from './http.js';

export interface LogOptions {
  follow: boolean;
  /** Do not proxy to another node (a proxied request). */
  local: boolean;
  /** Only output printed at or after this time, ms since the epoch; null: all of it. */
  sinceMs: number | null;
  signal?: AbortSignal;
}

/** An RFC 3339 date-time: a date, `T` (or a space), a time with optional fraction, and `Z` or an offset. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
/** Unix time in seconds, with up to 9 digits of fraction. */
const UNIX_SECONDS = /^\d{1,12}(\.\d{1,9})?$/;

/**
 * `since` as the API takes it: Unix time in seconds (a fraction allowed, as Docker's
 * `since`) or an RFC 3339 time; ms since the epoch, or null when absent. 400 BAD_QUERY
 * for anything else.
 */
export function parseSince(value: string | null): number | null {
  if (value === null) return null;
  if (UNIX_SECONDS.test(value)) return Math.floor(Number(value) * 1000);
  if (RFC3339.test(value)) {
    const ms = Date.parse(value.replace(' ', 'T'));
    if (Number.isFinite(ms) && ms >= 0) return ms;
  }
  throw new HttpError(400, 'BAD_QUERY', 'since must be a Unix time in seconds (e.g. 1765000000 or 1765000000.5) or an RFC 3339 time (e.g. 2026-12-07T10:00:00Z)');
}
