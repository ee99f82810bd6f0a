// The follower's side of InstallSnapshot: the leader sends a snapshot in chunks, in
// order, and the follower asks for the chunk it wants next. A chunk that does not
// follow what has arrived (lost, duplicated, or of another snapshot) is answered with
// the offset the follower needs; a chunk at offset 0 always starts over.
import type { Snapshot, SnapshotChunkMessage, SnapshotMeta } from './types.js';

export type ChunkOutcome =
  /** Not complete yet: ask the leader for the chunk at `nextOffset`. */
  | { nextOffset: number }
  /** The last chunk arrived: the whole snapshot. */
  | { snapshot: Snapshot };

export class SnapshotAssembler {
  private receiving: { meta: SnapshotMeta; chunks: Uint8Array[]; bytes: number } | null = null;

  add(m: SnapshotChunkMessage): ChunkOutcome {
    const r = this.receiving;
    const same = r !== null && r.meta.index === m.meta.index && r.meta.term === m.meta.term;
    if (m.offset !== 0 && (!same || r.bytes !== m.offset)) return { nextOffset: same ? r.bytes : 0 };
    const recv = m.offset === 0 ? { meta: m.meta, chunks: [], bytes: 0 } : r;
    if (recv === null) return { nextOffset: 0 };
    this.receiving = recv;
    recv.chunks.push(m.data);
    recv.bytes += m.data.length;
    if (recv.bytes < m.totalBytes) return { nextOffset: recv.bytes };
    this.receiving = null;
    return { snapshot: { meta: m.meta, data: concatBytes(recv.chunks, recv.bytes) } };
  }
}

function concatBytes(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
