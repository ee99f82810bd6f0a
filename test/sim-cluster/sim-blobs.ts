import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { NodeId } from '../../raft/types.js';
import type { BlobKind } from '../../src/blobs/manifest.js';
import type { BlobTransfer } from '../../src/blobs/replicated.js';
import type { GcResult, PutResult } from '../../src/blobs/store.js';
import type { Clock } from '../../src/util/clock.js';
import { FAKE_CHECKPOINT_FILE } from '../../src/worker/fake-runtime.js';
import type { Random } from '../sim/random.js';

/**
 * Blob storage on simulated boxes. Production's ClusterBlobs (src/blobs/replicated.ts)
 * runs unchanged on top: its copy rule, its "too few copies" policy and its repair
 * pass are what the simulator exercises. Underneath, a box's disk is a map in memory
 * that survives the box's crashes, and a copy between boxes takes simulated time and
 * fails when a partition cuts the two boxes or either is down.
 *
 * Blob contents are small JSON texts: a checkpoint bundle's fake-checkpoint.json, or a
 * result's `{jobId, epoch, exitCode, node}`; ids are their hashes, as content
 * addresses are in production. The checker reads them (BlobWorld.content) to tell
 * which attempt a committed checkpoint or an accepted result came from.
 */

/** The content of every blob any box ever stored, by id, and results waiting to be stored by path. */
export class BlobWorld {
  private readonly contents = new Map<string, string>();
  /** exportResult wrote no file: the result's content waits here under its tar path. */
  private readonly results = new Map<string, string>();

  content(id: string): string | undefined {
    return this.contents.get(id);
  }

  remember(kind: BlobKind, content: string): string {
    const id = createHash('sha256').update(`${kind}\n${content}`).digest('hex');
    this.contents.set(id, content);
    return id;
  }

  stageResult(path: string, content: string): void {
    this.results.set(path, content);
  }

  takeResult(path: string): string | undefined {
    const c = this.results.get(path);
    this.results.delete(path);
    return c;
  }
}

interface StoredBlob {
  kind: BlobKind;
  bytes: number;
  storedAtMs: number;
}

function putResult(id: string, kind: BlobKind, bytes: number, isNew: boolean): PutResult {
  return { id, kind, bytes, chunks: 1, newChunks: isNew ? 1 : 0, newBytes: isNew ? bytes : 0, reusedBytes: isNew ? 0 : bytes, dedupeRatio: isNew ? 0 : 1, manifestBytes: 0 };
}

/** One box's blob disk: what ClusterBlobs uses of a BlobStore. */
export class SimBlobDisk {
  private readonly blobs = new Map<string, StoredBlob>();

  constructor(
    private readonly world: BlobWorld,
    private readonly now: () => number,
  ) {}

  async putStream(source: unknown, kind: BlobKind): Promise<PutResult> {
    // The only files put in the simulator are result archives, which the simulated
    // runtime staged by path instead of writing: take the content, drop the stream.
    const stream = source as { path?: unknown; destroy?: () => void; on?: (e: string, f: () => void) => void };
    stream.on?.('error', () => undefined);
    stream.destroy?.();
    const content = typeof stream.path === 'string' ? this.world.takeResult(stream.path) : undefined;
    if (content === undefined) throw new Error(`simulated blob store: nothing staged for ${String(stream.path)}`);
    return this.store(kind, content);
  }

  async putFolder(dir: string, kind: BlobKind): Promise<PutResult> {
    return this.store(kind, readFileSync(join(dir, FAKE_CHECKPOINT_FILE), 'utf8'));
  }

  async has(id: string): Promise<boolean> {
    return this.blobs.has(id);
  }

  hasNow(id: string): boolean {
    return this.blobs.has(id);
  }

  async readStream(id: string): Promise<Readable> {
    const content = this.world.content(id);
    if (!this.blobs.has(id) || content === undefined) throw new Error(`blob ${id} is not on this box`);
    return Readable.from([Buffer.from(content)]);
  }

  async exportFolder(id: string, dir: string): Promise<void> {
    const content = this.world.content(id);
    if (!this.blobs.has(id) || content === undefined) throw new Error(`blob ${id} is not on this box`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, FAKE_CHECKPOINT_FILE), content);
  }

  async gc(keep: ReadonlySet<string>, opts: { minAgeMs?: number } = {}): Promise<GcResult> {
    const r: GcResult = { keptChunks: 0, keptBytes: 0, deletedChunks: 0, deletedBytes: 0, absentKept: [] };
    const now = this.now();
    for (const [id, b] of this.blobs) {
      if (keep.has(id) || now - b.storedAtMs < (opts.minAgeMs ?? 0)) {
        r.keptChunks += 1;
        r.keptBytes += b.bytes;
      } else {
        this.blobs.delete(id);
        r.deletedChunks += 1;
        r.deletedBytes += b.bytes;
      }
    }
    for (const id of keep) if (!this.blobs.has(id)) r.absentKept.push(id);
    return r;
  }

  /** A copy arrived from another box. */
  receive(id: string, kind: BlobKind, bytes: number): void {
    if (!this.blobs.has(id)) this.blobs.set(id, { kind, bytes, storedAtMs: this.now() });
  }

  get(id: string): StoredBlob | undefined {
    return this.blobs.get(id);
  }

  private store(kind: BlobKind, content: string): PutResult {
    const id = this.world.remember(kind, content);
    const bytes = Buffer.byteLength(content);
    const isNew = !this.blobs.has(id);
    if (isNew) this.blobs.set(id, { kind, bytes, storedAtMs: this.now() });
    return putResult(id, kind, bytes, isNew);
  }
}

/** What a transfer needs to know about the boxes and the network between them. */
export interface BlobFabric {
  /** The box's disk while it is up; null while it is down. */
  diskOf(id: NodeId): SimBlobDisk | null;
  /** Whether the bulk connection from `a` to `b` (both ways: HTTP) is cut. */
  cut(a: NodeId, b: NodeId): boolean;
}

export interface TransferTiming {
  /** A copy takes this long, drawn uniformly. */
  minMs: number;
  maxMs: number;
  /** How long a request to an unreachable box hangs before it fails (the bulk agent's connect timeout). */
  unreachableMs: number;
}

/** One incarnation's bulk transfers (BlobPeer in production); its waits die with its clock. */
export class SimBlobTransfer implements BlobTransfer {
  constructor(
    private readonly self: NodeId,
    private readonly clock: Clock,
    private readonly fabric: BlobFabric,
    private readonly random: Random,
    private readonly timing: TransferTiming,
  ) {}

  async push(id: string, to: NodeId): Promise<unknown> {
    await this.copy(id, this.self, to);
    return { ok: true };
  }

  async fetch(id: string, holders: readonly NodeId[]): Promise<unknown> {
    let last: unknown = new Error(`no holder of ${id} to fetch from`);
    for (const from of holders) {
      try {
        await this.copy(id, from, this.self);
        return { from };
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  /** Copies blob `id` from box `from` to box `to`, checking the link and both boxes at the start and at the end. */
  private async copy(id: string, from: NodeId, to: NodeId): Promise<void> {
    const problem = (): string | null => {
      const source = this.fabric.diskOf(from);
      if (source === null || this.fabric.diskOf(to) === null || this.fabric.cut(from, to)) return `${from} -> ${to} unreachable`;
      if (!source.hasNow(id)) return `${from} has no blob ${id}`;
      return null;
    };
    const before = problem();
    if (before !== null) {
      await this.clock.sleep(before.endsWith('unreachable') ? this.timing.unreachableMs : this.timing.minMs);
      throw new Error(before);
    }
    await this.clock.sleep(this.random.int(this.timing.minMs, this.timing.maxMs));
    const after = problem();
    if (after !== null) throw new Error(after);
    const stored = this.fabric.diskOf(from)?.get(id);
    if (!stored) throw new Error(`${from} has no blob ${id}`);
    this.fabric.diskOf(to)?.receive(id, stored.kind, stored.bytes);
  }
}
