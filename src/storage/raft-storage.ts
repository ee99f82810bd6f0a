// What the Raft driver (src/node/raft-node.ts) needs of a node's durable storage: the
// LevelDB RaftStore in production, MemoryRaftStorage (memory-storage.ts) in tests and
// the simulators.
import type { InitialState, Ready, Snapshot } from '../../raft/types.js';

/** The part of a ready that is written to disk. */
export type ReadyWrite = Pick<Ready, 'hardState' | 'snapshot' | 'entries'>;

/**
 * A write is durable when save() or saveSnapshot() returns, or when the promise it
 * returns resolves: the driver sends a ready's messages only after that (raft/README.md).
 * A storage that writes synchronously returns nothing, and the driver then runs its
 * whole loop without yielding, which is what deterministic tests step through.
 */
export interface RaftStorage {
  /** What was persisted: the state a node (re)starts from. */
  load(): Promise<InitialState>;
  /**
   * Persists a ready in one atomic write: the hard state; a snapshot, which replaces the
   * whole stored log up to its index and drops the entries after it; the entries, which
   * replace every stored entry from the first one's index on.
   */
  save(rd: ReadyWrite): void | Promise<void>;
  /** Persists a snapshot made by compaction and drops the entries it covers. */
  saveSnapshot(snapshot: Snapshot): void | Promise<void>;
  close(): Promise<void>;
}
