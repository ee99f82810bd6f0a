// The member list of a tar file, read without reading the members: each header block
// is read at its offset and the data after it is skipped by arithmetic, so listing a
// 2 GiB image tar reads a few KiB. It understands what `docker save` (Go's
// archive/tar) and common tar writers produce: ustar and GNU headers, PAX extended
// headers (path, size), GNU long names, base-256 sizes.
import type { FileHandle } from 'node:fs/promises';

const BLOCK = 512;
/** PAX and GNU long-name headers are read into memory: bounded. */
const MAX_META_BYTES = 1024 * 1024;

export type TarMemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarMember {
  /** Path inside the archive, without a leading `./` or a trailing `/`. */
  name: string;
  type: TarMemberType;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
}

/** The bytes are not a tar archive, or one cut short. */
export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarFormatError';
  }
}

/** Reads exactly `length` bytes at `position`, or fewer at the end of the file. */
async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await file.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** A NUL-terminated text field. */
function text(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** An octal number field, or GNU base-256 when the first byte has its high bit set. */
function numeric(field: Buffer, what: string, at: number): number {
  const first = field[0] ?? 0;
  if ((first & 0x80) !== 0) {
    let n = first & 0x7f;
    for (const byte of field.subarray(1)) {
      n = n * 256 + byte;
      if (!Number.isSafeInteger(n)) throw new TarFormatError(`header at offset ${at}: ${what} is too large`);
    }
    return n;
  }
  const s = text(field).trim();
  if (!/^[0-7]*$/.test(s)) throw new TarFormatError(`header at offset ${at}: ${what} is not an octal number`);
  return s === '' ? 0 : parseInt(s, 8);
}

/** Both sums tar writers have used: bytes as unsigned and as signed, the checksum field as spaces. */
function checksumMatches(h: Buffer, at: number): boolean {
  let stored: number;
  try {
    stored = numeric(h.subarray(148, 156), 'checksum', at);
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** "<length> <key>=<value>\n" records; only path and size matter here. */
function paxRecords(data: Buffer, at: number): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    const length = space === -1 ? NaN : Number(data.subarray(pos, space).toString('ascii'));
    if (!Number.isInteger(length) || length <= 0 || pos + length > data.length) throw new TarFormatError(`PAX header at offset ${at} is malformed`);
    const record = data.subarray(space + 1, pos + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
  }
  return out;
}

function memberType(flag: string): TarMemberType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      return 'file';
    case '5':
      return 'dir';
    case '2':
      return 'symlink';
    case '1':
      return 'hardlink';
    default:
      return 'other';
  }
}

function cleanName(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  return n.replace(/\/+$/, '');
}

/**
 * Yields the members of the tar file in order. Throws TarFormatError at the first
 * block that is not a valid header, or when a member's data runs past the end of
 * the file. An end of file where a header could start ends the archive, as two zero
 * blocks do.
 */
export async function* tarMembers(file: FileHandle): AsyncGenerator<TarMember> {
  const fileBytes = (await file.stat()).size;
  if (fileBytes === 0) throw new TarFormatError('the file is empty');
  let pos = 0;
  let pax = new Map<string, string>();
  let longName: string | null = null;
  for (;;) {
    if (pos >= fileBytes) return;
    const h = await readAt(file, pos, BLOCK);
    if (h.length < BLOCK) throw new TarFormatError(`the archive ends inside a header (offset ${pos})`);
    if (h.every((b) => b === 0)) return;
    if (!checksumMatches(h, pos)) throw new TarFormatError(`the block at offset ${pos} is not a tar header (checksum mismatch)`);
    const flag = String.fromCharCode(h[156] ?? 0);
    const headerSize = numeric(h.subarray(124, 136), 'size', pos);
    const size = pax.has('size') ? Number(pax.get('size')) : headerSize;
    if (!Number.isSafeInteger(size) || size < 0) throw new TarFormatError(`header at offset ${pos}: bad size`);
    const offset = pos + BLOCK;
    if (offset + size > fileBytes) throw new TarFormatError(`the archive is cut short: a member at offset ${pos} needs ${size} bytes, the file ends first`);
    const next = offset + Math.ceil(size / BLOCK) * BLOCK;

    if (flag === 'x' || flag === 'L' || flag === 'g' || flag === 'K') {
      // Metadata for the next member (x, L), for all (g: ignored here), or a long link target (K: ignored).
      if ((flag === 'x' || flag === 'L') && size > MAX_META_BYTES) throw new TarFormatError(`header at offset ${pos}: extended header of ${size} bytes`);
      if (flag === 'x') pax = paxRecords(await readAt(file, offset, size), pos);
      if (flag === 'L') longName = text(await readAt(file, offset, size));
      pos = next;
      continue;
    }
    const magic = h.subarray(257, 263).toString('latin1');
    const prefix = magic === 'ustar\0' ? text(h.subarray(345, 500)) : '';
    const headerName = prefix === '' ? text(h.subarray(0, 100)) : `${prefix}/${text(h.subarray(0, 100))}`;
    const name = cleanName(pax.get('path') ?? longName ?? headerName);
    pax = new Map();
    longName = null;
    yield { name, type: memberType(flag), offset, size };
    pos = next;
  }
}

/** A member's content, refused when larger than `maxBytes`. */
export async function readMember(file: FileHandle, member: TarMember, maxBytes: number): Promise<Buffer> {
  if (member.size > maxBytes) throw new TarFormatError(`${member.name} is ${member.size} bytes, more than ${maxBytes}`);
  return readAt(file, member.offset, member.size);
}
