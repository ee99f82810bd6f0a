// The node-local content-addressed blob store. A blob is a list of chunks (its
// manifest), stored one file per chunk (chunk-files.ts); the manifest is a chunk too
// (blob id = sha256:<its hash>). Before a put or a fetch reports success, the folders
// its renames touched are fsynced, so what it reported survives a crash.
//
// Reads never trust the disk: a chunk is hashed before its bytes are handed out.
// Memory is bounded by the largest chunk (1 MiB): content is streamed chunk by chunk.
//
// gc runs alone: puts, fetches and exports hold it off while they run (a shared/
// exclusive lock), so it never deletes a chunk that a put is about to reference.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, open, readFile, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { WorkrsError } from '../errors.js';
import { Chunker, DEFAULT_CHUNKING, type ChunkingParams } from './chunker.js';
import { asBuffer, assertEmptyOrAbsent, ChunkFiles, isNotFound, listFiles, syncDirs, writeAll, type ByteSource } from './chunk-files.js';
import { BlobCorruptError, BlobIncompleteError, BlobManifestError, BlobNotFoundError } from './errors.js';
import {
  MANIFEST_VERSION,
  MAX_MANIFEST_BYTES,
  blobIdOf,
  encodeManifest,
  manifestHashOf,
  parseManifest,
  sha256Hex,
  uniqueChunks,
  type BlobKind,
  type ChunkRef,
  type FileEntry,
  type Manifest,
} from './manifest.js';
import { SharedExclusiveLock } from './shared-exclusive-lock.js';

export { syncDirs, type ByteSource } from './chunk-files.js';

export interface BlobStoreOptions {
  logger?: Logger;
  chunking?: ChunkingParams; // default 64 KiB / 256 KiB / 1 MiB
}

/** What one put stored. */
export interface PutResult {
  id: string;
  kind: BlobKind;
  bytes: number; // content bytes of the blob
  chunks: number; // chunk references in the blob (repeats counted)
  newChunks: number; // chunk files this put wrote
  newBytes: number; // content bytes this put wrote
  reusedBytes: number; // content bytes already stored (by earlier puts or earlier in this one)
  /** reusedBytes / bytes: the fraction of the content that dedupe saved (0 for an empty blob). */
  dedupeRatio: number;
  manifestBytes: number;
}

export interface StoreStat {
  chunks: number; // chunk files, manifests included
  bytes: number; // their total size
}

export interface GcOptions {
  /** Chunks younger than this are kept even when unreferenced (a blob being built outside the lock). Default 0. */
  minAgeMs?: number;
}

export interface GcResult {
  keptChunks: number;
  keptBytes: number;
  deletedChunks: number;
  deletedBytes: number;
  /** Ids in `keep` with no readable manifest here (nothing of theirs could be protected). */
  absentKept: string[];
}

export interface VerifyOptions {
  /** Hash every chunk (true) or only check that each is present with its size (false). */
  verify?: boolean;
}

const WRITES_IN_FLIGHT = 4;

interface PutSession {
  newChunks: number;
  newBytes: number;
  reusedBytes: number;
  chunkRefs: number;
  writing: Set<string>; // chunks this put has written or is writing
  dirs: Set<string>; // folders whose entries changed: fsynced before the put reports success
}

export class BlobStore {
  /** Blob ids stored or received by this process, with when: gc keeps the young ones. */
  private readonly recent = new Map<string, number>();
  readonly dir: string;
  private readonly files: ChunkFiles;
  private readonly log: Logger;
  private readonly chunking: ChunkingParams;
  private readonly lock = new SharedExclusiveLock();
  private last: PutResult | null = null;

  /** Opens (creating if needed) a store in `dir` and removes temp files a crash left behind. */
  static async open(dir: string, opts: BlobStoreOptions = {}): Promise<BlobStore> {
    const store = new BlobStore(dir, opts);
    await store.files.prepare();
    return store;
  }

  private constructor(dir: string, opts: BlobStoreOptions) {
    this.dir = dir;
    this.chunking = opts.chunking ?? DEFAULT_CHUNKING;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'blobs' });
    this.files = new ChunkFiles(dir, this.log);
  }

  /** Stats of the most recent put that finished on this store, or null. */
  get lastPut(): PutResult | null {
    return this.last;
  }

  // ---- putting ----

  /** Stores a folder (a checkpoint bundle): each regular file chunked on its own; subfolders walked; anything else refused. */
  async putFolder(folder: string, kind: BlobKind): Promise<PutResult> {
    return this.lock.shared(async () => {
      const session = newSession();
      const files: FileEntry[] = [];
      for (const path of await listFiles(folder)) {
        const abs = join(folder, ...path.split('/'));
        const st = await lstat(abs);
        const { chunks, bytes } = await this.putChunks(createReadStream(abs), session);
        files.push({ path, mode: st.mode & 0o7777, bytes, chunks });
      }
      const bytes = files.reduce((n, f) => n + f.bytes, 0);
      return this.finishPut({ version: MANIFEST_VERSION, kind, bytes, chunks: [], files }, session);
    });
  }

  /** Stores a byte stream (a tar, a result) in its order. */
  async putStream(source: ByteSource, kind: BlobKind): Promise<PutResult> {
    return this.lock.shared(async () => {
      const session = newSession();
      const { chunks, bytes } = await this.putChunks(source, session);
      return this.finishPut({ version: MANIFEST_VERSION, kind, bytes, chunks }, session);
    });
  }

  async putBuffer(data: Uint8Array, kind: BlobKind): Promise<PutResult> {
    return this.putStream([data], kind);
  }

  // Chunk writes overlap (up to WRITES_IN_FLIGHT, each ≤ 1 MiB held): a write waits
  // mostly on its fsync, and a put writing one at a time ran at a third of the speed.
  private async putChunks(source: ByteSource, session: PutSession): Promise<{ chunks: ChunkRef[]; bytes: number }> {
    const chunker = new Chunker(this.chunking);
    const chunks: ChunkRef[] = [];
    const inFlight = new Set<Promise<void>>();
    let failed: { err: unknown } | null = null;
    let bytes = 0;
    const store = async (data: Buffer): Promise<void> => {
      const hash = sha256Hex(data);
      chunks.push({ hash, bytes: data.length });
      bytes += data.length;
      session.chunkRefs += 1;
      if (session.writing.has(hash)) {
        session.reusedBytes += data.length; // a repeat within this put, its first copy being written
        return;
      }
      session.writing.add(hash);
      const write = this.files.write(hash, data, session.dirs).then(
        (written) => {
          if (written) {
            session.newChunks += 1;
            session.newBytes += data.length;
          } else {
            session.reusedBytes += data.length;
          }
        },
        (err: unknown) => {
          failed ??= { err };
        },
      );
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write));
      if (inFlight.size >= WRITES_IN_FLIGHT) await Promise.race(inFlight);
    };
    const throwIfFailed = (): void => {
      const f = failed as { err: unknown } | null;
      if (f !== null) throw f.err;
    };
    try {
      for await (const piece of source) {
        for (const chunk of chunker.push(asBuffer(piece))) {
          await store(chunk);
          throwIfFailed();
        }
      }
      const tail = chunker.end();
      if (tail !== null) await store(tail);
    } finally {
      await Promise.all(inFlight); // never rejects: failures land in `failed`
    }
    throwIfFailed();
    return { chunks, bytes };
  }

  private async finishPut(manifest: Manifest, session: PutSession): Promise<PutResult> {
    const manifestBytes = encodeManifest(manifest);
    const id = blobIdOf(manifestBytes);
    this.recent.set(id, Date.now());
    await this.files.write(manifestHashOf(id), manifestBytes, session.dirs);
    await syncDirs(session.dirs);
    const result: PutResult = {
      id,
      kind: manifest.kind,
      bytes: manifest.bytes,
      chunks: session.chunkRefs,
      newChunks: session.newChunks,
      newBytes: session.newBytes,
      reusedBytes: session.reusedBytes,
      dedupeRatio: manifest.bytes === 0 ? 0 : session.reusedBytes / manifest.bytes,
      manifestBytes: manifestBytes.length,
    };
    this.last = result;
    this.log.debug(result, 'blob stored');
    return result;
  }

  // ---- reading ----

  /** The blob's manifest, checked against its id. BlobNotFoundError when absent, BlobCorruptError when it does not hash to the id. */
  async manifest(id: string): Promise<Manifest> {
    const bytes = await this.manifestBytes(id);
    if (bytes === null) throw new BlobNotFoundError(id);
    return parseManifest(bytes, `blob ${id}`);
  }

  /** The manifest's stored bytes after checking their hash, or null when absent. */
  async manifestBytes(id: string): Promise<Buffer | null> {
    const hash = manifestHashOf(id);
    const path = this.chunkPath(hash);
    let bytes: Buffer;
    try {
      const st = await stat(path);
      if (st.size > MAX_MANIFEST_BYTES) throw new BlobCorruptError(`manifest of ${id} is ${st.size} bytes, more than any manifest (${MAX_MANIFEST_BYTES})`);
      bytes = await readFile(path);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    if (sha256Hex(bytes) !== hash) throw new BlobCorruptError(`manifest of ${id} on disk does not hash to its id (${path})`);
    return bytes;
  }

  /** True when the manifest and every chunk are here (and, by default, hash to their names). */
  async has(id: string, opts: VerifyOptions = {}): Promise<boolean> {
    let manifest: Manifest;
    try {
      manifest = await this.manifest(id);
    } catch (err) {
      if (err instanceof BlobNotFoundError || err instanceof BlobCorruptError || err instanceof BlobManifestError) return false;
      throw err;
    }
    return (await this.missingOf(manifest, opts.verify ?? true)).length === 0;
  }

  /** The chunks of the blob not (intact) here, each once. BlobNotFoundError without the manifest. */
  async missingChunks(id: string, opts: VerifyOptions = {}): Promise<ChunkRef[]> {
    return this.missingOf(await this.manifest(id), opts.verify ?? false);
  }

  /** Whether this chunk file is present with the right size (not hashed). */
  async hasChunk(ref: ChunkRef): Promise<boolean> {
    return this.files.has(ref);
  }

  /** A stream blob's content, each chunk verified before it is passed on; ≤ 1 chunk in memory. */
  async readStream(id: string): Promise<Readable> {
    const manifest = await this.manifest(id);
    if (manifest.files !== undefined) throw new WorkrsError('BLOB_KIND_MISMATCH', 409, `blob ${id} is a folder; export it with exportFolder`);
    await this.assertComplete(id, manifest);
    const chunks = manifest.chunks;
    const readChunk = (ref: ChunkRef): Promise<Buffer> => this.files.read(id, ref);
    async function* content(): AsyncGenerator<Buffer> {
      for (const ref of chunks) yield await readChunk(ref);
    }
    return Readable.from(content(), { objectMode: false, highWaterMark: 64 * 1024 });
  }

  /**
   * Writes a folder blob's files under `targetDir`, which must not exist or be an empty
   * folder. Files are written into a sibling staging folder renamed into place at the
   * end, so a failed export leaves no half-written target.
   */
  async exportFolder(id: string, targetDir: string): Promise<void> {
    await this.lock.shared(async () => {
      const manifest = await this.manifest(id);
      if (manifest.files === undefined) throw new WorkrsError('BLOB_KIND_MISMATCH', 409, `blob ${id} is a byte stream, not a folder; read it with readStream`);
      await this.assertComplete(id, manifest);
      await assertEmptyOrAbsent(targetDir);
      await mkdir(dirname(targetDir), { recursive: true });
      const staging = `${targetDir}.partial-${randomBytes(6).toString('hex')}`;
      await mkdir(staging);
      try {
        for (const file of manifest.files) {
          const path = join(staging, ...file.path.split('/'));
          await mkdir(dirname(path), { recursive: true });
          const fh = await open(path, 'wx', 0o600);
          try {
            // The next chunk is read (and its hash checked) while this one is written.
            const read = (i: number): Promise<Buffer> | null => {
              const ref = file.chunks[i];
              if (ref === undefined) return null;
              const p = this.files.read(id, ref);
              p.catch(() => undefined); // awaited below, or moot once a write failed
              return p;
            };
            let next = read(0);
            for (let i = 0; next !== null; i++) {
              const data = await next;
              next = read(i + 1);
              await writeAll(fh, data);
            }
          } finally {
            await fh.close();
          }
          await chmod(path, file.mode);
        }
        await rmdir(targetDir).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
        await rename(staging, targetDir);
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        throw err;
      }
    });
  }

  /** Chunk files on disk (manifests included) and their total size. */
  async stat(): Promise<StoreStat> {
    let chunks = 0;
    let bytes = 0;
    for await (const { size } of this.files.list()) {
      chunks += 1;
      bytes += size;
    }
    return { chunks, bytes };
  }

  /**
   * Deletes every chunk that no blob in `keep` references, and the manifests of blobs
   * not in `keep`. Waits for running puts, fetches and exports, and holds new ones off
   * until it is done. A blob stored after the caller built `keep` is deleted unless it
   * is in it (or younger than minAgeMs): the caller owns that decision.
   */
  async gc(keep: ReadonlySet<string>, opts: GcOptions = {}): Promise<GcResult> {
    const minAgeMs = opts.minAgeMs ?? 0;
    return this.lock.exclusive(async () => {
      const live = new Set<string>();
      const absentKept: string[] = [];
      // A blob stored or fetched lately may be on its way into the caller's `keep`
      // (a checkpoint not yet committed): its chunks may be old, so their age alone
      // would not protect them.
      const ids = new Set(keep);
      const nowMs = Date.now();
      for (const [id, at] of this.recent) {
        if (nowMs - at < minAgeMs) ids.add(id);
        else this.recent.delete(id);
      }
      for (const id of ids) {
        try {
          const manifest = await this.manifest(id);
          live.add(manifestHashOf(id));
          for (const c of uniqueChunks(manifest)) live.add(c.hash);
        } catch (err) {
          if (err instanceof BlobNotFoundError) {
            absentKept.push(id);
            continue;
          }
          if (err instanceof BlobCorruptError || err instanceof BlobManifestError) {
            // Its chunk list is unknowable; the blob must be fetched again either way.
            this.log.warn({ err, blob: id }, 'gc: a kept blob has an unreadable manifest; treating it as absent');
            absentKept.push(id);
            continue;
          }
          throw err;
        }
      }
      const result: GcResult = { keptChunks: 0, keptBytes: 0, deletedChunks: 0, deletedBytes: 0, absentKept };
      for await (const { hash, path, size, mtimeMs } of this.files.list()) {
        if (live.has(hash) || nowMs - mtimeMs < minAgeMs) {
          result.keptChunks += 1;
          result.keptBytes += size;
          continue;
        }
        await unlink(path);
        result.deletedChunks += 1;
        result.deletedBytes += size;
      }
      this.log.info(result, 'blob gc done');
      return result;
    });
  }

  // ---- for the bulk transfer (BlobPeer) ----

  /** Where a chunk lives; the caller must have checked `hash` (isChunkHash). */
  chunkPath(hash: string): string {
    return this.files.path(hash);
  }

  /** Runs `fn` with gc held off (a fetch in progress: its manifest and chunks are not yet a kept blob). */
  shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.shared(fn);
  }

  /** Stores manifest bytes received for `id` after checking them against it; returns the parsed manifest. */
  async receiveManifest(id: string, bytes: Buffer, dirs: Set<string>): Promise<Manifest> {
    const hash = manifestHashOf(id);
    if (sha256Hex(bytes) !== hash) throw new BlobCorruptError(`manifest received for ${id} does not hash to it`);
    const manifest = parseManifest(bytes, `blob ${id}`);
    this.recent.set(id, Date.now());
    await this.files.write(hash, bytes, dirs);
    return manifest;
  }

  /**
   * Streams a chunk received from a peer into a temp file, hashing as it goes; it is
   * renamed into place only when its size and hash match `ref`. A mismatch (or more
   * bytes than announced) is a BlobCorruptError and nothing is stored.
   */
  async receiveChunk(ref: ChunkRef, source: ByteSource, dirs: Set<string>): Promise<void> {
    await this.files.receive(ref, source, dirs);
  }

  // ---- internals ----

  private async missingOf(manifest: Manifest, verify: boolean): Promise<ChunkRef[]> {
    const missing: ChunkRef[] = [];
    for (const ref of uniqueChunks(manifest)) {
      const ok = verify ? await this.files.verifies(ref) : await this.files.has(ref);
      if (!ok) missing.push(ref);
    }
    return missing;
  }

  private async assertComplete(id: string, manifest: Manifest): Promise<void> {
    const missing = await this.missingOf(manifest, false);
    if (missing.length > 0) throw new BlobIncompleteError(id, missing.map((c) => c.hash), uniqueChunks(manifest).length);
  }
}

function newSession(): PutSession {
  return { newChunks: 0, newBytes: 0, reusedBytes: 0, chunkRefs: 0, writing: new Set(), dirs: new Set() };
}
