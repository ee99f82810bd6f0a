// A streaming tar reader that writes regular files and directories under one folder
// and nothing outside it. It reads what Docker's "copy from a container" endpoint
// produces (Go's archive/tar: ustar, PAX records for long names and big sizes, GNU
// long names and base-256 sizes) and the result archives Workrs makes
// (src/worker/tar-pack.ts).
//
// The archive and the target folder are both untrusted: the archive may come from a
// job, a peer or a server, and the folder may already hold links planted by someone
// else. So:
// - Symbolic links, hard links, devices and the like are skipped and reported, never
//   created, and names with `..` or a leading `/` are skipped.
// - The archive is first unpacked into a private staging folder made inside the
//   target (mode 0700, fresh name), whose every path this code created itself. Only a
//   complete archive within the limits is then moved into place, one rename per file,
//   so a damaged, oversized or refused archive leaves the target as it was.
// - Moving into place never goes through a link: every folder on the way is checked
//   with lstat and created here when missing, and a file is put in place by rename or
//   link, which replace or refuse the name itself and never write through it.
// - An existing file (or link, or anything but a folder on the way) is refused, or
//   with `existing: 'replace'` removed and replaced: its content and its target are
//   never written. An existing folder where a file should go is always refused.
// - Modes keep only the permission bits (no setuid, setgid or sticky).
import { constants as fsConstants } from 'node:fs';
import { copyFile, lstat, link, mkdir, mkdtemp, open, realpath, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { COPY_INSTEAD } from './link-tree.js';
import { errnoOf } from './errno.js';

const BLOCK = 512;
/** PAX and GNU long-name headers are held in memory: bounded. */
const MAX_META_BYTES = 1024 * 1024;
/** Skipped entries kept in the result for the caller to show; the rest are only counted. */
const MAX_SKIPPED_KEPT = 1000;
/** The staging folder's name inside the target; mkdtemp adds six random characters. */
const STAGING_PREFIX = '.workrs-extract-';

export type TarExtractErrorCode =
  /** Not a tar archive, a damaged one, or entries that contradict each other. */
  | 'INVALID_TAR'
  /** The files add up to more than `maxBytes`. */
  | 'TAR_TOO_LARGE'
  /** More entries than `maxEntries`. */
  | 'TAR_TOO_MANY_ENTRIES'
  /** A name in the target is taken (by a file, a link, or a folder where a file goes). */
  | 'TARGET_EXISTS';

/** Why an archive was not extracted. Nothing of it is in the target folder then. */
export class TarExtractError extends Error {
  constructor(
    readonly code: TarExtractErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TarExtractError';
  }
}

export interface ExtractOptions {
  /** Maps an entry's name to the relative name to write it as, or null to skip it. */
  rename?: (name: string) => string | null;
  /** Refuse archives whose files add up to more than this. */
  maxBytes?: number;
  /** Refuse archives with more entries (files, folders, skipped ones) than this. */
  maxEntries?: number;
  /**
   * A name in the target that is already taken by a file, a link or anything but a
   * folder: 'refuse' fails with TARGET_EXISTS before anything is moved into place;
   * 'replace' removes it and puts the archive's file there. Default: 'replace'.
   */
  existing?: 'refuse' | 'replace';
}

export interface ExtractResult {
  /** Relative names of the files written, in archive order, each once. */
  files: string[];
  bytes: number;
  /** Entries not written (links, devices, unsafe names), with why: the first 1000. */
  skipped: Array<{ name: string; why: string }>;
  /** How many entries were skipped in all. */
  skippedCount: number;
}

/** Pulls exact byte counts out of a stream of chunks. */
class ByteReader {
  private buffered: Buffer[] = [];
  private size = 0;
  private readonly it: AsyncIterator<unknown>;

  constructor(source: Readable) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    while (this.size < n) {
      const next = await this.it.next();
      if (next.done) break;
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
      this.buffered.push(chunk);
      this.size += chunk.length;
    }
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    return out;
  }

  /** Calls `sink` with the next `n` bytes in pieces, without holding them all. */
  async pipe(n: number, sink: (piece: Buffer) => Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      const piece = await this.read(Math.min(left, 1024 * 1024));
      if (piece.length === 0) throw new TarExtractError('INVALID_TAR', 'the archive ends inside a file');
      await sink(piece);
      left -= piece.length;
    }
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function field(h: Buffer, start: number, length: number): string {
  const raw = h.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString('utf8');
}

function octal(h: Buffer, start: number, length: number): number {
  const text = field(h, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarExtractError('INVALID_TAR', `tar header field "${text}" is not an octal number`);
  return parseInt(text, 8);
}

/** The size field: octal, or GNU base-256 when the first byte has its high bit set. */
function sizeField(h: Buffer): number {
  const first = h[124] ?? 0;
  if ((first & 0x80) === 0) return octal(h, 124, 12);
  let n = first & 0x7f;
  for (const byte of h.subarray(125, 136)) n = n * 256 + byte;
  return n; // an unsafe integer is refused by the caller
}

/** Both sums tar writers have used: bytes as unsigned and as signed, the checksum field as spaces. */
function checksumOk(h: Buffer): boolean {
  const stored = field(h, 148, 8).trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  const sum = parseInt(stored, 8);
  return sum === unsigned || sum === signed;
}

function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number(data.subarray(at, space).toString('ascii'));
    if (!Number.isInteger(length) || length <= 0 || at + length > data.length || space + 1 > at + length - 1) {
      throw new TarExtractError('INVALID_TAR', 'malformed PAX record');
    }
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return out;
}

/** A relative name with no empty, `.` or `..` segments, or null. */
export function safeRelativeName(name: string): string | null {
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || segments.some((s) => s === '..' || s.includes('\0'))) return null;
  if (name.startsWith('/')) return null;
  return segments.join('/');
}

const padTo = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK;


/** What the archive put into the staging folder. */
interface Staged {
  files: string[];
  dirs: string[];
}

/** Where a relative name cannot be placed under `root`: the path that is in the way and why. */
interface Obstacle {
  path: string;
  what: string;
  /** A folder where a file should go: refused even when replacing. */
  folder: boolean;
}

function describe(st: { isSymbolicLink(): boolean; isFile(): boolean; isDirectory(): boolean }): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFile()) return 'a file';
  if (st.isDirectory()) return 'a folder';
  return 'a special file';
}

/** lstat, or null when nothing has the name. */
async function lstatOrNull(path: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/**
 * What stands in the way of `rel` (a file, or a folder when `isDir`) under `root`:
 * anything but a real folder at one of its parents, or anything at a file's name.
 */
async function obstacleOf(root: string, rel: string, isDir: boolean): Promise<Obstacle | null> {
  const segments = rel.split('/');
  let path = root;
  for (let i = 0; i < segments.length; i++) {
    path = join(path, segments[i]!);
    const st = await lstatOrNull(path);
    if (st === null) return null; // nothing below a missing name can be in the way
    const last = i === segments.length - 1;
    if (st.isDirectory()) {
      if (last && !isDir) return { path, what: 'a folder', folder: true };
      continue;
    }
    return { path, what: describe(st), folder: false };
  }
  return null;
}

/** Makes `rel`'s folders under `root` one at a time, never through a link. */
async function ensureFolders(root: string, rel: string, replace: boolean): Promise<void> {
  let path = root;
  for (const segment of rel === '' ? [] : rel.split('/')) {
    path = join(path, segment);
    const st = await lstatOrNull(path);
    if (st?.isDirectory()) continue;
    if (st !== null) {
      if (!replace) throw new TarExtractError('TARGET_EXISTS', `${path} exists and is ${describe(st)}, not a folder`);
      await unlink(path);
    }
    try {
      await mkdir(path);
    } catch (err) {
      // Someone made it meanwhile: fine if it is a real folder.
      if (errnoOf(err) !== 'EEXIST' || !(await lstat(path)).isDirectory()) throw err;
    }
  }
}


/** Moves the staged file to `dest`, replacing or refusing whatever has that name, never writing through it. */
async function placeFile(staged: string, dest: string, replace: boolean): Promise<void> {
  const st = await lstatOrNull(dest);
  if (st?.isDirectory()) throw new TarExtractError('TARGET_EXISTS', `${dest} exists and is a folder`);
  if (st !== null && !replace) throw new TarExtractError('TARGET_EXISTS', `${dest} exists and is ${describe(st)}`);
  try {
    // rename replaces a file or a link by name, atomically; link fails if the name was taken meanwhile.
    await (replace ? rename(staged, dest) : link(staged, dest));
    return;
  } catch (err) {
    const code = errnoOf(err) ?? '';
    if (code === 'EEXIST') throw new TarExtractError('TARGET_EXISTS', `${dest} exists`, { cause: err });
    if (!COPY_INSTEAD.has(code)) throw err;
  }
  if (replace) {
    try {
      await unlink(dest);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }
  try {
    // COPYFILE_EXCL creates the name new: an existing file or link there fails the copy.
    await copyFile(staged, dest, fsConstants.COPYFILE_EXCL);
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') throw new TarExtractError('TARGET_EXISTS', `${dest} exists`, { cause: err });
    throw err;
  }
}

/** An fs error while staging that the archive caused (names that clash or cannot exist). */
function stagingError(err: unknown, name: string): unknown {
  const code = errnoOf(err);
  if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') return new TarExtractError('INVALID_TAR', `the archive's entry ${name} clashes with another entry`, { cause: err });
  if (code === 'ENAMETOOLONG') return new TarExtractError('INVALID_TAR', `the archive's entry ${name.slice(0, 200)}… has a name too long for this filesystem`, { cause: err });
  return err;
}

/** Writes a regular file into the staging folder; a later entry of the same name wins, as with tar. */
async function stageFile(path: string, mode: number, size: number, reader: ByteReader): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  let out;
  try {
    out = await open(path, 'wx', mode);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST' || !(await lstat(path)).isFile()) throw err;
    await unlink(path);
    out = await open(path, 'wx', mode);
  }
  try {
    await reader.pipe(size, async (piece) => {
      await out.write(piece);
    });
  } finally {
    await out.close();
  }
}

/** Reads the archive into `staging`, checking limits and, when refusing, names taken in `root`. */
async function stage(reader: ByteReader, staging: string, root: string, opts: ExtractOptions, result: ExtractResult): Promise<Staged> {
  const staged: Staged = { files: [], dirs: [] };
  const seen = new Set<string>();
  const maxEntries = opts.maxEntries ?? Infinity;
  const refuse = opts.existing === 'refuse';
  let entries = 0;
  let longName: string | null = null;
  let pax = new Map<string, string>();
  const skip = (name: string, why: string): void => {
    result.skippedCount += 1;
    if (result.skipped.length < MAX_SKIPPED_KEPT) result.skipped.push({ name, why });
  };
  for (;;) {
    const h = await reader.read(BLOCK);
    if (h.length === 0) break; // tolerate a missing end marker
    if (h.length < BLOCK) throw new TarExtractError('INVALID_TAR', 'the archive ends inside a header');
    if (h.every((b) => b === 0)) break;
    if (!checksumOk(h)) throw new TarExtractError('INVALID_TAR', 'a tar header has a bad checksum (not a tar archive, or a damaged one)');
    const type = String.fromCharCode(h[156] ?? 0);
    let size = pax.has('size') ? Number(pax.get('size')) : sizeField(h);
    if (!Number.isSafeInteger(size) || size < 0) throw new TarExtractError('INVALID_TAR', 'a tar header has an invalid size');
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      // Metadata for the next entry (x: PAX, L: long name), for all (g) or a long link target (K): only x and L matter here.
      if (size > MAX_META_BYTES) throw new TarExtractError('INVALID_TAR', `an extended tar header of ${size} bytes (at most ${MAX_META_BYTES})`);
      const data = await reader.read(size);
      if (data.length < size) throw new TarExtractError('INVALID_TAR', 'the archive ends inside an extended header');
      await reader.read(padTo(size));
      if (type === 'x') pax = paxRecords(data);
      if (type === 'L') longName = data.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    entries += 1;
    if (entries > maxEntries) throw new TarExtractError('TAR_TOO_MANY_ENTRIES', `the archive holds more than ${maxEntries} entries`);
    const prefix = field(h, 345, 155);
    const headerName = prefix !== '' && field(h, 257, 6).startsWith('ustar') ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
    const name = pax.get('path') ?? longName ?? headerName;
    // Only the permission bits: never setuid, setgid or sticky.
    const mode = octal(h, 100, 8) & 0o777;
    pax = new Map();
    longName = null;
    const isFile = type === '0' || type === '\0' || type === '7';
    const isDir = type === '5';
    if (!isFile) size = isDir ? 0 : size;
    if (isDir && name.split('/').every((seg) => seg === '' || seg === '.')) continue; // the target itself
    const relative = safeRelativeName(name);
    const renamed = relative === null ? null : opts.rename ? opts.rename(relative) : relative;
    const target = renamed === null ? null : safeRelativeName(renamed);
    if (target === null || (!isFile && !isDir)) {
      if (relative === null) skip(name, 'unsafe name');
      else if (!isFile && !isDir) skip(name, type === '2' ? 'symbolic link' : type === '1' ? 'hard link' : `entry type ${type}`);
      await reader.pipe(size + padTo(size), async () => {});
      continue;
    }
    if (refuse) {
      // Fail early rather than after reading a large archive; checked again before moving.
      const obstacle = await obstacleOf(root, target, isDir);
      if (obstacle !== null) throw conflict(obstacle);
    }
    const path = join(staging, target);
    if (isDir) {
      try {
        await mkdir(path, { recursive: true });
      } catch (err) {
        throw stagingError(err, target);
      }
      staged.dirs.push(target);
      continue;
    }
    if (opts.maxBytes !== undefined && result.bytes + size > opts.maxBytes) throw new TarExtractError('TAR_TOO_LARGE', `the archive holds more than ${opts.maxBytes} bytes`);
    result.bytes += size;
    try {
      await stageFile(path, mode === 0 ? 0o644 : mode, size, reader);
    } catch (err) {
      throw stagingError(err, target);
    }
    await reader.read(padTo(size));
    if (!seen.has(target)) {
      seen.add(target);
      staged.files.push(target);
    }
  }
  return staged;
}

function conflict(o: Obstacle): TarExtractError {
  return new TarExtractError('TARGET_EXISTS', `${o.path} exists and is ${o.what}`);
}

/** Moves everything staged into `root`: checked first, so a refusal moves nothing. */
async function placeAll(staging: string, root: string, staged: Staged, replace: boolean): Promise<void> {
  for (const [list, isDir] of [[staged.dirs, true], [staged.files, false]] as const) {
    for (const rel of list) {
      const obstacle = await obstacleOf(root, rel, isDir);
      if (obstacle !== null && (obstacle.folder || !replace)) throw conflict(obstacle);
    }
  }
  for (const rel of staged.dirs) await ensureFolders(root, rel, replace);
  for (const rel of staged.files) {
    const parent = dirname(rel);
    await ensureFolders(root, parent === '.' ? '' : parent, replace);
    await placeFile(join(staging, rel), join(root, rel), replace);
  }
}

/**
 * Extracts `source` under `targetDir` (created if needed). Throws TarExtractError for
 * an archive that is damaged, over a limit, or (with `existing: 'refuse'`) would take
 * a name already taken; the target is then left as it was.
 */
export async function extractTar(source: Readable, targetDir: string, opts: ExtractOptions = {}): Promise<ExtractResult> {
  const reader = new ByteReader(source);
  const result: ExtractResult = { files: [], bytes: 0, skipped: [], skippedCount: 0 };
  try {
    await mkdir(targetDir, { recursive: true });
    // The target itself is the caller's choice, links included; below it nothing is followed.
    const root = await realpath(targetDir);
    const staging = await mkdtemp(join(root, STAGING_PREFIX));
    try {
      const staged = await stage(reader, staging, root, opts, result);
      await placeAll(staging, root, staged, opts.existing !== 'refuse');
      result.files = staged.files;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  } finally {
    await reader.close();
  }
  return result;
}
