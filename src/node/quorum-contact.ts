// A leader's proof that it still leads, for what it grants on its own authority (node
// leases, leases.ts).
//
// The argument. Say this node leads term T and, at time t, a quorum Q1 of voters
// (itself included) answered, in term T, heartbeats it sent at times ≥ t − W. Say a
// leader of a later term T' was elected at time E by a quorum Q2 (quorums of the
// configurations in force meet: membership changes one voter at a time). If this node
// is in Q2, it voted in T' before E and led T no more after that: t < E. Otherwise Q1
// and Q2 share another voter v. v answered in term T a heartbeat sent at s ≥ t − W,
// so it received it at r ≥ s; and v answers nothing in term T once it has voted in
// T', so r precedes v's vote, which precedes E. Either way t < E + W: a leader that
// checks its quorum contact over a window W before each grant grants nothing later
// than W after any later leader's election. This uses only terms and quorum
// intersection: not the voters' leader lease (which leadership transfers and the
// leader-unreachable hint skip), nor any bound on message delays or clock offsets
// (each node measures only its own intervals).
//
// It holds only if each answer is credited with the SEND time of the heartbeat it
// answers: an answer's arrival time says nothing about when the voter heard from the
// leader, and a delayed answer would stretch the leader's authority by the delay.
// Answers carry no send time, but a heartbeat's `ctx` comes back in its answer, so the
// leader sends heartbeats with a ctx of its own (contact probes: ReadIndex rounds
// nobody waits for; followers' ReadIndex rounds count too) and keeps their send times.
// Answers to appends, snapshot chunks and heartbeats without a ctx credit nothing.
import type { Message, NodeId, RaftStatus } from '../../raft/types.js';

/** Send times kept for heartbeat rounds: enough for the answers in flight, bounded. */
const MAX_ROUNDS_KEPT = 256;

export class QuorumContact {
  /** Send time (monotonic ms) of each heartbeat round that carried a ctx, oldest first. */
  private readonly sentAt = new Map<string, number>();
  /** Per voter, the send time of the newest heartbeat round it answered, and the term of that answer. */
  private readonly answered = new Map<NodeId, { term: number; sentMs: number }>();
  private probes = 0;

  constructor(
    private readonly self: NodeId,
    /** UNSAFE, tests only (UnsafeDriverKnobs.creditAnswerArrival). */
    private readonly creditArrival = false,
  ) {}

  /** A ctx for a contact probe: never a client read's. */
  nextProbeCtx(): string {
    return `${this.self}:q${++this.probes}`;
  }

  isProbe(ctx: string): boolean {
    return ctx.startsWith(`${this.self}:q`);
  }

  /** A ready's messages, before they are sent: the send time of each heartbeat round with a ctx (its first send). */
  noteSent(messages: readonly Message[], nowMs: number): void {
    for (const m of messages) {
      if (m.type !== 'heartbeat' || m.ctx === null || this.sentAt.has(m.ctx)) continue;
      this.sentAt.set(m.ctx, nowMs);
      if (this.sentAt.size > MAX_ROUNDS_KEPT) this.sentAt.delete(this.sentAt.keys().next().value as string);
    }
  }

  /** A message from `from` that the core accepted, now: an answer to a known heartbeat round credits the round's send time. */
  noteAnswer(from: NodeId, m: Message, nowMs: number): void {
    const sentMs = this.creditArrival ? (m.type === 'heartbeatResp' || m.type === 'appResp' || m.type === 'snapResp' ? nowMs : undefined) : this.roundSentMs(m);
    if (sentMs === undefined) return;
    const before = this.answered.get(from);
    // A stale answer of an older term never replaces a newer one.
    if (before === undefined || m.term > before.term || (m.term === before.term && before.sentMs < sentMs)) this.answered.set(from, { term: m.term, sentMs });
  }

  private roundSentMs(m: Message): number | undefined {
    return m.type === 'heartbeatResp' && m.ctx !== null ? this.sentAt.get(m.ctx) : undefined;
  }

  /** Whether `st` is a leader a quorum of whose voters (itself included) answered, in its term, heartbeats it sent within `windowMs` before `nowMs`. */
  has(st: RaftStatus, windowMs: number, nowMs: number): boolean {
    if (st.role !== 'leader') return false;
    let heard = 0;
    for (const id of st.conf.voters) {
      const a = this.answered.get(id);
      if (id === this.self || (a !== undefined && a.term === st.term && nowMs - a.sentMs <= windowMs)) heard++;
    }
    return heard >= Math.floor(st.conf.voters.length / 2) + 1;
  }
}
