// A tar writer for the fuzz targets, independent of src/worker/tar-pack.ts: it can write
// every header form the readers accept (ustar with a prefix, PAX and GNU long names,
// base-256 sizes, links, devices) and lie in them (modes, sizes, names).

const BLOCK = 512;

export type LongNameForm = 'pax' | 'gnu' | 'prefix';

export interface RawEntry {
  name: string;
  /** The type flag: '0' file, '5' folder, '2' symbolic link, '1' hard link, '3' device, '6' FIFO… */
  type: string;
  content: Uint8Array;
  mode: number;
  linkName?: string;
  /** How a name longer than 100 bytes is written (default PAX). */
  longName?: LongNameForm;
  /** Write the size field in GNU base-256. */
  base256?: boolean;
}

function octalField(h: Buffer, at: number, bytes: number, value: number): void {
  h.write(`${value.toString(8).padStart(bytes - 1, '0')}\0`, at, bytes, 'ascii');
}

export function header(name: string, e: { type: string; size: number; mode: number; linkName?: string; base256?: boolean; prefix?: string }): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octalField(h, 100, 8, e.mode & 0o7777777);
  octalField(h, 108, 8, 0);
  octalField(h, 116, 8, 0);
  if (e.base256) {
    h[124] = 0x80;
    let n = e.size;
    for (let i = 135; i > 124; i--) {
      h[i] = n % 256;
      n = Math.floor(n / 256);
    }
  } else {
    octalField(h, 124, 12, e.size);
  }
  octalField(h, 136, 12, 0);
  h.write(e.type, 156, 1, 'latin1');
  if (e.linkName !== undefined) h.write(e.linkName, 157, 100, 'utf8');
  h.write('ustar\u000000', 257, 'ascii');
  if (e.prefix !== undefined) h.write(e.prefix, 345, 155, 'utf8');
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

const pad = (n: number): Buffer => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body);
  let length = bodyBytes + 1;
  while (String(length).length + bodyBytes !== length) length = String(length).length + bodyBytes;
  return `${length}${body}`;
}

function withData(h: Buffer, data: Uint8Array): Buffer[] {
  return [h, Buffer.from(data), pad(data.length)];
}

/** The blocks of one entry, long-name headers included. */
export function entryBlocks(e: RawEntry): Buffer[] {
  const size = e.type === '0' || e.type === '7' || e.type === '\0' ? e.content.length : 0;
  const data = size > 0 ? e.content : new Uint8Array(0);
  const base = { type: e.type, size, mode: e.mode, linkName: e.linkName, base256: e.base256 };
  const nameBytes = Buffer.byteLength(e.name);
  if (nameBytes <= 100) return withData(header(e.name, base), data);
  const form = e.longName ?? 'pax';
  if (form === 'prefix') {
    // Split at a slash so that the name part fits 100 bytes and the prefix 155.
    for (let i = e.name.indexOf('/'); i !== -1; i = e.name.indexOf('/', i + 1)) {
      const prefix = e.name.slice(0, i);
      const rest = e.name.slice(i + 1);
      if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== '') return withData(header(rest, { ...base, prefix }), data);
    }
  }
  if (form === 'gnu') {
    const long = Buffer.from(`${e.name}\0`);
    return [...withData(header('././@LongLink', { type: 'L', size: long.length, mode: 0o644 }), long), ...withData(header(e.name.slice(0, 100), base), data)];
  }
  const pax = Buffer.from(paxRecord('path', e.name));
  return [...withData(header('././@PaxHeader', { type: 'x', size: pax.length, mode: 0o644 }), pax), ...withData(header(e.name.slice(0, 100), base), data)];
}

/** A whole archive, with the two zero blocks at the end unless `endMarker` is false. */
export function buildTar(entries: readonly RawEntry[], endMarker = true): Buffer {
  return Buffer.concat([...entries.flatMap(entryBlocks), endMarker ? Buffer.alloc(2 * BLOCK) : Buffer.alloc(0)]);
}
