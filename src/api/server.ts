// The gateway: the HTTP API of docs/api.md, served by every node. Writes go through the
// node's Raft (forwarded to the leader); reads are linearizable unless `?stale=1`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { readUpload } from './upload.js';
import { DEFAULT_MAX_IMAGE_BYTES, receiveImageTar } from './image-upload.js';
import { HttpError, Router, readJson, sendError, sendJson, sendText, writeHead, type RequestContext } from './http.js';
import { authorizeDownloadForm, readDownloadForm } from './result-download.js';
import { parseJobListQuery, type JobListQuery, type JobPage } from './job-list.js';
import { parseSince, type LogOptions } from './log-since.js';
import { openApiText } from './openapi.js';
import { TooManyPendingError } from './backlog.js';
import { uiAsset, type UiFile } from '../ui/assets.js';
import { BUILD_HEADER, LEADER_VIEW_HEADER } from './peer-client.js';
import { authenticateCaughtUp, authorize, DEV_PRINCIPAL, type Credentials, type Need, type Principal } from './roles.js';
import type { TokenRole } from '../state/commands.js';

/** A token as the API shows it (never its hash); `token` only in the answer that made it. */
export interface TokenView {
  id: string;
  name: string;
  role: TokenRole;
  createdAt: number;
  expiresAt: number | null;
  token?: string;
}

/** What the gateway needs from the node. Every method may throw a WorkrsError. */
export interface GatewayBackend {
  /** `files`: uploaded file name → path of its bytes on disk (removed after the call). */
  submitJob(spec: unknown, idempotencyKey: string | null, files?: Map<string, string>): Promise<{ id: string; state: string }>;
  getJob(id: string, stale: boolean): Promise<unknown>;
  listJobs(query: JobListQuery, stale: boolean): Promise<JobPage>;
  cancelJob(id: string): Promise<{ id: string; state: string }>;
  /** The job's output as text; with `follow`, streamed while it runs. `local`: do not proxy to another node. */
  jobLogs(id: string, opts: LogOptions): Promise<Readable>;
  /** The finished job's result archive (tar). */
  jobResult(id: string): Promise<{ stream: Readable; bytes: number }>;
  /** `askLeader`: a follower may ask its leader for what only the leader knows (when each node last renewed). */
  cluster(stale: boolean, askLeader?: boolean): Promise<unknown>;
  /** `who`: the caller (a node joining itself registers its own certificate; an operator's join names none). */
  /** `build`: the joining node's BUILD_HEADER, as received (absent from builds before versions). */
  joinNode(body: unknown, who: Principal, build?: string | string[]): Promise<unknown>;
  removeNode(id: string): Promise<unknown>;
  /** Drains a node (`draining`), or undoes it. */
  drainNode(id: string, draining: boolean): Promise<unknown>;
  /** Imports the `docker save` tar at `tarPath` (removed after the call): src/images. `replace`: its references may move from other images. */
  importImage(tarPath: string, opts: { replace: boolean }): Promise<unknown>;
  listImages(stale: boolean): Promise<unknown[]>;
  /** The first admin token (secure mode); ACL_BOOTSTRAPPED once made. */
  aclBootstrap(): Promise<TokenView>;
  createToken(body: unknown): Promise<TokenView>;
  listTokens(): Promise<TokenView[]>;
  revokeToken(id: string): Promise<unknown>;
  /** Has a leader and has applied the log it knows to be committed. */
  ready(): { ready: boolean; reason: string };
  metrics(): Promise<string>;
}

export interface GatewayOptions {
  backend: GatewayBackend;
  /** Where uploads are staged while a submission is processed. */
  uploadDir: string;
  /** Secure mode: HTTPS with the node's certificate, callers authenticated; null = dev mode (plain HTTP, loopback, no auth). */
  secure: GatewaySecurity | null;
  logger: Logger;
  maxJsonBytes?: number;
  /** POST /v1/images refuses larger bodies with 413. */
  maxImageBytes?: number;
  /** Each answered request: its method, route pattern (`unmatched` when none), status and seconds until the answer ended. */
  onAnswered?: (method: string, route: string, status: number, seconds: number) => void;
}

export interface GatewaySecurity {
  tls: TlsOptions;
  credentials: Credentials;
  caPem: string;
  caFingerprint: string;
  /** POST /v1/cluster/enroll (src/tls/enroll.ts). */
  enroll: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

const MAX_IDEMPOTENCY_KEY = 200;
const MAX_FILE_BYTES = 1024 * 1024 * 1024;
const MAX_FILES = 64;

function flag(url: URL, name: string): boolean {
  const v = url.searchParams.get(name);
  return v === '1' || v === 'true';
}

/** The web UI: static files only; the page asks for the token and calls the API itself. */
const UI_ROUTES: ReadonlyMap<string, { file: UiFile; type: string }> = new Map([
  ['/', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/ui/lib.js', { file: 'lib.js', type: 'text/javascript; charset=utf-8' }],
  ['/ui/dom.js', { file: 'dom.js', type: 'text/javascript; charset=utf-8' }],
  ['/ui/app.js', { file: 'app.js', type: 'text/javascript; charset=utf-8' }],
  ['/ui/app.css', { file: 'app.css', type: 'text/css; charset=utf-8' }],
]);
const UI_HEADERS = {
  // Only its own script and style; no frames, no inline code.
  'content-security-policy': "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

/**
 * Sends `stream` as the answer's body (the status line is written). Whichever side
 * fails, pipeline destroys the other, so neither stays open; the client going away is
 * routine, a failing source is logged.
 */
async function sendStream(res: ServerResponse, stream: Readable, logger: Logger, what: string): Promise<void> {
  try {
    await pipeline(stream, res);
  } catch (err) {
    const clientGone = (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE';
    if (clientGone) logger.debug({ err }, `${what}: the client went away before the end`);
    else logger.warn({ err }, `${what}: the stream failed; the answer is cut short`);
  }
}

export function createGateway(opts: GatewayOptions): Server | HttpsServer {
  const { backend, logger, secure } = opts;
  const maxJson = opts.maxJsonBytes ?? 1024 * 1024;
  const router = new Router<Need>();
  const aclOff = (): never => {
    throw new HttpError(400, 'ACL_DISABLED', 'this node runs in dev mode (no --secret-file): there are no API tokens');
  };

  for (const [path, { file, type }] of UI_ROUTES) {
    router.add('GET', path, ({ res }) => {
      const text = uiAsset(file);
      writeHead(res, 200, { ...UI_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    }, 'public');
  }
  router.add('GET', '/healthz', ({ res }) => sendJson(res, 200, { ok: true }), 'public');
  router.add('GET', '/readyz', ({ res }) => {
    const r = backend.ready();
    sendJson(res, r.ready ? 200 : 503, r);
  }, 'public');
  router.add('GET', '/metrics', async ({ res }) => sendText(res, 200, await backend.metrics(), 'text/plain; version=0.0.4; charset=utf-8'), 'read');
  // Public like the web UI: it describes this executable, the same on every node, and nothing of the cluster.
  router.add('GET', '/v1/openapi.json', ({ res }) => sendText(res, 200, openApiText(), 'application/json; charset=utf-8'), 'public');

  router.add('POST', '/v1/jobs', async ({ req, res }) => {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json' && type !== 'multipart/form-data') {
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the job as application/json or multipart/form-data (got ${type || 'no content type'})`);
    }
    const key = req.headers['idempotency-key'];
    const idempotencyKey = typeof key === 'string' ? key : null;
    if (idempotencyKey !== null && (idempotencyKey.length === 0 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY)) {
      throw new HttpError(400, 'BAD_IDEMPOTENCY_KEY', `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY} characters`);
    }
    let job: { id: string; state: string };
    try {
      if (type === 'application/json') {
        job = await backend.submitJob(await readJson(req, maxJson), idempotencyKey);
      } else {
        const upload = await readUpload(req, opts.uploadDir, { maxSpecBytes: maxJson, maxFileBytes: MAX_FILE_BYTES, maxFiles: MAX_FILES });
        try {
          job = await backend.submitJob(upload.spec, idempotencyKey, upload.files);
        } finally {
          await upload.cleanup();
        }
      }
    } catch (err) {
      // The error answer (sendError) keeps headers set here.
      if (err instanceof TooManyPendingError) res.setHeader('retry-after', String(err.retryAfterSeconds));
      throw err;
    }
    sendJson(res, 202, job, { location: `/v1/jobs/${encodeURIComponent(job.id)}` });
  }, 'submit');

  router.add('GET', '/v1/jobs', async ({ res, url }) => {
    sendJson(res, 200, await backend.listJobs(parseJobListQuery(url.searchParams), flag(url, 'stale')));
  }, 'read');

  router.add('GET', '/v1/jobs/:id', async ({ res, url, params }) => {
    sendJson(res, 200, await backend.getJob(params.id ?? '', flag(url, 'stale')));
  }, 'read');

  router.add('GET', '/v1/jobs/:id/logs', async ({ res, url, params }) => {
    const follow = flag(url, 'follow');
    // A followed log of a pending job waits for it to start: stop waiting when the client goes.
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const stream = await backend.jobLogs(params.id ?? '', { follow, local: flag(url, 'local'), sinceMs: parseSince(url.searchParams.get('since')), signal: gone.signal });
    writeHead(res, 200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...(follow ? { 'x-content-type-options': 'nosniff' } : {}) });
    // A client that goes away ends the pipeline, which destroys the stream (and a followed container log with it).
    await sendStream(res, stream, logger, 'job log');
  }, 'read');

  const sendResult = async (res: ServerResponse, id: string): Promise<void> => {
    const { stream, bytes } = await backend.jobResult(id);
    const file = `${id.replace(/[^A-Za-z0-9._-]/g, '_')}-result.tar`;
    writeHead(res, 200, {
      'content-type': 'application/x-tar',
      ...(bytes > 0 ? { 'content-length': bytes } : {}),
      'content-disposition': `attachment; filename="${file}"`,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    });
    await sendStream(res, stream, logger, 'job result');
  };

  router.add('GET', '/v1/jobs/:id/result', async ({ res, params }) => sendResult(res, params.id ?? ''), 'read');

  // The web UI's download: the token in a form's body, checked here (result-download.ts).
  router.add('POST', '/v1/jobs/:id/result', async ({ req, res, params }) => {
    const id = params.id ?? '';
    if (secure) await authorizeDownloadForm(req, secure.credentials, `POST /v1/jobs/${id}/result`);
    else await readDownloadForm(req);
    await sendResult(res, id);
  }, 'public');

  router.add('DELETE', '/v1/jobs/:id', async ({ res, params }) => {
    sendJson(res, 202, await backend.cancelJob(params.id ?? ''));
  }, 'submit');

  router.add('POST', '/v1/images', async ({ req, res, url }) => {
    const tar = await receiveImageTar(req, opts.uploadDir, opts.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES);
    try {
      sendJson(res, 200, await backend.importImage(tar.path, { replace: flag(url, 'replace') }));
    } finally {
      await tar.cleanup();
    }
  }, 'admin');

  router.add('GET', '/v1/images', async ({ res, url }) => {
    sendJson(res, 200, { images: await backend.listImages(flag(url, 'stale')) });
  }, 'read');

  router.add('GET', '/v1/cluster', async ({ req, res, url }) => {
    // A node asking its leader says so: the leader's answer is its own, never asked further.
    sendJson(res, 200, await backend.cluster(flag(url, 'stale'), req.headers[LEADER_VIEW_HEADER] === undefined));
  }, 'read');

  router.add('POST', '/v1/cluster/nodes', async ({ req, res, who }) => {
    sendJson(res, 200, await backend.joinNode(await readJson(req, maxJson), who, req.headers[BUILD_HEADER]));
  }, 'admin');

  router.add('DELETE', '/v1/cluster/nodes/:id', async ({ res, params }) => {
    sendJson(res, 202, await backend.removeNode(params.id ?? ''));
  }, 'admin');

  router.add('POST', '/v1/cluster/nodes/:id/drain', async ({ res, params }) => {
    sendJson(res, 200, await backend.drainNode(params.id ?? '', true));
  }, 'admin');

  router.add('DELETE', '/v1/cluster/nodes/:id/drain', async ({ res, params }) => {
    sendJson(res, 200, await backend.drainNode(params.id ?? '', false));
  }, 'admin');

  // ---- trust: the CA, enrollment of nodes, API tokens

  router.add('GET', '/v1/cluster/ca', ({ res }) => {
    if (!secure) throw new HttpError(404, 'NO_CA', 'this node runs in dev mode (no --secret-file): there is no cluster CA');
    writeHead(res, 200, { 'content-type': 'application/x-pem-file', 'content-length': Buffer.byteLength(secure.caPem), 'x-workrs-ca-fingerprint': secure.caFingerprint });
    res.end(secure.caPem);
  }, 'public');

  router.add('POST', '/v1/cluster/enroll', async ({ req, res }) => {
    if (!secure) throw new HttpError(404, 'NO_CA', 'this node runs in dev mode (no --secret-file): it enrolls no nodes');
    await secure.enroll(req, res);
  }, 'public');

  router.add('POST', '/v1/acl/bootstrap', async ({ res }) => {
    if (!secure) aclOff();
    sendJson(res, 200, await backend.aclBootstrap());
  }, 'public');

  router.add('GET', '/v1/acl/self', ({ res, who }) => {
    const { kind, role, id, name, expiresAt } = who;
    sendJson(res, 200, { kind, role, ...(id === undefined ? {} : { id }), ...(name === undefined ? {} : { name }), ...(expiresAt === undefined ? {} : { expiresAt }), caFingerprint: secure?.caFingerprint ?? null, secure: secure !== null });
  }, 'read');

  router.add('POST', '/v1/acl/tokens', async ({ req, res }) => {
    if (!secure) aclOff();
    sendJson(res, 201, await backend.createToken(await readJson(req, maxJson)));
  }, 'admin');

  router.add('GET', '/v1/acl/tokens', async ({ res }) => {
    if (!secure) aclOff();
    sendJson(res, 200, { tokens: await backend.listTokens() });
  }, 'admin');

  router.add('DELETE', '/v1/acl/tokens/:id', async ({ res, params }) => {
    if (!secure) aclOff();
    sendJson(res, 200, await backend.revokeToken(params.id ?? ''));
  }, 'admin');

  async function handle(req: IncomingMessage, res: ServerResponse, route: { pattern: string }): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://gateway');
    } catch {
      throw new HttpError(400, 'BAD_URL', 'the request URL does not parse');
    }
    const { handler, params, meta: need, pattern } = router.match(req.method ?? 'GET', url.pathname);
    route.pattern = pattern;
    let who: Principal = DEV_PRINCIPAL;
    if (secure && need !== 'public') {
      who = await authenticateCaughtUp(req, secure.credentials);
      authorize(who, need, `${req.method ?? 'GET'} ${url.pathname}`);
    }
    const ctx: RequestContext = { req, res, url, params, who };
    await handler(ctx);
  }

  const onAnswered = opts.onAnswered;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // The route's pattern, not the path: a label per job id would grow without bound.
    const route = { pattern: 'unmatched' };
    if (onAnswered) {
      const started = process.hrtime.bigint();
      res.once('close', () => onAnswered(req.method ?? 'GET', route.pattern, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9));
    }
    handle(req, res, route).catch((err: unknown) => {
      if (!(err instanceof HttpError)) logger.warn({ err, method: req.method, url: req.url }, 'request failed');
      // A body left unread (a refusal before or while reading it) is not drained: the
      // answer closes the connection (http.ts, writeHead).
      sendError(res, err);
    });
  };
  // Plain HTTP to a secure node's port fails its TLS handshake: no answer at all.
  const server = secure ? createHttpsServer({ ...secure.tls, handshakeTimeout: 10_000 }, onRequest) : createServer(onRequest);
  server.on('tlsClientError', (err) => logger.debug({ err }, 'a client failed the TLS handshake'));
  // Slow or stuck clients must not hold sockets forever.
  server.headersTimeout = 15_000;
  server.requestTimeout = 120_000;
  return server;
}
