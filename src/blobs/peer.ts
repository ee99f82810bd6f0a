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
import type http from 'node:http';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { pino, type Logger } from 'pino';
import { WorkrsError } from '../errors.js';
import { assertPeerId } from '../util/peer-address.js';
import { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { BlobFetcher, type FetchOptions, type FetchResult } from './blob-fetcher.js';
import { AUTH_HEADER, BulkVerifier, bodyMatches } from './bulk-auth.js';
import { answerJson, decodeSegment, headerOf, isLoopbackAddress, MAX_REQUEST_BODY_BYTES, parsePullBody, readBody, type BlobPeerStats, type BulkTls, type PullAnswer } from './bulk-wire.js';
import { BlobNotFoundError } from './errors.js';
import { isBlobId, isChunkHash } from './manifest.js';
import type { BlobStore } from './store.js';

export type { FetchOptions, FetchProgress, FetchResult } from './blob-fetcher.js';
export type { BlobPeerStats, BulkTls, PullAnswer } from './bulk-wire.js';

export const BULK_PREFIX = '/bulk/';
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

export class BlobPeer {
  readonly nodeId: string;
  private readonly store: BlobStore;
  private readonly token: Buffer | null;
  private readonly addressOf: (nodeId: string) => string | null;
  private readonly verifier: BulkVerifier;
  private readonly fetcher: BlobFetcher;
  private readonly log: Logger;
  /** Repeated warnings about the same peer and cause are logged at debug in between. */
  private readonly warnings: RateLimitedWarn;
  private readonly now: () => number;
  private readonly tls: BulkTls | null;
  private readonly pulls = new Map<string, Promise<FetchResult>>();
  private readonly counters: BlobPeerStats = { servedManifests: 0, servedChunks: 0, servedChunkBytes: 0, fetchedChunks: 0, fetchedBytes: 0, refusedChunks: 0, unauthorized: 0, busy: 0 };

  constructor(opts: BlobPeerOptions) {
    assertPeerId(opts.nodeId, 'BlobPeer nodeId');
    this.nodeId = opts.nodeId;
    this.store = opts.store;
    this.token = opts.token;
    this.tls = opts.tls ?? null;
    this.addressOf = opts.addressOf;
    this.verifier = new BulkVerifier({
      token: opts.token,
      nodeId: opts.nodeId,
      ...(opts.maxSkewMs === undefined ? {} : { maxSkewMs: opts.maxSkewMs }),
      ...(opts.maxNonces === undefined ? {} : { maxNonces: opts.maxNonces }),
    });
    const concurrency = atLeast('concurrency', opts.concurrency ?? 4, 1);
    const idleTimeoutMs = atLeast('idleTimeoutMs', opts.idleTimeoutMs ?? 30_000, 1);
    const pullTimeoutMs = atLeast('pullTimeoutMs', opts.pullTimeoutMs ?? 600_000, 1);
    this.now = opts.now ?? Date.now;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'bulk', node: opts.nodeId });
    this.warnings = new RateLimitedWarn(this.log, WARN_INTERVAL_MS);
    this.fetcher = new BlobFetcher({
      store: opts.store,
      nodeId: opts.nodeId,
      token: opts.token,
      tls: this.tls,
      addressOf: opts.addressOf,
      concurrency,
      idleTimeoutMs,
      pullTimeoutMs,
      now: this.now,
      log: this.log,
      counters: this.counters,
    });
  }

  stats(): BlobPeerStats {
    return { ...this.counters };
  }

  /** Closes idle keep-alive sockets to peers. Requests under way fail. */
  close(): void {
    this.fetcher.close();
  }

  /**
   * Makes this node hold blob `id`, moving only the chunks it lacks from `holders`
   * (node ids, reached at addressOf; this node is skipped). Each chunk is asked of the
   * holders in turn, those that failed least first; a chunk whose bytes do not hash
   * right is refused and asked of the next. BlobFetchError when some chunk came from no
   * holder. Resolves once every chunk is stored and synced.
   */
  fetch(id: string, holders: readonly string[], opts: FetchOptions = {}): Promise<FetchResult> {
    return this.fetcher.fetch(id, holders, opts);
  }

  /**
   * Asks node `to` to pull blob `id` from this node (it finds this node in its own node
   * table); resolves with its answer once it holds the blob. The blob must be whole here.
   */
  push(id: string, to: string): Promise<PullAnswer> {
    return this.fetcher.push(id, to);
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
    if (what === 'manifest') return this.serveManifest(res, decodeSegment(arg ?? ''));
    if (what === 'chunk') return this.serveChunk(res, decodeSegment(arg ?? ''));
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
}

function atLeast(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`BlobPeer: ${name} must be a number ≥ ${min}, got ${value}`);
  return value;
}
