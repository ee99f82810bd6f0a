// The leader's side of log replication: what it sends each follower (appends,
// heartbeats, snapshot chunks) and what the follower's answers tell it about that
// follower's log. The per-follower flow control (probe, replicate, snapshot) is in
// raft/progress.ts; deciding what commits, and everything a leader does beyond its
// followers' logs, stays in raft/raft.ts.
import { assert } from './assert.js';
import { entrySizeBytes, type RaftLog } from './log.js';
import type { Progress, ProgressTracker } from './progress.js';
import type { AppendResponseMessage, HeartbeatResponseMessage, Message, NodeId, RaftConfig, SnapshotResponseMessage } from './types.js';

type Limits = Pick<RaftConfig, 'maxSizePerMsgBytes' | 'maxInflightMsgs' | 'maxInflightBytes' | 'snapshotChunkBytes'>;

export class Replicator {
  constructor(
    private readonly self: NodeId,
    private readonly limits: Limits,
    private readonly log: RaftLog,
    private readonly tracker: ProgressTracker,
    /** The leader's term: every message carries it. */
    private readonly term: () => number,
    private readonly send: (m: Message) => void,
  ) {}

  /** Sends one append (or starts a snapshot) to `to`; returns whether an append with entries went out. */
  sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.get(to);
    if (!pr || to === this.self) return false;
    if (pr.isPaused(this.limits.maxInflightMsgs, this.limits.maxInflightBytes)) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) {
      this.startSnapshot(to, pr);
      return false;
    }
    const entries = pr.next <= this.log.lastIndex() ? this.log.entriesFrom(pr.next, this.limits.maxSizePerMsgBytes) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'app', to, term: this.term(), index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed, from: this.self });
    pr.commitSent = Math.max(pr.commitSent, this.log.committed);
    const last = entries.at(-1);
    if (last) pr.sentEntries(last.index, entries.reduce((n, e) => n + entrySizeBytes(e), 0));
    return last !== undefined;
  }

  /** Sends `to` every append its in-flight window allows. */
  fillPipeline(to: NodeId): void {
    while (this.sendAppend(to, false)) {
      // each call sends one batch
    }
  }

  broadcastAppend(sendIfEmpty: boolean): void {
    for (const id of this.tracker.peers(this.self)) {
      if (this.sendAppend(id, sendIfEmpty)) this.fillPipeline(id);
    }
  }

  /** A heartbeat to every follower (the learners too, unless `learners` is false); `ctx` names the ReadIndex round it confirms, if any. */
  broadcastHeartbeat(ctx: string | null, learners = true): void {
    for (const id of this.tracker.peers(this.self)) {
      if (!learners && this.tracker.get(id)?.learner === true) continue;
      const pr = this.tracker.get(id);
      if (!pr) continue;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed);
      this.send({ type: 'heartbeat', to: id, term: this.term(), commit, ctx, from: this.self });
      pr.commitSent = Math.max(pr.commitSent, commit);
    }
  }

  /**
   * An append, empty if need be, to each follower that holds entries the leader has
   * committed since it last told that follower its commit index.
   */
  announceCommit(): void {
    for (const id of this.tracker.peers(this.self)) {
      const pr = this.tracker.get(id);
      if (pr && Math.min(pr.match, this.log.committed) > pr.commitSent) this.sendAppend(id, true);
    }
  }

  /**
   * Updates the follower's progress from its answer to an append. Returns null when
   * there is nothing more to do (an unknown sender, a forged index, a rejection, which
   * is answered here, or no progress); otherwise the follower's match moved, and
   * `wasPaused` says whether its window was full before.
   */
  onAppendResponse(m: AppendResponseMessage): { wasPaused: boolean } | null {
    const pr = this.tracker.get(m.from);
    if (!pr) return null;
    // An answer to an append of this term names an index of this leader's log, which
    // only grows during its term: anything beyond it was forged, and would send the
    // follower's progress past the log's end.
    if (m.index > this.log.lastIndex()) return null;
    pr.recentActive = true;
    if (m.reject) {
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, false);
      }
      return null;
    }
    const wasPaused = pr.isPaused(this.limits.maxInflightMsgs, this.limits.maxInflightBytes);
    if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === 'probe')) return null;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);
    return { wasPaused };
  }

  /** Catches up a follower after its heartbeat answer; false when the sender is not tracked. */
  onHeartbeatResponse(m: HeartbeatResponseMessage): boolean {
    const pr = this.tracker.get(m.from);
    if (!pr) return false;
    pr.recentActive = true;
    pr.probeSent = false;
    // An append lost in the pipeline leaves `next` beyond what the follower has and no
    // new proposal may come to expose the gap: no progress across two heartbeat
    // rounds while behind means probe again from `match`.
    if (pr.state === 'replicate' && pr.match < this.log.lastIndex() && pr.match === pr.matchAtLastHeartbeat) pr.becomeProbe();
    pr.matchAtLastHeartbeat = pr.match;
    if (pr.state === 'snapshot') this.sendSnapshotChunk(m.from, pr); // a chunk may have been lost
    // A follower in probe (e.g. a member just added to an idle cluster, whose `next`
    // is past the last index) gets an append even without entries, to find its match.
    // In replicate, a lost append is caught by the stall check above.
    else if (pr.state === 'probe') this.sendAppend(m.from, true);
    else if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, false);
    return true;
  }

  /** The follower wants the chunk at `nextOffset` of the snapshot being sent. */
  onSnapshotResponse(m: SnapshotResponseMessage): void {
    const pr = this.tracker.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (pr.state !== 'snapshot' || pr.pendingSnapshot !== m.snapIndex) return;
    pr.snapshotOffset = m.nextOffset;
    this.sendSnapshotChunk(m.from, pr);
  }

  private startSnapshot(to: NodeId, pr: Progress): void {
    const snap = this.log.snapshot;
    assert(snap !== null, `follower ${to} needs entries before ${this.log.firstIndex()} but there is no snapshot`);
    pr.becomeSnapshot(snap.meta.index);
    this.sendSnapshotChunk(to, pr);
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = this.log.snapshot;
    if (!snap) return;
    // A newer local snapshot replaces the one being sent: start it over.
    if (snap.meta.index !== pr.pendingSnapshot) pr.becomeSnapshot(snap.meta.index);
    const offset = Math.min(pr.snapshotOffset, snap.data.length);
    const data = snap.data.subarray(offset, offset + this.limits.snapshotChunkBytes);
    this.send({ type: 'snap', to, term: this.term(), meta: snap.meta, offset, totalBytes: snap.data.length, data, from: this.self });
  }
}
