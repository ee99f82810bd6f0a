import { assert } from './assert.js';
import type { Entry, Snapshot } from './types.js';

/** Bytes a normal entry counts for beyond its data (index, term, framing). */
const ENTRY_OVERHEAD_BYTES = 16;
/** Bytes a membership change counts for. */
const CONF_CHANGE_ENTRY_BYTES = 64;

/** Bytes a normal entry carrying `dataBytes` counts for in flow control and batching. */
export function normalEntrySizeBytes(dataBytes: number): number {
  return dataBytes + ENTRY_OVERHEAD_BYTES;
}

/** Bytes an entry counts for in flow control and batching. */
export function entrySizeBytes(e: Entry): number {
  return e.type === 'normal' ? normalEntrySizeBytes(e.data.length) : CONF_CHANGE_ENTRY_BYTES;
}

/**
 * The node's log, kept whole in memory after the latest snapshot (compaction keeps it
 * small). Index bookkeeping, from low to high:
 *   snapIndex ≤ applied ≤ applying ≤ committed ≤ lastIndex, and stable ≤ lastIndex.
 * `stable` is the last index the driver has persisted; entries after it are handed
 * out in the next ready(). `applying` is what a ready handed out to apply but the
 * driver has not yet confirmed with advance().
 *
 * Its state changes only through its methods, which keep that order; the fields are
 * read-only from outside.
 */
export class RaftLog {
  #snapIndex: number;
  #snapTerm: number;
  /** entries[i].index === snapIndex + 1 + i */
  #entries: Entry[];
  #committed: number;
  #applied: number;
  #applying: number;
  #stable: number;
  #snapshot: Snapshot | null;
  #pendingSnapshot: Snapshot | null = null;

  constructor(snapshot: Snapshot | null, entries: Entry[], committed: number, applied: number) {
    this.#snapshot = snapshot;
    this.#snapIndex = snapshot?.meta.index ?? 0;
    this.#snapTerm = snapshot?.meta.term ?? 0;
    this.#entries = entries.slice();
    entries.forEach((e, i) => assert(e.index === this.#snapIndex + 1 + i, `initial entry ${i} has index ${e.index}, expected ${this.#snapIndex + 1 + i}`));
    this.#stable = this.lastIndex();
    assert(committed <= this.lastIndex(), `persisted commit ${committed} is beyond the last index ${this.lastIndex()}`);
    this.#committed = Math.max(committed, this.#snapIndex);
    this.#applied = Math.max(applied, this.#snapIndex);
    assert(this.#applied <= this.#committed, `applied ${this.#applied} is beyond commit ${this.#committed}`);
    this.#applying = this.#applied;
  }

  get committed(): number {
    return this.#committed;
  }

  get applied(): number {
    return this.#applied;
  }

  get applying(): number {
    return this.#applying;
  }

  get stable(): number {
    return this.#stable;
  }

  /** The newest snapshot this node has (made locally or received): what the leader sends. */
  get snapshot(): Snapshot | null {
    return this.#snapshot;
  }

  /** A snapshot received from the leader, not yet persisted and applied. */
  get pendingSnapshot(): Snapshot | null {
    return this.#pendingSnapshot;
  }

  firstIndex(): number {
    return this.#snapIndex + 1;
  }

  lastIndex(): number {
    return this.#snapIndex + this.#entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** The term of entry `index`, or undefined when it is compacted or beyond the log. */
  term(index: number): number | undefined {
    if (index === this.#snapIndex) return this.#snapTerm;
    if (index < this.#snapIndex || index > this.lastIndex()) return undefined;
    return this.entry(index).term;
  }

  entry(index: number): Entry {
    const e = this.#entries[index - this.#snapIndex - 1];
    assert(e !== undefined, `no entry ${index} in log (${this.firstIndex()}..${this.lastIndex()})`);
    return e;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ours = this.lastTerm();
    return lastTerm > ours || (lastTerm === ours && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, lastIndex], at least one (if any), at most maxBytes otherwise. */
  entriesFrom(lo: number, maxBytes: number): Entry[] {
    assert(lo > this.#snapIndex, `entries from ${lo} are compacted (first index ${this.firstIndex()})`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= this.lastIndex(); i++) {
      const e = this.entry(i);
      bytes += entrySizeBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (fast log backtracking).
   * Returns the snapshot index with term 0 when the search reaches compacted entries.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = Math.min(index, this.lastIndex()); i >= this.#snapIndex; i--) {
      const t = this.term(i);
      if (t === undefined) break;
      if (t <= term) return { index: i, term: t };
    }
    return { index: this.#snapIndex, term: 0 };
  }

  /** Appends, truncating any conflicting suffix. Committed entries are never replaced. */
  append(ents: Entry[]): void {
    const first = ents[0];
    if (first === undefined) return;
    assert(first.index > this.#committed, `append at ${first.index} would overwrite committed entries (commit ${this.#committed})`);
    assert(first.index <= this.lastIndex() + 1, `append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    this.#entries.length = first.index - this.#snapIndex - 1;
    for (const e of ents) this.#entries.push(e);
    this.#stable = Math.min(this.#stable, first.index - 1);
  }

  /**
   * The follower side of AppendEntries: if the entry at `index` has term `logTerm`,
   * append `ents` (skipping those already present) and return the last index they
   * cover; otherwise undefined.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const conflict = ents.find((e) => !this.matchTerm(e.index, e.term));
    if (conflict !== undefined) {
      assert(conflict.index > this.#committed, `entry ${conflict.index} conflicts with a committed entry (commit ${this.#committed})`);
      this.append(ents.slice(conflict.index - index - 1));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  commitTo(index: number): void {
    if (index <= this.#committed) return;
    assert(index <= this.lastIndex(), `commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.#committed = index;
  }

  unstableEntries(): Entry[] {
    return this.#entries.slice(this.#stable - this.#snapIndex);
  }

  /** Committed entries not yet handed out for applying. */
  nextCommittedEntries(): Entry[] {
    const from = Math.max(this.#applying, this.#pendingSnapshot?.meta.index ?? 0) + 1;
    if (from > this.#committed) return [];
    return this.#entries.slice(from - this.#snapIndex - 1, this.#committed - this.#snapIndex);
  }

  /** A ready handed out `snapshot` (if any) and `entries` to apply: they are not handed out again. */
  markApplying(snapshot: Snapshot | null, entries: Entry[]): void {
    if (snapshot) this.#applying = Math.max(this.#applying, snapshot.meta.index);
    const last = entries.at(-1);
    if (last) this.#applying = last.index;
  }

  /** The driver applied what a ready handed out (advance()): `snapshot` (if any), then `entries`. */
  markApplied(snapshot: Snapshot | null, entries: Entry[]): void {
    if (snapshot) {
      if (this.#pendingSnapshot === snapshot) this.#pendingSnapshot = null;
      this.#applied = Math.max(this.#applied, snapshot.meta.index);
    }
    const last = entries.at(-1);
    if (last) this.#applied = last.index;
    this.#applying = Math.max(this.#applying, this.#applied);
  }

  stableTo(index: number, term: number): void {
    // A later append may have truncated what the ready carried; only a matching entry is stable.
    if (this.matchTerm(index, term) && index > this.#stable) this.#stable = index;
  }

  /** Installs a snapshot from the leader: the whole log is replaced by it. */
  restore(snapshot: Snapshot): void {
    this.#snapIndex = snapshot.meta.index;
    this.#snapTerm = snapshot.meta.term;
    this.#entries = [];
    this.#committed = snapshot.meta.index;
    this.#stable = snapshot.meta.index;
    this.#snapshot = snapshot;
    this.#pendingSnapshot = snapshot;
  }

  /** Drops the entries the application's snapshot at `snapshot.meta.index` covers. */
  compact(snapshot: Snapshot): void {
    const index = snapshot.meta.index;
    assert(index <= this.#applied && index <= this.#stable, `compaction at ${index} beyond applied ${this.#applied} or stable ${this.#stable}`);
    assert(index >= this.#snapIndex, `compaction at ${index} is older than the current snapshot ${this.#snapIndex}`);
    this.#entries = this.#entries.slice(index - this.#snapIndex);
    this.#snapIndex = index;
    this.#snapTerm = snapshot.meta.term;
    this.#snapshot = snapshot;
  }
}
