// The chunk files of a blob store on disk:
//
//   <dir>/chunks/ab/<hash>   one file per chunk, named by the SHA-256 (hex) of its bytes
//   <dir>/tmp/               chunks being written; emptied at open
//
// A chunk is written to tmp/, fsynced, then renamed into place, so a file under
// chunks/ is always whole: a crash leaves at worst a temp file, which is invisible to
// readers and removed at the next open. The folders a rename touched are collected in
// `dirs`, for the caller to fsync (syncDirs) before it reports success.
import { createHash } from 'node:crypto';
import { createReadStream, type Dirent } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { WorkrsError } from '../errors.js';
import { BlobCorruptError, BlobIncompleteError, BlobUnsupportedFileError } from './errors.js';
import { isChunkHash, sha256Hex, type ChunkRef } from './manifest.js';

/** A Readable, or any (async) iterable of byte pieces. */
export type ByteSource = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>;

export class ChunkFiles {
  private readonly chunksDir: string;
  private readonly tmpDir: string;
  private readonly knownDirs = new Set<string>();
  private tempCounter = 0;

  constructor(
    dir: string,
    private readonly log: Logger,
  ) {
    this.chunksDir = join(dir, 'chunks');
    this.tmpDir = join(dir, 'tmp');
  }

  /** Creates the folders if needed and removes temp files a crash left behind. */
  async prepare(): Promise<void> {
    await mkdir(this.chunksDir, { recursive: true });
    const leftovers = await readdir(this.tmpDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    if (leftovers.length > 0) this.log.info({ tempFiles: leftovers.length }, 'removing chunk writes a crash interrupted');
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
  }

  /** Where a chunk lives; the caller must have checked `hash` (isChunkHash). */
  path(hash: string): string {
    if (!isChunkHash(hash)) throw new TypeError(`not a chunk hash: ${hash}`);
    return join(this.chunksDir, hash.slice(0, 2), hash);
  }

  /** Whether this chunk file is present with the right size (not hashed). */
  async has(ref: ChunkRef): Promise<boolean> {
    return (await fileSize(this.path(ref.hash))) === ref.bytes;
  }

  /** Whether the chunk is present and hashes to its name. */
  async verifies(ref: ChunkRef): Promise<boolean> {
    if (!(await this.has(ref))) return false;
    const hash = createHash('sha256');
    try {
      for await (const piece of createReadStream(this.path(ref.hash))) hash.update(piece as Buffer);
    } catch (err) {
      if (isNotFound(err)) return false; // deleted meanwhile
      throw err;
    }
    return hash.digest('hex') === ref.hash;
  }

  /** A chunk of blob `id`, its bytes after checking size and hash. */
  async read(id: string, ref: ChunkRef): Promise<Buffer> {
    const path = this.path(ref.hash);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      if (isNotFound(err)) throw new BlobIncompleteError(id, [ref.hash], 1);
      throw err;
    }
    if (data.length !== ref.bytes || sha256Hex(data) !== ref.hash) {
      throw new BlobCorruptError(`blob ${id}: chunk ${ref.hash} on disk is corrupt (${data.length} bytes, expected ${ref.bytes}; ${path})`);
    }
    return data;
  }

  /** Writes a chunk unless an intact-sized copy is here; returns whether it wrote. */
  async write(hash: string, data: Buffer, dirs: Set<string>): Promise<boolean> {
    if ((await fileSize(this.path(hash))) === data.length) return false;
    const tmp = this.tempPath(hash);
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await writeAll(fh, data);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await unlink(tmp).catch((e: unknown) => this.log.warn({ err: e, tmp }, 'could not remove a failed chunk write'));
      throw err;
    }
    await fh.close();
    await this.moveIntoPlace(tmp, hash, dirs);
    return true;
  }

  /**
   * Streams a chunk into a temp file, hashing as it goes; it is renamed into place
   * only when its size and hash match `ref`. A mismatch (or more bytes than announced)
   * is a BlobCorruptError and nothing is stored.
   */
  async receive(ref: ChunkRef, source: ByteSource, dirs: Set<string>): Promise<void> {
    const tmp = this.tempPath(ref.hash);
    const fh = await open(tmp, 'wx', 0o644);
    let ok = false;
    try {
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const piece of source) {
        const data = asBuffer(piece);
        bytes += data.length;
        if (bytes > ref.bytes) throw new BlobCorruptError(`chunk ${ref.hash}: received more than its ${ref.bytes} bytes`);
        hash.update(data);
        await writeAll(fh, data);
      }
      if (bytes !== ref.bytes) throw new BlobCorruptError(`chunk ${ref.hash}: received ${bytes} bytes, expected ${ref.bytes}`);
      const got = hash.digest('hex');
      if (got !== ref.hash) throw new BlobCorruptError(`chunk ${ref.hash}: received bytes hash to ${got}`);
      await fh.sync();
      ok = true;
    } finally {
      await fh.close();
      if (!ok) await unlink(tmp).catch((err: unknown) => this.log.warn({ err, tmp }, 'could not remove a refused chunk'));
    }
    await this.moveIntoPlace(tmp, ref.hash, dirs);
  }

  /** Every chunk file with its size and age; files that vanish meanwhile are skipped. */
  async *list(): AsyncGenerator<{ hash: string; path: string; size: number; mtimeMs: number }> {
    for (const sub of await readdir(this.chunksDir, { withFileTypes: true })) {
      if (!sub.isDirectory() || !/^[0-9a-f]{2}$/.test(sub.name)) continue;
      const folder = join(this.chunksDir, sub.name);
      for (const name of await readdir(folder)) {
        if (!isChunkHash(name) || !name.startsWith(sub.name)) continue;
        const path = join(folder, name);
        try {
          const st = await stat(path);
          yield { hash: name, path, size: st.size, mtimeMs: st.mtimeMs };
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }
  }

  private async moveIntoPlace(tmp: string, hash: string, dirs: Set<string>): Promise<void> {
    const path = this.path(hash);
    const folder = dirname(path);
    if (!this.knownDirs.has(folder)) {
      const created = await mkdir(folder, { recursive: true });
      if (created !== undefined) dirs.add(this.chunksDir); // the new subfolder's own entry
      this.knownDirs.add(folder);
    }
    await rename(tmp, path);
    dirs.add(folder);
  }

  private tempPath(hash: string): string {
    this.tempCounter += 1;
    return join(this.tmpDir, `${hash}.${process.pid}.${this.tempCounter}`);
  }
}

/** Regular files under `root`, as sorted '/'-joined relative paths; anything but files and folders is refused. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries: Dirent[] = await readdir(rel === '' ? root : join(root, ...rel.split('/')), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) out.push(path);
      else throw new BlobUnsupportedFileError(join(root, path), e.isSymbolicLink() ? 'a symbolic link' : 'a special file');
    }
  };
  await walk('');
  return out;
}

export async function assertEmptyOrAbsent(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  if (entries.length > 0) throw new WorkrsError('BLOB_TARGET_EXISTS', 409, `cannot export into ${dir}: it exists and is not empty`);
}

/** fsyncs folders whose entries changed (renames into them), so those renames survive a crash; empties the set. */
export async function syncDirs(dirs: Set<string>): Promise<void> {
  for (const dir of dirs) {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  dirs.clear();
}

export async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let at = 0;
  while (at < data.length) {
    const { bytesWritten } = await fh.write(data, at, data.length - at);
    at += bytesWritten;
  }
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export function asBuffer(piece: Uint8Array | string): Buffer {
  if (typeof piece === 'string') throw new TypeError('blob content must be bytes, not strings (a stream with an encoding set?)');
  return Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
}

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
