// Local proposals waiting to be applied (RaftNode.propose on the leader): each by the
// log index and term the core appended it at. The entry applied at that index settles
// it: with the application's result if it is the same entry (same term), as lost if
// another leader's entry took the index, or a snapshot covered it.
import type { Clock, Timer } from '../util/clock.js';
import { ProposalLostError, ProposalTimeoutError } from './errors.js';

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: Timer;
  term: number;
}

export class PendingProposals {
  private readonly waiting = new Map<number, Waiter>();

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  /** Waits for the entry appended at (`index`, `term`); rejects with ProposalTimeoutError unless applied in time. */
  wait(index: number, term: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.after(this.timeoutMs, () => {
        this.waiting.delete(index);
        reject(new ProposalTimeoutError());
      });
      this.waiting.set(index, { resolve, reject, timer, term });
    });
  }

  /** The entry at `index` of `term` was applied with `result`. */
  applied(index: number, term: number, result: unknown): void {
    const w = this.waiting.get(index);
    if (w) this.settle(index, w, w.term === term ? null : new ProposalLostError(), result);
  }

  /** A snapshot up to `index` was installed: proposals it covers are lost (their entries may not be in it). */
  coveredBySnapshot(index: number): void {
    for (const [i, w] of this.waiting) if (i <= index) this.settle(i, w, new ProposalLostError());
  }

  /** The node stops: every proposal still waiting fails with `err`. */
  rejectAll(err: Error): void {
    for (const [i, w] of this.waiting) this.settle(i, w, err);
  }

  private settle(index: number, w: Waiter, err: Error | null, value?: unknown): void {
    this.waiting.delete(index);
    w.timer.cancel();
    if (err) w.reject(err);
    else w.resolve(value);
  }
}
