// The fetching side of the bulk transfer: makes this node hold a blob by moving the
// chunks it lacks from the blob's holders, several at a time, each streamed and
// checked against its hash (store.receiveChunk); and asks another node to pull a blob
// from this one. Requests name nodes and go to the address the node table gives them.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { parsePeerAddress } from '../util/peer-address.js';
import { AUTH_HEADER, EMPTY_BODY_SHA256, bodySha256, signBulkRequest } from './bulk-auth.js';
import { errorMessageOf, MAX_ERROR_BODY_BYTES, MAX_REQUEST_BODY_BYTES, messageOf, parsePullAnswer, readBody, type BlobPeerStats, type BulkTls, type PullAnswer } from './bulk-wire.js';
import { syncDirs } from './chunk-files.js';
import { BlobCorruptError, BlobFetchError, BlobIncompleteError, BlobNotFoundError } from './errors.js';
import { MAX_MANIFEST_BYTES, manifestHashOf, uniqueChunks, type ChunkRef, type Manifest } from './manifest.js';
import type { BlobStore } from './store.js';

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

export interface BlobFetcherOptions {
  store: BlobStore;
  nodeId: string;
  token: Buffer | null;
  tls: BulkTls | null;
  addressOf: (nodeId: string) => string | null;
  concurrency: number;
  idleTimeoutMs: number;
  pullTimeoutMs: number;
  now: () => number;
  log: Logger;
  /** The peer's counters: fetchedChunks, fetchedBytes and refusedChunks are counted here. */
  counters: BlobPeerStats;
}

interface Source {
  node: string;
  failures: number; // requests that failed this fetch: tried later for the next chunks
}

export class BlobFetcher {
  private readonly store: BlobStore;
  private readonly nodeId: string;
  private readonly token: Buffer | null;
  private readonly tls: BulkTls | null;
  private readonly addressOf: (nodeId: string) => string | null;
  private readonly concurrency: number;
  private readonly idleTimeoutMs: number;
  private readonly pullTimeoutMs: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly counters: BlobPeerStats;
  // Idle pooled sockets are dropped after 4 s, before Node's server closes them (5 s
  // keepAliveTimeout): reusing one the server is closing would fail a healthy holder.
  private readonly agent: http.Agent;

  constructor(opts: BlobFetcherOptions) {
    this.store = opts.store;
    this.nodeId = opts.nodeId;
    this.token = opts.token;
    this.tls = opts.tls;
    this.addressOf = opts.addressOf;
    this.concurrency = opts.concurrency;
    this.idleTimeoutMs = opts.idleTimeoutMs;
    this.pullTimeoutMs = opts.pullTimeoutMs;
    this.now = opts.now;
    this.log = opts.log;
    this.counters = opts.counters;
    const agentOptions = { keepAlive: true, maxSockets: 16, timeout: 4_000 };
    this.agent = this.tls ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  }

  /** Closes idle keep-alive sockets to peers. Requests under way fail. */
  close(): void {
    this.agent.destroy();
  }

  /** BlobPeer.fetch: each chunk is asked of the holders that failed least first. */
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

  /** BlobPeer.push. */
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
