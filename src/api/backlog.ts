// The cap on pending jobs (maxPendingJobs): every pending job is held by every node
// (its spec in memory and in the Raft log) until a slot takes it, so a submitter
// faster than the cluster's slots must be told to wait rather than fill the nodes.
import { HttpError } from './http.js';

/** What a client waits before trying again: pending jobs drain as slots free up, which the gateway cannot predict. */
export const PENDING_RETRY_AFTER_SECONDS = 5;

/** 429 TOO_MANY_PENDING; the gateway sends `retryAfterSeconds` as the Retry-After header. */
export class TooManyPendingError extends HttpError {
  readonly retryAfterSeconds = PENDING_RETRY_AFTER_SECONDS;

  constructor(message: string) {
    super(429, 'TOO_MANY_PENDING', `${message}; try again in ${PENDING_RETRY_AFTER_SECONDS} s`);
    this.name = 'TooManyPendingError';
  }
}
