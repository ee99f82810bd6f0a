// A minimal tar writer for the archives Docker's "extract an archive into a container"
// endpoint (putArchive) takes: regular files streamed from disk and directories.
// POSIX ustar headers, with a PAX extended header when a name is longer than the
// 100 bytes ustar holds or a file is larger than its 8 GiB size field.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { systemClock, type Clock } from '../util/clock.js';

const BLOCK_BYTES = 512;
const USTAR_NAME_BYTES = 100;
const USTAR_MAX_SIZE = 8 ** 11 - 1;

export type TarEntry =
  | { kind: 'dir'; name: string; mode: number }
  | { kind: 'file'; name: string; mode: number; sourcePath: string };

function octal(value: number, fieldBytes: number): string {
  return value.toString(8).padStart(fieldBytes - 1, '0');
}

function header(name: string, opts: { type: string; mode: number; sizeBytes: number; mtimeSeconds: number }): Buffer {
  const h = Buffer.alloc(BLOCK_BYTES);
  h.write(name, 0, USTAR_NAME_BYTES, 'utf8');
  h.write(octal(opts.mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid root
  h.write(octal(0, 8), 116, 'ascii'); // gid root
  h.write(octal(Math.min(opts.sizeBytes, USTAR_MAX_SIZE), 12), 124, 'ascii');
  h.write(octal(opts.mtimeSeconds, 12), 136, 'ascii');
  h.write(opts.type, 156, 'ascii');
  h.write('ustar\u000000', 257, 'ascii');
  // The checksum is the byte sum with its own field counted as eight spaces.
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${octal(sum, 7)}\u0000 `, 148, 'ascii');
  return h;
}

/** One PAX record: "<length> <key>=<value>\n", where length counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body);
  let length = bodyBytes + 1;
  while (String(length).length + bodyBytes !== length) length = String(length).length + bodyBytes;
  return `${length}${body}`;
}

function padding(sizeBytes: number): Buffer {
  const rest = sizeBytes % BLOCK_BYTES;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK_BYTES - rest);
}

function entryHeaders(name: string, opts: { type: string; mode: number; sizeBytes: number; mtimeSeconds: number }): Buffer[] {
  const records: string[] = [];
  if (Buffer.byteLength(name) > USTAR_NAME_BYTES) records.push(paxRecord('path', name));
  if (opts.sizeBytes > USTAR_MAX_SIZE) records.push(paxRecord('size', String(opts.sizeBytes)));
  if (records.length === 0) return [header(name, opts)];
  const pax = Buffer.from(records.join(''));
  const paxHeader = header('././@PaxHeader', { type: 'x', mode: 0o644, sizeBytes: pax.length, mtimeSeconds: opts.mtimeSeconds });
  // The ustar name is only a fallback for readers without PAX: any valid prefix will do.
  const shortName = Buffer.from(name).subarray(0, USTAR_NAME_BYTES).toString('utf8').replace(/\uFFFD+$/, '');
  return [paxHeader, pax, padding(pax.length), header(shortName, opts)];
}

async function* tarChunks(entries: readonly TarEntry[], mtimeSeconds: number): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    if (entry.name === '' || entry.name.includes('\0')) throw new Error(`tar entry name ${JSON.stringify(entry.name)} is invalid`);
    if (entry.kind === 'dir') {
      const name = entry.name.endsWith('/') ? entry.name : `${entry.name}/`;
      yield* entryHeaders(name, { type: '5', mode: entry.mode, sizeBytes: 0, mtimeSeconds });
      continue;
    }
    const sizeBytes = (await stat(entry.sourcePath)).size;
    yield* entryHeaders(entry.name, { type: '0', mode: entry.mode, sizeBytes, mtimeSeconds });
    let written = 0;
    for await (const chunk of createReadStream(entry.sourcePath)) {
      const buf = chunk as Buffer;
      written += buf.length;
      if (written > sizeBytes) throw new Error(`${entry.sourcePath} grew while being archived (more than ${sizeBytes} bytes)`);
      yield buf;
    }
    if (written !== sizeBytes) throw new Error(`${entry.sourcePath} shrank while being archived (${written} of ${sizeBytes} bytes)`);
    yield padding(sizeBytes);
  }
  yield Buffer.alloc(2 * BLOCK_BYTES);
}

/** A tar archive of `entries`, streamed: file contents are read from disk as it is consumed. */
export function tarStream(entries: readonly TarEntry[], clock: Pick<Clock, 'now'> = systemClock): Readable {
  return Readable.from(tarChunks(entries, Math.floor(clock.now() / 1000)), { objectMode: false });
}
