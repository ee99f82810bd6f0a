// Linearizable reads waiting on this node (RaftNode.readBarrier): each is named by a
// ctx, confirmed by the core as a ReadState (the commit index when a quorum confirmed
// the leader), and released once this node has applied that index.
import type { ReadState } from '../../raft/types.js';
import type { Clock, Timer } from '../util/clock.js';
import { ProposalTimeoutError } from './errors.js';

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  timer: Timer;
}

export class PendingReads {
  private readonly waiting = new Map<string, Waiter>();
  /** Confirmed reads whose index this node has not applied yet. */
  private readonly awaitingApply: ReadState[] = [];
  private seq = 0;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    /** Told of every confirmed read as it is released (the simulator's checker). */
    private readonly released?: (ctx: string, index: number) => void,
  ) {}

  /** A fresh ctx for a read of node `id`. */
  nextCtx(id: string): string {
    return `${id}:r${++this.seq}`;
  }

  /** Waits for the read `ctx`; rejects with ProposalTimeoutError unless released in time. */
  wait(ctx: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.after(this.timeoutMs, () => {
        this.waiting.delete(ctx);
        reject(new ProposalTimeoutError());
      });
      this.waiting.set(ctx, { resolve, reject, timer });
    });
  }

  /** The core refused the read (no leader): it fails now. */
  refuse(ctx: string, err: Error): void {
    const w = this.waiting.get(ctx);
    if (!w) return;
    this.waiting.delete(ctx);
    w.timer.cancel();
    w.reject(err);
  }

  /** The core confirmed a read at `rs.index`: released once that index is applied. */
  confirmed(rs: ReadState): void {
    this.awaitingApply.push(rs);
  }

  /** Releases every confirmed read at or below `applied`. */
  serve(applied: number): void {
    for (let i = 0; i < this.awaitingApply.length; ) {
      const rs = this.awaitingApply[i];
      if (rs && rs.index <= applied) {
        this.awaitingApply.splice(i, 1);
        this.released?.(rs.ctx, rs.index);
        const w = this.waiting.get(rs.ctx);
        if (w) {
          this.waiting.delete(rs.ctx);
          w.timer.cancel();
          w.resolve();
        }
      } else {
        i++;
      }
    }
  }

  /** The node stops: every read still waiting fails with `err`. */
  rejectAll(err: Error): void {
    for (const w of this.waiting.values()) {
      w.timer.cancel();
      w.reject(err);
    }
    this.waiting.clear();
  }
}
