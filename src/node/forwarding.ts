// Proposals a follower forwards to its leader (a `prop` frame) and the answers it
// waits for (`propResult`). The leader's side, proposing a forwarded command and
// answering it, is in raft-node.ts; this is the follower's bookkeeping: one waiter per
// request id, failed at once when the leader it went to stops leading, and resolved
// only once this node has applied the entry too (read your writes).
import type { NodeId } from '../../raft/types.js';
import type { Clock, Timer } from '../util/clock.js';
import { NoLeaderError, ProposalLostError, ProposalTimeoutError } from './errors.js';
import type { PeerFrame } from './frames.js';
import { errorFromName } from './raft-node-api.js';

/** How long a follower waits to apply a write it forwarded before answering anyway. */
const APPLY_WAIT_MS = 5000;

type PropResult = Extract<PeerFrame, { k: 'propResult' }>;

interface Forwarded {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: Timer;
  /** The leader the proposal went to. */
  leader: NodeId;
}

export interface ForwardingDeps {
  id: NodeId;
  clock: Clock;
  send: (to: NodeId, frame: PeerFrame) => boolean;
  requestTimeoutMs: number;
  /** Resolves once this node has applied `index`, or after `maxMs`. */
  whenApplied: (index: number, maxMs: number) => Promise<void>;
}

export class ForwardedProposals {
  private readonly waiting = new Map<string, Forwarded>();
  private seq = 0;

  constructor(private readonly deps: ForwardingDeps) {}

  /** Sends `data` to `leader`; settles with the leader's answer, or as lost or timed out. */
  propose(leader: NodeId, data: Uint8Array): Promise<unknown> {
    const id = `${this.deps.id}:${++this.seq}`;
    return new Promise((resolve, reject) => {
      const timer = this.deps.clock.after(this.deps.requestTimeoutMs, () => {
        this.waiting.delete(id);
        reject(new ProposalTimeoutError());
      });
      this.waiting.set(id, { resolve, reject, timer, leader });
      if (!this.deps.send(leader, { k: 'prop', id, data })) {
        timer.cancel();
        this.waiting.delete(id);
        reject(new NoLeaderError());
      }
    });
  }

  /** The leader's answer; one for a request id no longer waiting is ignored. */
  answer(frame: PropResult): void {
    const w = this.waiting.get(frame.id);
    if (!w) return;
    this.waiting.delete(frame.id);
    w.timer.cancel();
    if (!frame.ok) w.reject(errorFromName(frame.error));
    else if (frame.index === undefined) w.resolve(frame.value);
    // Read your writes: the client that wrote through this node reads from it next
    // (a token it just made, a job it just submitted), so answer once applied here.
    else void this.deps.whenApplied(frame.index, APPLY_WAIT_MS).then(() => w.resolve(frame.value));
  }

  /** The node stops: every proposal still waiting fails with `err`. */
  rejectAll(err: Error): void {
    for (const w of this.waiting.values()) {
      w.timer.cancel();
      w.reject(err);
    }
    this.waiting.clear();
  }

  /**
   * A proposal forwarded to a node that no longer leads (it died, or lost an election)
   * would only time out: fail it now as lost, so the caller retries at once with the
   * new leader (commands are idempotent; see src/node/proposer.ts).
   */
  leaderChanged(leader: NodeId | null): void {
    for (const [id, w] of this.waiting) {
      if (w.leader !== leader) {
        this.waiting.delete(id);
        w.timer.cancel();
        w.reject(new ProposalLostError());
      }
    }
  }
}
