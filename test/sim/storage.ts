import type { Entry, HardState, InitialState, NodeId, Ready, Snapshot } from '../../raft/types.js';
import { InvariantViolation } from './checker.js';

/**
 * A node's disk: what survives a crash. The harness writes each ready here in one
 * atomic step (the simulated disk never tears a write); what a node's core holds
 * beyond it is volatile and vanishes with the process.
 */
export class NodeStorage {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Contiguous entries after the snapshot. */
  entries: Entry[];

  constructor(
    readonly node: NodeId,
    initial: InitialState,
  ) {
    this.hardState = { ...initial.hardState };
    this.snapshot = initial.snapshot;
    this.entries = initial.entries.slice();
  }

  snapshotIndex(): number {
    return this.snapshot?.meta.index ?? 0;
  }

  lastIndex(): number {
    return this.snapshotIndex() + this.entries.length;
  }

  /** Ready contract step 1: hard state, snapshot, then entries, all or nothing. */
  persist(rd: Ready): void {
    if (rd.snapshot) {
      // A received snapshot replaces the whole stored log.
      this.snapshot = rd.snapshot;
      this.entries = [];
    }
    const first = rd.entries[0];
    if (first) {
      const base = this.snapshotIndex();
      if (first.index <= base || first.index > this.lastIndex() + 1) {
        throw new InvariantViolation('ready contract', `node ${this.node} must persist entries from ${first.index} but its disk holds ${base + 1}..${this.lastIndex()}`);
      }
      this.entries = this.entries.slice(0, first.index - base - 1).concat(rd.entries);
    }
    if (rd.hardState) this.hardState = { ...rd.hardState };
  }

  /** The driver's half of compaction: keep the application's snapshot, drop the entries it covers. */
  compact(snapshot: Snapshot): void {
    const drop = snapshot.meta.index - this.snapshotIndex();
    if (drop < 0 || snapshot.meta.index > this.lastIndex()) {
      throw new InvariantViolation('ready contract', `node ${this.node} compacted at ${snapshot.meta.index} but its disk holds ${this.snapshotIndex()}..${this.lastIndex()}`);
    }
    this.entries = this.entries.slice(drop);
    this.snapshot = snapshot;
  }

  /**
   * What a restart hands the core. The application's state lives in memory, so after a
   * crash it is rebuilt from the persisted snapshot: applied = the snapshot's index.
   */
  initialState(): InitialState {
    return {
      hardState: { ...this.hardState },
      snapshot: this.snapshot,
      entries: this.entries.slice(),
      applied: this.snapshotIndex(),
    };
  }
}
