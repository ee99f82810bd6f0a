// Blob manifests: what a blob is made of. A manifest is stored as a chunk itself and
// the blob id is `sha256:` + the hex SHA-256 of its bytes, so an id names exactly one
// content and anyone holding the manifest bytes can check them against the id.
//
//   stream blob: {version:1, kind, bytes, chunks:[{hash, bytes}]}            (chunks in order)
//   folder blob: {version:1, kind, bytes, chunks:[], files:[{path, mode, bytes, chunks}]}
//
// Manifests come from peers, so parseManifest is a boundary: every field is checked,
// paths must stay inside the folder they are exported to. Pure: no I/O.
import { createHash } from 'node:crypto';
import { BLOB_KINDS, type BlobKind } from '../state/commands.js';
import { isPlainObject, unknownKeys } from '../util/parse.js';
import { MAX_CHUNK_BYTES } from './chunker.js';
import { BlobManifestError } from './errors.js';

export type { BlobKind } from '../state/commands.js';

export const MANIFEST_VERSION = 1;
/** A manifest is one chunk, but may be larger than a data chunk (a folder of many files). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
const MAX_PATH_BYTES = 4096;

export interface ChunkRef {
  hash: string; // lowercase hex SHA-256 of the chunk's bytes
  bytes: number;
}

export interface FileEntry {
  path: string; // relative, '/'-separated, no '.', '..' or empty segments
  mode: number; // permission bits (0o7777)
  bytes: number;
  chunks: ChunkRef[];
}

export interface Manifest {
  version: typeof MANIFEST_VERSION;
  kind: BlobKind;
  bytes: number; // content bytes: the stream's, or the sum of the files'
  chunks: ChunkRef[]; // a stream blob's content in order; empty for a folder
  files?: FileEntry[]; // present for a folder blob, sorted by path
}

const HASH_PATTERN = /^[0-9a-f]{64}$/;
const BLOB_ID_PATTERN = /^sha256:([0-9a-f]{64})$/;

export function isChunkHash(value: unknown): value is string {
  return typeof value === 'string' && HASH_PATTERN.test(value);
}

export function isBlobId(value: unknown): value is string {
  return typeof value === 'string' && BLOB_ID_PATTERN.test(value);
}

/** The manifest chunk's hash inside a blob id; throws on a malformed id. */
export function manifestHashOf(blobId: string): string {
  const m = BLOB_ID_PATTERN.exec(blobId);
  if (m === null || m[1] === undefined) throw new BlobManifestError(`"${blobId}" is not a blob id (sha256:<64 hex digits>)`);
  return m[1];
}

export function blobIdOf(manifestBytes: Buffer): string {
  return `sha256:${sha256Hex(manifestBytes)}`;
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Canonical bytes of a manifest built by this node (fixed key order, no whitespace). */
export function encodeManifest(m: Manifest): Buffer {
  const ordered: Manifest = { version: m.version, kind: m.kind, bytes: m.bytes, chunks: m.chunks.map(chunkRef) };
  if (m.files !== undefined) ordered.files = m.files.map((f) => ({ path: f.path, mode: f.mode, bytes: f.bytes, chunks: f.chunks.map(chunkRef) }));
  return Buffer.from(JSON.stringify(ordered), 'utf8');
}

/** Every chunk the blob needs, each hash once, in first-use order. */
export function uniqueChunks(m: Manifest): ChunkRef[] {
  const seen = new Set<string>();
  const out: ChunkRef[] = [];
  const lists = m.files === undefined ? [m.chunks] : [m.chunks, ...m.files.map((f) => f.chunks)];
  for (const list of lists) {
    for (const c of list) {
      if (seen.has(c.hash)) continue;
      seen.add(c.hash);
      out.push(c);
    }
  }
  return out;
}

/** Parses manifest bytes (from disk or a peer) into a checked Manifest; BlobManifestError otherwise. */
export function parseManifest(bytes: Buffer, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BlobManifestError(`${where}: manifest is not JSON`, { cause: err });
  }
  const fail = (field: string, message: string): never => {
    throw new BlobManifestError(`${where}: manifest ${field} ${message}`);
  };
  if (!isPlainObject(raw)) return fail('', 'must be an object');
  const extra = unknownKeys(raw, ['version', 'kind', 'bytes', 'chunks', 'files']);
  if (extra.length > 0) fail('', `has unknown fields ${extra.join(', ')}`);
  if (raw.version !== MANIFEST_VERSION) fail('version', `is ${String(raw.version)}, this node reads ${MANIFEST_VERSION}`);
  const kind = raw.kind;
  if (typeof kind !== 'string' || !(BLOB_KINDS as readonly string[]).includes(kind)) fail('kind', `must be one of ${BLOB_KINDS.join(', ')}`);
  const bytesTotal = byteCount(raw.bytes, 'bytes', fail);
  const chunks = chunkList(raw.chunks, 'chunks', fail);
  const manifest: Manifest = { version: MANIFEST_VERSION, kind: kind as BlobKind, bytes: bytesTotal, chunks };
  if (raw.files === undefined) {
    if (sumBytes(chunks) !== bytesTotal) fail('bytes', `is ${bytesTotal} but its chunks add up to ${sumBytes(chunks)}`);
    assertOneSizePerHash([chunks], fail);
    return manifest;
  }
  if (chunks.length > 0) fail('chunks', 'must be empty in a folder blob (each file lists its own)');
  if (!Array.isArray(raw.files)) return fail('files', 'must be an array');
  const files: FileEntry[] = [];
  const paths = new Set<string>();
  const dirs = new Set<string>();
  let sum = 0;
  for (const [i, f] of raw.files.entries()) {
    const field = `files[${i}]`;
    if (!isPlainObject(f)) return fail(field, 'must be an object');
    const unknown = unknownKeys(f, ['path', 'mode', 'bytes', 'chunks']);
    if (unknown.length > 0) fail(field, `has unknown fields ${unknown.join(', ')}`);
    const path = f.path;
    if (typeof path !== 'string' || !isSafeRelativePath(path)) return fail(`${field}.path`, 'must be a relative path without ".", ".." or empty segments');
    if (paths.has(path) || dirs.has(path)) fail(`${field}.path`, `"${path}" appears twice, or as a file and a folder`);
    const parents = parentDirs(path);
    for (const d of parents) if (paths.has(d)) fail(`${field}.path`, `"${path}" lies under "${d}", which is a file`);
    paths.add(path);
    for (const d of parents) dirs.add(d);
    const mode = f.mode;
    if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o7777) fail(`${field}.mode`, 'must be permission bits (0 to 0o7777)');
    const fileBytes = byteCount(f.bytes, `${field}.bytes`, fail);
    const fileChunks = chunkList(f.chunks, `${field}.chunks`, fail);
    if (sumBytes(fileChunks) !== fileBytes) fail(`${field}.bytes`, `is ${fileBytes} but its chunks add up to ${sumBytes(fileChunks)}`);
    files.push({ path, mode: mode as number, bytes: fileBytes, chunks: fileChunks });
    sum += fileBytes;
  }
  if (sum !== bytesTotal) fail('bytes', `is ${bytesTotal} but the files add up to ${sum}`);
  manifest.files = files;
  assertOneSizePerHash(files.map((f) => f.chunks), fail);
  return manifest;
}

/** Relative '/'-separated path whose every segment is a plain name: it cannot leave the folder it is joined to. */
export function isSafeRelativePath(path: string): boolean {
  if (path.length === 0 || Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) return false;
  if (path.includes('\\') || path.includes('\0')) return false;
  return path.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

// A hash listed twice with two sizes cannot be right for both; refusing it keeps
// uniqueChunks (first size wins) from hiding the other.
function assertOneSizePerHash(lists: ChunkRef[][], fail: (field: string, message: string) => never): void {
  const sizes = new Map<string, number>();
  for (const list of lists) {
    for (const c of list) {
      const known = sizes.get(c.hash);
      if (known !== undefined && known !== c.bytes) fail('chunks', `give chunk ${c.hash} two sizes (${known} and ${c.bytes})`);
      sizes.set(c.hash, c.bytes);
    }
  }
}

function parentDirs(path: string): string[] {
  const segs = path.split('/');
  return segs.slice(0, -1).map((_, i) => segs.slice(0, i + 1).join('/'));
}

function chunkRef(c: ChunkRef): ChunkRef {
  return { hash: c.hash, bytes: c.bytes };
}

function sumBytes(chunks: ChunkRef[]): number {
  return chunks.reduce((n, c) => n + c.bytes, 0);
}

function byteCount(value: unknown, field: string, fail: (field: string, message: string) => never): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return fail(field, 'must be a non-negative integer');
  return value;
}

function chunkList(value: unknown, field: string, fail: (field: string, message: string) => never): ChunkRef[] {
  if (!Array.isArray(value)) return fail(field, 'must be an array');
  return value.map((c: unknown, i): ChunkRef => {
    if (!isPlainObject(c)) return fail(`${field}[${i}]`, 'must be an object');
    const unknown = unknownKeys(c, ['hash', 'bytes']);
    if (unknown.length > 0) fail(`${field}[${i}]`, `has unknown fields ${unknown.join(', ')}`);
    if (!isChunkHash(c.hash)) return fail(`${field}[${i}].hash`, 'must be 64 lowercase hex digits');
    const bytes = c.bytes;
    if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 1 || bytes > MAX_CHUNK_BYTES) return fail(`${field}[${i}].bytes`, `must be an integer from 1 to ${MAX_CHUNK_BYTES}`);
    return { hash: c.hash, bytes };
  });
}
