// Bulk transfer of blobs between nodes, over plain HTTP on the peer port (the
// transport hands us every request outside /peer through its onHttpRequest hook):
//
//   GET  /bulk/manifest/:id   the manifest bytes of a blob held here
//   GET  /bulk/chunk/:hash    one chunk, streamed
//   POST /bulk/pull           {"id": blob id, "from": [node id, …]}: pull the blob from
//                             those holders; answered once it is held here
//
// Every request carries x-workrs-auth (bulk-auth.ts): signed for this node, fresh, its
// nonce not seen before, its body the one signed; anything else is a 401. Requests
// name nodes, never addresses: a node is reached only at the peer address the
// replicated node table gives it (addressOf), so no request can point this node at a
// host of its choosing. Nothing received is trusted: the manifest must hash to the
// blob id and each chunk to its hash, checked while it streams to a temp file
// (store.receiveChunk); a chunk that does not is refused and asked of the next holder. A fetch moves only the chunks
// this node lacks, several at a time, each streamed: memory stays bounded whatever
// the blob's size.
import http from 'node:http';
import https from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { open } from 'node:fs/promises';
import { pino, type Logger } from 'pino';
import { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { WorkrsError } from '../errors.js';
import { isPlainObject, unknownKeys } from '../state/parse.js';
import { parsePeerAddress } from '../transport/address.js';
import { assertPeerId } from '../transport/handshake.js';
import { AUTH_HEADER, BulkVerifier, EMPTY_BODY_SHA256, bodyMatches, bodySha256, signBulkRequest } from './bulk-auth.js';
import { BlobCorruptError, BlobFetchError, BlobIncompleteError, BlobNotFoundError } from './errors.js';
import { MAX_MANIFEST_BYTES, isBlobId, isChunkHash, manifestHashOf, uniqueChunks, type ChunkRef, type Manifest } from './manifest.js';
import { syncDirs, type BlobStore } from './store.js';

export const BULK_PREFIX = '/bulk/';
/** Largest request body read (a pull; the GETs have none), and largest pull answer. */
const MAX_REQUEST_BODY_BYTES = 64 * 1024;
const MAX_PULL_HOLDERS = 64;
const MAX_ERROR_BODY_BYTES = 4096;
const WARN_INTERVAL_MS = 30_000;

export interface BlobPeerOptions {
  store: BlobStore;
  nodeId: string;
  /** Cluster token; null = none configured: the empty key, and requests from loopback only (unless tls is given). */
  token: Buffer | null;
  /**
   * Secure mode: requests go over TLS with this node's certificate and must reach the
   * node they are for; a request served must come with a certificate naming its sender.
   */
  tls?: BulkTls;
  /**
   * The peer address ("host:port") of a node as the replicated node table gives it;
   * null for a node it does not list (or one that left). Every request this node
   * makes goes to an address from here.
   */
  addressOf: (nodeId: string) => string | null;
  /** Accepted difference between a request's timestamp and this node's clock. Default 60 s. */
  maxSkewMs?: number;
  /** Nonces of accepted requests remembered at once (bulk-auth.ts); beyond it requests get 503. Default 262,144. */
  maxNonces?: number;
  /** Chunk downloads in parallel per fetch. Default 4. */
  concurrency?: number;
  /** A request to a peer that sends nothing for this long fails (and the next holder is tried). Default 30 s. */
  idleTimeoutMs?: number;
  /** How long push waits for the far node to finish pulling. Default 10 min. */
  pullTimeoutMs?: number;
  logger?: Logger;
  now?: () => number; // milliseconds since the epoch; default Date.now
}

export interface FetchProgress {
  fetchedBytes: number; // received and stored so far
  missingBytes: number; // what this fetch has to move in all
  fetchedChunks: number;
  missingChunks: number;
}

export interface FetchOptions {
  /** Called after each stored chunk (and once at the start with zeros). Must not throw. */
  onProgress?: (progress: FetchProgress) => void;
}

export interface FetchResult {
  id: string;
  bytes: number; // content bytes of the blob
  chunks: number; // distinct chunks in the blob
  presentChunks: number; // already here before the fetch
  fetchedChunks: number;
  fetchedBytes: number;
  refusedChunks: number; // received with a wrong hash or size and thrown away
}

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

interface Source {
  node: string;
  failures: number; // requests that failed this fetch: tried later for the next chunks
}

export class BlobPeer {
  readonly nodeId: string;
  private readonly store: BlobStore;
  private readonly token: Buffer | null;
  private readonly addressOf: (nodeId: string) => string | null;
  private readonly verifier: BulkVerifier;
  private readonly concurrency: number;
  private readonly idleTimeoutMs: number;
  private readonly pullTimeoutMs: number;
  private readonly log: Logger;
  /** Repeated warnings about the same peer and cause are logged at debug in between. */
  private readonly warnings: RateLimitedWarn;
  private readonly now: () => number;
  // Idle pooled sockets are dropped after 4 s, before Node's server closes them (5 s
  // keepAliveTimeout): reusing one the server is closing would fail a healthy holder.
  private readonly agent: http.Agent;
  private readonly tls: BulkTls | null;
  private readonly pulls = new Map<string, Promise<FetchResult>>();
  private readonly counters: BlobPeerStats = { servedManifests: 0, servedChunks: 0, servedChunkBytes: 0, fetchedChunks: 0, fetchedBytes: 0, refusedChunks: 0, unauthorized: 0, busy: 0 };

  constructor(opts: BlobPeerOptions) {
    assertPeerId(opts.nodeId, 'BlobPeer nodeId');
    this.nodeId = opts.nodeId;
    this.store = opts.store;
    this.token = opts.token;
    this.tls = opts.tls ?? null;
    const agentOptions = { keepAlive: true, maxSockets: 16, timeout: 4_000 };
    this.agent = this.tls ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.addressOf = opts.addressOf;
    this.verifier = new BulkVerifier({
      token: opts.token,
      nodeId: opts.nodeId,
      ...(opts.maxSkewMs === undefined ? {} : { maxSkewMs: opts.maxSkewMs }),
      ...(opts.maxNonces === undefined ? {} : { maxNonces: opts.maxNonces }),
    });
    this.concurrency = atLeast('concurrency', opts.concurrency ?? 4, 1);
    this.idleTimeoutMs = atLeast('idleTimeoutMs', opts.idleTimeoutMs ?? 30_000, 1);
    this.pullTimeoutMs = atLeast('pullTimeoutMs', opts.pullTimeoutMs ?? 600_000, 1);
    this.now = opts.now ?? Date.now;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'bulk', node: opts.nodeId });
    this.warnings = new RateLimitedWarn(this.log, WARN_INTERVAL_MS);
  }

  stats(): BlobPeerStats {
    return { ...this.counters };
  }

  /** Closes idle keep-alive sockets to peers. Requests under way fail. */
  close(): void {
    this.agent.destroy();
  }

  // ---- serving ----

  /**
   * Serves a request if its path is under /bulk/ and returns true; returns false (and
   * leaves the request alone) otherwise. Meant for PeerTransport's onHttpRequest.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const url = req.url ?? '/';
    if (!url.startsWith(BULK_PREFIX)) return false;
    this.serve(req, res, url).catch((err: unknown) => {
      if (res.headersSent) {
        // Mid-stream, mostly a receiver that hung up; else it sees a short body and refuses the chunk.
        this.log.debug({ err, url, method: req.method }, 'bulk answer cut short');
        res.destroy();
        return;
      }
      const status = err instanceof WorkrsError ? err.httpStatus : 500;
      if (status >= 500) this.log.warn({ err, url, method: req.method }, 'bulk request failed');
      else this.log.debug({ err, url, method: req.method }, 'bulk request refused');
      const code = err instanceof WorkrsError ? err.code : 'INTERNAL';
      answerJson(res, status, { error: { code, message: err instanceof Error ? err.message : String(err) } });
    });
    return true;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse, url: string): Promise<void> {
    const method = req.method ?? 'GET';
    const remote = req.socket.remoteAddress ?? '';
    const certified = this.tls ? this.tls.nodeOf(req.socket) : null;
    if (this.tls && certified === null) return this.unauthorized(req, res, `bulk requests need a certificate of the cluster CA; ${remote} presented none that is valid`);
    if (!this.tls && this.token === null && !isLoopbackAddress(remote)) {
      return this.unauthorized(req, res, `no cluster token configured: bulk requests are accepted from loopback only, not ${remote}`);
    }
    const auth = this.verifier.verify(headerOf(req, AUTH_HEADER), method, url, this.now());
    if (!auth.ok) return auth.code === 'REPLAY_CACHE_FULL' ? this.busy(req, res, auth.reason) : this.unauthorized(req, res, auth.reason);
    if (this.tls && auth.nodeId !== certified) return this.unauthorized(req, res, `the request says it is from ${auth.nodeId}, its certificate names ${certified ?? 'no node'}`);
    // The body is read whole (it is small) and checked before anything acts on it.
    const body = await readBody(req, MAX_REQUEST_BODY_BYTES, 'bulk request body');
    if (!bodyMatches(auth.bodySha256, body)) return this.unauthorized(req, res, 'the body is not the one the request was signed with');

    const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
    const [, , what, arg, extra] = path.split('/'); // "", "bulk", what, arg
    const allowed = what === 'pull' ? 'POST' : 'GET';
    if (extra !== undefined || (what === 'pull' ? arg !== undefined : arg === undefined) || !['manifest', 'chunk', 'pull'].includes(what ?? '')) {
      throw new WorkrsError('NOT_FOUND', 404, `no such bulk endpoint: ${method} ${path}`);
    }
    if (method !== allowed) throw new WorkrsError('METHOD_NOT_ALLOWED', 405, `${method} is not allowed on ${path}`);
    if (what === 'manifest') return this.serveManifest(res, decode(arg ?? ''));
    if (what === 'chunk') return this.serveChunk(res, decode(arg ?? ''));
    return this.servePull(res, body, auth.nodeId);
  }

  private unauthorized(req: http.IncomingMessage, res: http.ServerResponse, reason: string): void {
    this.counters.unauthorized += 1;
    this.warnings.warn(`401:${req.socket.remoteAddress ?? '?'}`, { remote: req.socket.remoteAddress, url: req.url, reason }, 'bulk request refused: not authenticated');
    req.resume();
    answerJson(res, 401, { error: { code: 'UNAUTHORIZED', message: `bulk request not authenticated: ${reason}` } });
  }

  private busy(req: http.IncomingMessage, res: http.ServerResponse, reason: string): void {
    this.counters.busy += 1;
    this.warnings.warn('503:nonces', { remote: req.socket.remoteAddress, url: req.url, reason }, 'bulk request refused: too many requests within the replay window');
    req.resume();
    answerJson(res, 503, { error: { code: 'REPLAY_CACHE_FULL', message: `bulk request refused: ${reason}` } });
  }

  private async serveManifest(res: http.ServerResponse, id: string): Promise<void> {
    if (!isBlobId(id)) throw new WorkrsError('BAD_REQUEST', 400, `"${id}" is not a blob id`);
    const bytes = await this.store.manifestBytes(id);
    if (bytes === null) throw new BlobNotFoundError(id);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
    res.end(bytes);
    this.counters.servedManifests += 1;
  }

  private async serveChunk(res: http.ServerResponse, hash: string): Promise<void> {
    if (!isChunkHash(hash)) throw new WorkrsError('BAD_REQUEST', 400, `"${hash}" is not a chunk hash`);
    let fh;
    try {
      fh = await open(this.store.chunkPath(hash), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new WorkrsError('CHUNK_NOT_FOUND', 404, `chunk ${hash} is not on this node`);
      throw err;
    }
    // The open handle pins the file: a gc unlinking it meanwhile does not cut the answer.
    const { size } = await fh.stat().catch(async (err: unknown) => {
      await fh.close();
      throw err;
    });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    await pipeline(fh.createReadStream(), res);
    this.counters.servedChunks += 1;
    this.counters.servedChunkBytes += size;
  }

  private async servePull(res: http.ServerResponse, bytes: Buffer, caller: string): Promise<void> {
    const body = parsePullBody(bytes);
    for (const node of body.from) {
      if (node !== this.nodeId && this.addressOf(node) === null) {
        throw new WorkrsError('NODE_UNKNOWN', 404, `pull request: holder ${node} is not in this node's node table (unknown, or it left the cluster)`);
      }
    }
    this.log.debug({ caller, blob: body.id, from: body.from }, 'asked to pull a blob');
    let pulling = this.pulls.get(body.id);
    if (pulling === undefined) {
      pulling = this.fetch(body.id, body.from).finally(() => this.pulls.delete(body.id));
      this.pulls.set(body.id, pulling);
    }
    const result = await pulling;
    const answer: PullAnswer = { id: result.id, bytes: result.bytes, fetchedChunks: result.fetchedChunks, fetchedBytes: result.fetchedBytes };
    answerJson(res, 200, answer);
  }

  // ---- fetching ----

  /**
   * Makes this node hold blob `id`, moving only the chunks it lacks from `holders`
   * (node ids, reached at addressOf; this node is skipped). Each chunk is asked of the
   * holders in turn, those that failed least first; a chunk whose bytes do not hash
   * right is refused and asked of the next. BlobFetchError when some chunk came from no
   * holder. Resolves once every chunk is stored and synced.
   */
  async fetch(id: string, holders: readonly string[], opts: FetchOptions = {}): Promise<FetchResult> {
    manifestHashOf(id); // throws on a malformed id
    const sources: Source[] = [...new Set(holders)].filter((node) => node !== this.nodeId).map((node) => ({ node, failures: 0 }));
    return this.store.shared(async () => {
      const dirs = new Set<string>();
      const manifest = (await this.localManifest(id)) ?? (await this.fetchManifest(id, sources, dirs));
      const all = uniqueChunks(manifest);
      const missing: ChunkRef[] = [];
      for (const ref of all) if (!(await this.store.hasChunk(ref))) missing.push(ref);
      const progress: FetchProgress = { fetchedBytes: 0, missingBytes: missing.reduce((n, c) => n + c.bytes, 0), fetchedChunks: 0, missingChunks: missing.length };
      const result: FetchResult = { id, bytes: manifest.bytes, chunks: all.length, presentChunks: all.length - missing.length, fetchedChunks: 0, fetchedBytes: 0, refusedChunks: 0 };
      this.report(opts, progress);

      let next = 0;
      let failure: { ref: ChunkRef; reasons: string[] } | null = null;
      const worker = async (): Promise<void> => {
        while (failure === null && next < missing.length) {
          const ref = missing[next++] as ChunkRef;
          const outcome = await this.fetchChunk(ref, sources, dirs, result);
          if (outcome !== null) {
            failure ??= { ref, reasons: outcome }; // stop taking chunks: the blob cannot complete
            continue;
          }
          progress.fetchedBytes += ref.bytes;
          progress.fetchedChunks += 1;
          this.report(opts, progress);
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.concurrency, missing.length) }, worker));
      await syncDirs(dirs);
      const failed = failure as { ref: ChunkRef; reasons: string[] } | null;
      if (failed !== null) {
        throw new BlobFetchError(`fetch of ${id}: chunk ${failed.ref.hash} came from no holder (${failed.reasons.join('; ') || 'no holders given'}); ${result.fetchedChunks} of ${missing.length} missing chunks fetched`);
      }
      this.log.debug({ blob: id, ...result }, 'blob fetched');
      return result;
    });
  }

  /**
   * Asks node `to` to pull blob `id` from this node (it finds this node in its own node
   * table); resolves with its answer once it holds the blob. The blob must be whole here.
   */
  async push(id: string, to: string): Promise<PullAnswer> {
    const missing = await this.store.missingChunks(id);
    if (missing.length > 0) throw new BlobIncompleteError(id, missing.map((c) => c.hash), uniqueChunks(await this.store.manifest(id)).length);
    const body = Buffer.from(JSON.stringify({ id, from: [this.nodeId] }));
    const res = await this.request(to, 'POST', '/bulk/pull', body, this.pullTimeoutMs);
    const text = await readBody(res, MAX_REQUEST_BODY_BYTES, `pull answer from ${to}`);
    if (res.statusCode !== 200) throw new BlobFetchError(`push of ${id} to ${to}: HTTP ${res.statusCode}: ${errorMessageOf(text)}`);
    return parsePullAnswer(text, to);
  }

  private async localManifest(id: string): Promise<Manifest | null> {
    try {
      return await this.store.manifest(id);
    } catch (err) {
      if (err instanceof BlobNotFoundError) return null;
      if (err instanceof BlobCorruptError) {
        this.log.warn({ err, blob: id }, 'local manifest is corrupt; fetching it again');
        return null;
      }
      throw err;
    }
  }

  private async fetchManifest(id: string, sources: Source[], dirs: Set<string>): Promise<Manifest> {
    const reasons: string[] = [];
    for (const source of sources) {
      try {
        const res = await this.request(source.node, 'GET', `/bulk/manifest/${encodeURIComponent(id)}`, null, this.idleTimeoutMs);
        const bytes = await readBody(res, MAX_MANIFEST_BYTES, `manifest from ${source.node}`);
        if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${errorMessageOf(bytes)}`);
        return await this.store.receiveManifest(id, bytes, dirs);
      } catch (err) {
        source.failures += 1;
        reasons.push(`${this.describe(source.node)}: ${messageOf(err)}`);
        this.log.debug({ err, blob: id, holder: source.node }, 'manifest not fetched from this holder');
      }
    }
    throw new BlobFetchError(`fetch of ${id}: no holder gave its manifest (${reasons.join('; ') || 'no holders given'})`);
  }

  /** Fetches one chunk from the first holder that has it intact; null on success, else each holder's reason. */
  private async fetchChunk(ref: ChunkRef, sources: Source[], dirs: Set<string>, result: FetchResult): Promise<string[] | null> {
    const reasons: string[] = [];
    const ordered = [...sources].sort((a, b) => a.failures - b.failures); // stable: ties keep the caller's order
    for (const source of ordered) {
      let res: http.IncomingMessage | null = null;
      try {
        res = await this.request(source.node, 'GET', `/bulk/chunk/${ref.hash}`, null, this.idleTimeoutMs);
        if (res.statusCode !== 200) {
          throw new Error(`HTTP ${res.statusCode}: ${errorMessageOf(await readBody(res, MAX_ERROR_BODY_BYTES, 'error answer'))}`);
        }
        await this.store.receiveChunk(ref, res, dirs);
        result.fetchedChunks += 1;
        result.fetchedBytes += ref.bytes;
        this.counters.fetchedChunks += 1;
        this.counters.fetchedBytes += ref.bytes;
        return null;
      } catch (err) {
        res?.destroy();
        source.failures += 1;
        reasons.push(`${this.describe(source.node)}: ${messageOf(err)}`);
        if (err instanceof BlobCorruptError) {
          result.refusedChunks += 1;
          this.counters.refusedChunks += 1;
          this.log.warn({ err, holder: source.node, chunk: ref.hash }, 'refused a chunk that does not match its hash; asking the next holder');
        } else {
          this.log.debug({ err, holder: source.node, chunk: ref.hash }, 'chunk not fetched from this holder');
        }
      }
    }
    return reasons;
  }

  private report(opts: FetchOptions, progress: FetchProgress): void {
    if (opts.onProgress === undefined) return;
    try {
      opts.onProgress({ ...progress });
    } catch (err) {
      this.log.warn({ err }, 'fetch progress callback threw; ignored');
    }
  }

  /** A node with its address for messages: "n2 (10.0.0.2:7801)". */
  private describe(node: string): string {
    return `${node} (${this.addressOf(node) ?? 'not in the node table'})`;
  }

  /**
   * One authenticated request to node `to`, at the address the node table gives it,
   * signed for that node; resolves at the answer's headers.
   */
  private async request(to: string, method: string, path: string, body: Buffer | null, idleTimeoutMs: number): Promise<http.IncomingMessage> {
    const address = this.addressOf(to);
    if (address === null) throw new BlobFetchError(`node ${to} is not in the node table (unknown, or it left the cluster)`);
    const { host, port } = parsePeerAddress(address);
    const subject = { from: this.nodeId, to, method, path, bodySha256: body === null ? EMPTY_BODY_SHA256 : bodySha256(body) };
    const headers: http.OutgoingHttpHeaders = { [AUTH_HEADER]: signBulkRequest(this.token, subject, this.now(), randomBytes(16).toString('hex')) };
    if (body !== null) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = body.length;
    }
    return new Promise((resolve, reject) => {
      const req = this.tls
        ? https.request({ host, port, method, path, headers, agent: this.agent, ...this.tls.client(to) }, resolve)
        : http.request({ host, port, method, path, headers, agent: this.agent }, resolve);
      req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`${to} (${address}) sent nothing for ${idleTimeoutMs} ms`)));
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  }

}

function parsePullBody(bytes: Buffer): { id: string; from: string[] } {
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

function parsePullAnswer(bytes: Buffer, from: string): PullAnswer {
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
async function readBody(stream: http.IncomingMessage, limitBytes: number, what: string): Promise<Buffer> {
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

function answerJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The message of a `{"error":{"message"}}` answer, else the start of the text. */
function errorMessageOf(bytes: Buffer): string {
  const text = bytes.subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8');
  try {
    const parsed: unknown = JSON.parse(text);
    if (isPlainObject(parsed) && isPlainObject(parsed.error) && typeof parsed.error.message === 'string') return parsed.error.message;
  } catch {
    // not JSON: the raw text says what it can
  }
  return text.slice(0, 200) || '(empty body)';
}

function headerOf(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // not valid percent-encoding: the id/hash check refuses it
  }
}

function isLoopbackAddress(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function atLeast(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`BlobPeer: ${name} must be a number ≥ ${min}, got ${value}`);
  return value;
}
