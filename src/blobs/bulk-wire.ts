// The HTTP side of the bulk transfer both ends share: the pull request and its
// answer, bounded body reads, JSON answers and error messages.
import type http from 'node:http';
import type { ConnectionOptions } from 'node:tls';
import { WorkrsError } from '../errors.js';
import { isPlainObject, unknownKeys } from '../util/parse.js';
import { assertPeerId } from '../util/peer-address.js';
import { BlobFetchError } from './errors.js';
import { isBlobId } from './manifest.js';

/** Largest request body read (a pull; the GETs have none), and largest pull answer. */
export const MAX_REQUEST_BODY_BYTES = 64 * 1024;
const MAX_PULL_HOLDERS = 64;
export const MAX_ERROR_BODY_BYTES = 4096;

/** What POST /bulk/pull answers (and push returns). */
export interface PullAnswer {
  id: string;
  bytes: number;
  fetchedChunks: number;
  fetchedBytes: number;
}

export interface BlobPeerStats {
  servedManifests: number;
  servedChunks: number;
  servedChunkBytes: number;
  fetchedChunks: number;
  fetchedBytes: number;
  refusedChunks: number;
  unauthorized: number; // requests answered 401
  busy: number; // requests answered 503: the nonce cache was full
}

export interface BulkTls {
  client: (peerId: string) => ConnectionOptions;
  /** The node a connection's client certificate proves (cluster CA, not revoked), or null. */
  nodeOf: (socket: unknown) => string | null;
}

export function parsePullBody(bytes: Buffer): { id: string; from: string[] } {
  const bad = (message: string): never => {
    throw new WorkrsError('BAD_REQUEST', 400, `pull request: ${message}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    return bad('body is not JSON');
  }
  if (!isPlainObject(raw)) return bad('body must be an object {id, from}');
  const extra = unknownKeys(raw, ['id', 'from']);
  if (extra.length > 0) bad(`unknown fields ${extra.join(', ')}`);
  if (!isBlobId(raw.id)) bad('id must be a blob id (sha256:<64 hex digits>)');
  // Holders are node ids; this node finds their addresses in its own node table.
  if (!Array.isArray(raw.from)) return bad('from must be a list of holder node ids (addresses come from the node table)');
  if (raw.from.length === 0 || raw.from.length > MAX_PULL_HOLDERS) bad(`from must name 1 to ${MAX_PULL_HOLDERS} holders`);
  const from: string[] = [];
  for (const node of raw.from as unknown[]) {
    if (typeof node !== 'string') return bad('from must hold node ids (strings)');
    try {
      assertPeerId(node, 'from');
    } catch (err) {
      bad(messageOf(err));
    }
    if (!from.includes(node)) from.push(node);
  }
  return { id: raw.id as string, from };
}

export function parsePullAnswer(bytes: Buffer, from: string): PullAnswer {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BlobFetchError(`pull answer from ${from} is not JSON`, { cause: err });
  }
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!isPlainObject(raw) || !isBlobId(raw.id) || !count(raw.bytes) || !count(raw.fetchedChunks) || !count(raw.fetchedBytes)) {
    throw new BlobFetchError(`pull answer from ${from} is not {id, bytes, fetchedChunks, fetchedBytes}`);
  }
  return { id: raw.id, bytes: raw.bytes, fetchedChunks: raw.fetchedChunks, fetchedBytes: raw.fetchedBytes };
}

/** Reads a body of at most `limitBytes`; a longer one is cut off with an error. */
export async function readBody(stream: http.IncomingMessage, limitBytes: number, what: string): Promise<Buffer> {
  const declared = Number(stream.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    stream.destroy();
    throw new WorkrsError('TOO_LARGE', 413, `${what}: ${declared} bytes, more than ${limitBytes}`);
  }
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const piece of stream) {
    const data = piece as Buffer;
    bytes += data.length;
    if (bytes > limitBytes) {
      stream.destroy();
      throw new WorkrsError('TOO_LARGE', 413, `${what}: more than ${limitBytes} bytes`);
    }
    parts.push(data);
  }
  return Buffer.concat(parts, bytes);
}

export function answerJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The message of a `{"error":{"message"}}` answer, else the start of the text. */
export function errorMessageOf(bytes: Buffer): string {
  const text = bytes.subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8');
  try {
    const parsed: unknown = JSON.parse(text);
    if (isPlainObject(parsed) && isPlainObject(parsed.error) && typeof parsed.error.message === 'string') return parsed.error.message;
  } catch {
    // not JSON: the raw text says what it can
  }
  return text.slice(0, 200) || '(empty body)';
}

export function headerOf(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // not valid percent-encoding: the id/hash check refuses it
  }
}

export function isLoopbackAddress(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
