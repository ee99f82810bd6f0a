// A streaming tar reader that writes regular files and directories under one folder
// and nothing outside it. It reads what Docker's "copy from a container" endpoint
// produces (Go's archive/tar: ustar, PAX records for long names and big sizes, GNU
// long names) and the result archives Workrs makes (src/worker/tar-pack.ts).
// Symbolic links, devices and the like are skipped and reported, never created:
// an archive must not be able to point a later write outside the target.
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';

const BLOCK = 512;

export interface ExtractOptions {
  /** Maps an entry's name to the relative name to write it as, or null to skip it. */
  rename?: (name: string) => string | null;
  /** Refuse archives whose files add up to more than this. */
  maxBytes?: number;
}

export interface ExtractResult {
  /** Relative names of the files written, in archive order. */
  files: string[];
  bytes: number;
  /** Entries not written (links, devices, unsafe names), with why. */
  skipped: Array<{ name: string; why: string }>;
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
      if (piece.length === 0) throw new Error('the archive ends inside a file');
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
  if (!/^[0-7]+$/.test(text)) throw new Error(`tar header field "${text}" is not an octal number`);
  return parseInt(text, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === octal(h, 148, 8);
}

function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number(data.subarray(at, space).toString('ascii'));
    if (!Number.isInteger(length) || length <= 0 || at + length > data.length) throw new Error('malformed PAX record');
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

/** Extracts `source` under `targetDir` (created if needed). */
export async function extractTar(source: Readable, targetDir: string, opts: ExtractOptions = {}): Promise<ExtractResult> {
  const reader = new ByteReader(source);
  const result: ExtractResult = { files: [], bytes: 0, skipped: [] };
  let longName: string | null = null;
  let pax = new Map<string, string>();
  await mkdir(targetDir, { recursive: true });
  try {
    for (;;) {
      const h = await reader.read(BLOCK);
      if (h.length === 0) break; // tolerate a missing end marker
      if (h.length < BLOCK) throw new Error('the archive ends inside a header');
      if (h.every((b) => b === 0)) break;
      if (!checksumOk(h)) throw new Error('a tar header has a bad checksum (not a tar archive, or a damaged one)');
      const type = String.fromCharCode(h[156] ?? 0);
      let size = pax.has('size') ? Number(pax.get('size')) : octal(h, 124, 12);
      if (!Number.isSafeInteger(size) || size < 0) throw new Error('a tar header has an invalid size');
      if (type === 'x' || type === 'g' || type === 'L') {
        const data = await reader.read(size);
        if (data.length < size) throw new Error('the archive ends inside an extended header');
        await reader.read(padTo(size));
        if (type === 'x') pax = paxRecords(data);
        if (type === 'L') longName = data.toString('utf8').replace(/\0+$/, '');
        continue;
      }
      const prefix = field(h, 345, 155);
      const headerName = prefix !== '' && field(h, 257, 6).startsWith('ustar') ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
      const name = pax.get('path') ?? longName ?? headerName;
      const mode = octal(h, 100, 8) & 0o777;
      pax = new Map();
      longName = null;
      const isFile = type === '0' || type === '\0' || type === '7';
      const isDir = type === '5';
      if (isDir && name.split('/').every((seg) => seg === '' || seg === '.')) continue; // the target itself
      const relative = safeRelativeName(name);
      const renamed = relative === null ? null : opts.rename ? opts.rename(relative) : relative;
      const target = renamed === null ? null : safeRelativeName(renamed);
      if (!isFile) size = isDir ? 0 : size;
      if (target === null || (!isFile && !isDir)) {
        if (relative === null) result.skipped.push({ name, why: 'unsafe name' });
        else if (!isFile && !isDir) result.skipped.push({ name, why: type === '2' ? 'symbolic link' : type === '1' ? 'hard link' : `entry type ${type}` });
        await reader.pipe(size + padTo(size), async () => {});
        continue;
      }
      const path = join(targetDir, target);
      if (isDir) {
        await mkdir(path, { recursive: true });
        continue;
      }
      result.bytes += size;
      if (opts.maxBytes !== undefined && result.bytes > opts.maxBytes) throw new Error(`the archive holds more than ${opts.maxBytes} bytes`);
      await mkdir(dirname(path), { recursive: true });
      const out = createWriteStream(path, { mode: mode === 0 ? 0o644 : mode });
      try {
        await reader.pipe(size, (piece) => new Promise<void>((resolve, reject) => out.write(piece, (err) => (err ? reject(err) : resolve()))));
      } finally {
        out.end();
        await finished(out);
      }
      await reader.read(padTo(size));
      result.files.push(target);
    }
  } finally {
    await reader.close();
  }
  return result;
}
