// A node's Raft storage in memory, for tests and the simulators: the same contract as
// the LevelDB RaftStore (raft-storage.ts), plus a crash that loses every write not yet
// durable. It keeps two copies of the disk: `latest`, what the process sees (every
// write it made), and `durable`, what survives a crash.
import type { Entry, HardState, InitialState, Snapshot } from '../../raft/types.js';
import type { Clock, Timer } from '../util/clock.js';
import type { RaftStorage, ReadyWrite } from './raft-storage.js';

export interface MemoryRaftStorageOptions {
  /**
   * How long each write takes to become durable, on `clock`; save() then returns a
   * promise, and a crash meanwhile loses the write. Absent: a write is durable when
   * save() returns, synchronously.
   */
  syncDelayMs?: number;
  clock?: Pick<Clock, 'after'>;
}

/** A disk's contents: hard state, the latest snapshot and the entries after it. */
export interface RaftDisk {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Contiguous entries after the snapshot. */
  entries: Entry[];
}

interface PendingWrite {
  apply(disk: RaftDisk): void;
  resolve(): void;
  timer: Timer;
}

export const EMPTY_RAFT_STATE: InitialState = { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], applied: 0 };

export class MemoryRaftStorage implements RaftStorage {
  private durableDisk: RaftDisk;
  private latest: RaftDisk;
  /** Writes made but not yet durable, oldest first (only with a sync delay). */
  private pending: PendingWrite[] = [];
  /** The newest hard state handed to save(), written or not. */
  private newestHard: HardState | null = null;
  /** Writes lost to crashes, for traces and assertions. */
  lostWrites = 0;

  constructor(
    initial: InitialState = EMPTY_RAFT_STATE,
    private readonly opts: MemoryRaftStorageOptions = {},
  ) {
    if (opts.syncDelayMs !== undefined && !opts.clock) throw new Error('MemoryRaftStorage: a sync delay needs a clock');
    this.durableDisk = { hardState: { ...initial.hardState }, snapshot: initial.snapshot, entries: initial.entries.slice() };
    this.latest = copy(this.durableDisk);
  }

  /** What survives a crash. */
  get durable(): Readonly<RaftDisk> {
    return this.durableDisk;
  }

  get hardState(): HardState {
    return this.durableDisk.hardState;
  }

  get snapshot(): Snapshot | null {
    return this.durableDisk.snapshot;
  }

  get entries(): Entry[] {
    return this.durableDisk.entries;
  }

  snapshotIndex(): number {
    return this.durableDisk.snapshot?.meta.index ?? 0;
  }

  lastIndex(): number {
    return this.snapshotIndex() + this.durableDisk.entries.length;
  }

  /** Writes not yet durable. */
  get unsynced(): number {
    return this.pending.length;
  }

  /**
   * What a (re)start reads, synchronously. The application lives in memory, so it is
   * rebuilt from the snapshot: applied = the snapshot's index.
   */
  initialState(): InitialState {
    const d = this.durableDisk;
    return { hardState: { ...d.hardState }, snapshot: d.snapshot, entries: d.entries.slice(), applied: d.snapshot?.meta.index ?? 0 };
  }

  load(): Promise<InitialState> {
    return Promise.resolve(this.initialState());
  }

  /**
   * As the LevelDB store does: a ready that only moves the commit index is not written
   * (Raft keeps it volatile; a crash loses it), and its hard state goes to disk with the
   * next write.
   */
  save(rd: ReadyWrite): void | Promise<void> {
    if (rd.hardState) this.newestHard = { ...rd.hardState };
    const was = this.latest.hardState;
    const hs = this.newestHard;
    if (rd.entries.length === 0 && rd.snapshot === null && (hs === null || (hs.term === was.term && hs.vote === was.vote))) {
      if (hs) this.latest.hardState = { ...hs };
      return;
    }
    return this.write((disk) => writeReady(disk, { ...rd, hardState: hs }));
  }

  saveSnapshot(snapshot: Snapshot): void | Promise<void> {
    return this.write((disk) => writeSnapshot(disk, snapshot));
  }

  /**
   * The process dies: writes not yet durable are lost, and their promises never settle
   * (nobody is left to see them). The storage can be read and reopened afterwards.
   */
  crash(): void {
    for (const w of this.pending) w.timer.cancel();
    this.lostWrites += this.pending.length;
    this.pending = [];
    this.latest = copy(this.durableDisk);
    this.newestHard = null;
  }

  /** Makes every pending write durable now (a sync that completes early). */
  sync(): void {
    while (this.pending.length > 0) this.completeOldest();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private write(apply: (disk: RaftDisk) => void): void | Promise<void> {
    // Checked against what the process has written so far, so a bad write throws at once.
    apply(this.latest);
    const delay = this.opts.syncDelayMs;
    const clock = this.opts.clock;
    if (delay === undefined || !clock) {
      apply(this.durableDisk);
      return;
    }
    return new Promise<void>((resolve) => {
      // Writes become durable in the order they were made, as on a log-structured disk.
      const timer = clock.after(delay, () => {
        while (this.pending.length > 0 && this.pending[0] !== entry) this.completeOldest();
        if (this.pending[0] === entry) this.completeOldest();
      });
      const entry: PendingWrite = { apply, resolve, timer };
      this.pending.push(entry);
    });
  }

  private completeOldest(): void {
    const w = this.pending.shift();
    if (!w) return;
    w.timer.cancel();
    w.apply(this.durableDisk);
    w.resolve();
  }
}

function copy(d: RaftDisk): RaftDisk {
  return { hardState: { ...d.hardState }, snapshot: d.snapshot, entries: d.entries.slice() };
}

function snapshotIndexOf(d: RaftDisk): number {
  return d.snapshot?.meta.index ?? 0;
}

function writeReady(disk: RaftDisk, rd: ReadyWrite): void {
  if (rd.snapshot) {
    // A received snapshot replaces the whole stored log.
    disk.snapshot = rd.snapshot;
    disk.entries = [];
  }
  const first = rd.entries[0];
  if (first) {
    const base = snapshotIndexOf(disk);
    const last = base + disk.entries.length;
    if (first.index <= base || first.index > last + 1) {
      throw new Error(`raft storage: entries from ${first.index} do not fit a log holding ${base + 1}..${last}`);
    }
    disk.entries = disk.entries.slice(0, first.index - base - 1).concat(rd.entries);
  }
  if (rd.hardState) disk.hardState = { ...rd.hardState };
}

function writeSnapshot(disk: RaftDisk, snapshot: Snapshot): void {
  const base = snapshotIndexOf(disk);
  const last = base + disk.entries.length;
  if (snapshot.meta.index < base || snapshot.meta.index > last) {
    throw new Error(`raft storage: a compaction at ${snapshot.meta.index} is outside the log ${base}..${last}`);
  }
  disk.entries = disk.entries.slice(snapshot.meta.index - base);
  disk.snapshot = snapshot;
}
