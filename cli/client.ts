// The CLI is an HTTP client of the gateway (docs/api.md). Exit codes: 1 for a job that
// failed or is not found, 2 for usage, 3 when no node of the cluster answers.
//
// A secure-mode node serves HTTPS with a certificate from the cluster's own CA, which
// no system trust store knows: the CLI trusts the CA given with --ca-file, or the one
// the server hands out at GET /v1/cluster/ca once its SHA-256 matches --ca-fingerprint
// (the fingerprint `workrs start` logs). Requests go through undici, whose fetch takes
// a dispatcher with that CA; the global fetch cannot.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Agent, fetch, type FormData, type Response } from 'undici';
import { fingerprintOf, normalizeFingerprint } from '../src/tls/pki.js';
import { CliError, EXIT } from './exit.js';

export interface ClientOptions {
  /** A node's URL, or several comma-separated: tried in order until one answers. */
  server: string;
  tokenFile?: string;
  /** PEM of the cluster CA to trust (--ca-file, WORKRS_CA_FILE). */
  caFile?: string;
  /** SHA-256 of the cluster CA (--ca-fingerprint, WORKRS_CA_FINGERPRINT): the server's CA is fetched and pinned. */
  caFingerprint?: string;
  /** The API token itself (null: send none), for callers that hold one (the demo); else WORKRS_TOKEN or --token-file. */
  token?: string | null;
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

function token(opts: ClientOptions): string | null {
  if (opts.token !== undefined) return opts.token;
  const env = process.env.WORKRS_TOKEN;
  if (env) return env.trim();
  if (!opts.tokenFile) return null;
  try {
    return readFileSync(opts.tokenFile, 'utf8').trim();
  } catch (err) {
    throw new CliError(`--token-file ${opts.tokenFile}: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
  }
}

function apiError(body: unknown): { code: string; message: string } | null {
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const e = (body as { error: unknown }).error;
    if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) return { code: String(e.code), message: String(e.message) };
  }
  return null;
}

/**
 * The words for a refused answer: a missing token gets told where one comes from, and
 * a 5xx names the node that answered (it is reachable; the cluster could not do it now).
 */
function refusal(status: number, body: unknown, hasToken: boolean, origin: string): string {
  const e = apiError(body);
  const message = e ? `${e.message} (${e.code})` : `HTTP ${status}`;
  if (status === 401 && !hasToken) return `${message}; the CLI sends the token in --token-file FILE or WORKRS_TOKEN`;
  if (status >= 500) return `${origin} answered ${status}: ${message}`;
  return message;
}

/** The first certificate of a PEM text, or null when it holds none. */
function firstCertificate(pem: string): X509Certificate | null {
  try {
    return new X509Certificate(pem);
  } catch {
    return null;
  }
}

/** Node's codes for a certificate chain that does not lead to a trusted CA. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/** The innermost cause of a failed request (fetch wraps the socket's error in a TypeError). */
function rootCause(err: unknown): Error & { code?: string } {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e : new Error(String(e));
}

/** A body sent as it is read (a big file), never held in memory. */
export interface StreamBody {
  body: AsyncIterable<Uint8Array>;
  contentType: string;
  bytes: number;
}

/** Most bytes read of GET /v1/cluster/ca before it is verified: a CA certificate is a few KB. */
const CA_MAX_BYTES = 64 * 1024;

/**
 * Connection failures that happen before a request reaches a node: the next node of
 * --server may be asked the same, even a submission, without the risk of doing it twice.
 */
const NEVER_REACHED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNABORTED']);

/** Whether a request failed before any node received it (a refused connection, an unknown host). */
function neverReached(err: unknown): boolean {
  return err instanceof CliError && err.exitCode === EXIT.unreachable && NEVER_REACHED.has(rootCause(err.cause).code ?? '');
}

export class ApiClient {
  /** The nodes of --server, in the order given; `at` is the one in use. */
  private readonly bases: URL[];
  private at = 0;
  private readonly auth: string | null;
  /** The CA PEM to trust (undefined: the system store), settled before the first request. */
  private trust: Promise<string | undefined> | null = null;
  private agent: Agent | null = null;

  constructor(readonly opts: ClientOptions) {
    const servers = opts.server.split(',').map((u) => u.trim()).filter((u) => u !== '');
    if (servers.length === 0) throw new CliError('--server: no URL given (e.g. https://127.0.0.1:7701, or several separated by commas)', EXIT.usage);
    this.bases = servers.map((server) => {
      let base: URL;
      try {
        base = new URL(server);
      } catch {
        throw new CliError(`--server: '${server}' is not a URL (e.g. https://127.0.0.1:7701)`, EXIT.usage);
      }
      if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new CliError(`--server: '${server}' is not an http:// or https:// URL`, EXIT.usage);
      // A CA option says the operator expects TLS: never send the token in clear instead.
      if (base.protocol === 'http:' && (opts.caFile || opts.caFingerprint)) {
        throw new CliError(`--server ${server} is plain HTTP but ${opts.caFile ? '--ca-file' : '--ca-fingerprint'} is given: use https://${base.host}`, EXIT.usage);
      }
      return base;
    });
    this.auth = token(opts);
  }

  /** The node asked now. */
  private get base(): URL {
    return this.bases[this.at] as URL;
  }

  /**
   * Runs `attempt` against the node in use; when it fails before reaching that node
   * (refused, unknown host), against the next one of --server, and so on. The node
   * that answered stays in use. With every node unreachable, the last failure is
   * thrown, naming how many were tried.
   */
  private async onSomeNode<T>(attempt: () => Promise<T>): Promise<T> {
    const failures: string[] = [];
    for (;;) {
      try {
        return await attempt();
      } catch (err) {
        if (!neverReached(err) || this.bases.length === 1) throw err;
        failures.push(`${this.base.origin}: ${rootCause((err as CliError).cause).message}`);
        if (failures.length === this.bases.length) throw new CliError(`cannot reach the cluster: none of the ${failures.length} nodes of --server answers (${failures.join('; ')})`, EXIT.unreachable, { cause: err });
        this.at = (this.at + 1) % this.bases.length;
      }
    }
  }

  /** The CA the requests trust, resolved once: from the file, the pinned fetch, or none. */
  private trusted(): Promise<string | undefined> {
    // A failure is not kept: a retry (an election under way) fetches the CA again.
    this.trust ??= this.resolveTrust().catch((err: unknown) => {
      this.trust = null;
      throw err;
    });
    return this.trust;
  }

  private async resolveTrust(): Promise<string | undefined> {
    // An empty value (an env var set to nothing) is no option.
    const caFile = this.opts.caFile || undefined;
    const caFingerprint = this.opts.caFingerprint || undefined;
    if (this.base.protocol === 'http:' || (!caFile && !caFingerprint)) return undefined;
    const pinned = caFingerprint === undefined ? null : normalizeFingerprint(caFingerprint);
    if (caFingerprint !== undefined && pinned === null) throw new CliError(`--ca-fingerprint: '${caFingerprint}' is not a SHA-256 fingerprint (64 hex digits, colons and a sha256: prefix allowed)`, EXIT.usage);
    if (caFile) {
      let pem: string;
      try {
        pem = readFileSync(caFile, 'utf8');
      } catch (err) {
        throw new CliError(`--ca-file ${caFile}: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
      }
      const cert = firstCertificate(pem);
      if (!cert) throw new CliError(`--ca-file ${caFile}: no PEM certificate in it (expected a node's DATA/ca.pem)`, EXIT.usage);
      if (pinned === null) return pem;
      const actual = fingerprintOf(cert.toString());
      if (actual !== pinned) throw new CliError(`--ca-file ${caFile} holds the CA sha256:${actual}, not the --ca-fingerprint sha256:${pinned} given: refusing to trust it`, EXIT.usage);
      return cert.toString();
    }
    if (pinned === null) throw new Error('unreachable: neither --ca-file nor --ca-fingerprint');
    return this.fetchPinnedCa(pinned);
  }

  /**
   * GET /v1/cluster/ca without verifying the server (no token sent), then trust only
   * the certificate whose SHA-256 is `pinned`: anything else the answer carries (a
   * second certificate, the fingerprint header) may come from whoever answered.
   */
  private async fetchPinnedCa(pinned: string): Promise<string> {
    const url = new URL('/v1/cluster/ca', this.base);
    const unverified = new Agent({ connect: { rejectUnauthorized: false } });
    let pem: string;
    try {
      const res = await fetch(url, { dispatcher: unverified, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      const text = await boundedText(res, CA_MAX_BYTES);
      if (res.status === 404) throw new CliError(`${this.base.origin} has no cluster CA (GET /v1/cluster/ca answered 404): a node started without --secret-file serves plain http://`, EXIT.usage);
      if (res.status !== 200) throw new CliError(`cannot fetch the cluster CA from ${url.href}: HTTP ${res.status}`, EXIT.failed);
      pem = text;
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw this.connectFailure(err);
    } finally {
      // destroy, not close: close would wait for a body this client gave up on.
      await unverified.destroy();
    }
    const cert = firstCertificate(pem);
    if (!cert) throw new CliError(`${url.href} answered without a PEM certificate`, EXIT.failed);
    const actual = fingerprintOf(cert.toString());
    if (actual !== pinned) {
      throw new CliError(`the CA served by ${this.base.origin} has fingerprint sha256:${actual}, not the --ca-fingerprint sha256:${pinned} given: refusing to trust it (another cluster, or someone between you and it)`, EXIT.usage);
    }
    return cert.toString();
  }

  private async dispatcher(): Promise<Agent> {
    const ca = await this.trusted();
    this.agent ??= new Agent(ca === undefined ? {} : { connect: { ca } });
    return this.agent;
  }

  /** Lets the process (or a test's server) end without waiting for idle kept-alive connections. */
  async close(): Promise<void> {
    await this.agent?.close();
    this.agent = null;
  }

  /** A failed connection in words: an untrusted certificate is the operator's to fix (2), the rest is unreachable (3). */
  private connectFailure(err: unknown): CliError {
    const cause = rootCause(err);
    const code = cause.code ?? '';
    const origin = this.base.origin;
    if (UNTRUSTED.has(code)) {
      const why = this.opts.caFile
        ? `its certificate is not from the CA in --ca-file ${this.opts.caFile}`
        : this.opts.caFingerprint
          ? 'its certificate is not from the CA pinned with --ca-fingerprint'
          : 'give the cluster CA with --ca-file DATA/ca.pem (from any node\'s data folder) or pin it with --ca-fingerprint SHA256 (logged by workrs start)';
      return new CliError(`cannot trust ${origin} (${cause.message}): ${why}`, EXIT.usage, { cause: err });
    }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return new CliError(`cannot trust ${origin}: ${cause.message}; use an address the node's certificate names (its --api address)`, EXIT.usage, { cause: err });
    }
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
      return new CliError(`${origin} does not speak TLS: a node started without --secret-file (dev mode) serves plain http://${this.base.host}`, EXIT.usage, { cause: err });
    }
    // A secure-mode node drops plain HTTP without an answer.
    const hint =
      this.base.protocol === 'http:' && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')
        ? ` (a node started with --secret-file serves HTTPS only: use https://${this.base.host})`
        : code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH'
          ? ` (no node answers there: start one, or name a running node's --api address with --server URL[,URL…] or WORKRS_SERVER)`
          : '';
    return new CliError(`cannot reach the cluster at ${origin}: ${cause.message}${hint}`, EXIT.unreachable, { cause: err });
  }

  /** Sends a request; a 4xx/5xx answer becomes a CliError unless `accept` lists its status. */
  async request<T>(method: string, path: string, init: { json?: unknown; form?: FormData; stream?: StreamBody; headers?: Record<string, string>; accept?: number[] } = {}): Promise<ApiResponse<T>> {
    // A streamed body can be sent once: it goes to the node in use only.
    return init.stream ? this.requestOnce<T>(method, path, init) : this.onSomeNode(() => this.requestOnce<T>(method, path, init));
  }

  private async requestOnce<T>(method: string, path: string, init: { json?: unknown; form?: FormData; stream?: StreamBody; headers?: Record<string, string>; accept?: number[] }): Promise<ApiResponse<T>> {
    const dispatcher = await this.dispatcher();
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (this.auth) headers.authorization = `Bearer ${this.auth}`;
    let body: string | FormData | AsyncIterable<Uint8Array> | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.form) {
      body = init.form; // fetch sets the multipart content type with its boundary
    } else if (init.stream) {
      headers['content-type'] = init.stream.contentType;
      headers['content-length'] = String(init.stream.bytes);
      body = init.stream.body;
    }
    const timeoutMs = init.stream ? 3_600_000 : init.form ? 600_000 : 30_000;
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base), { method, headers, body, dispatcher, signal: AbortSignal.timeout(timeoutMs), ...(init.stream ? { duplex: 'half' as const } : {}) });
    } catch (err) {
      throw this.connectFailure(err);
    }
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json')) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new CliError(`the server answered ${res.status} with invalid JSON`, EXIT.failed);
      }
    }
    if (res.status >= 400 && !(init.accept ?? []).includes(res.status)) {
      // 401 and 403 are the caller's credentials (a missing, revoked or too weak token): usage.
      const usage = [400, 401, 403, 413, 415];
      const exit = res.status === 404 ? EXIT.failed : usage.includes(res.status) ? EXIT.usage : res.status >= 500 ? EXIT.unreachable : EXIT.failed;
      throw new CliError(refusal(res.status, parsed, this.auth !== null, this.base.origin), exit);
    }
    return { status: res.status, body: parsed as T };
  }

  /**
   * A GET whose answer is streamed (logs, archives): the body once the status is 200.
   * node:http rather than fetch, which gives up on a body that stays quiet for 5 minutes.
   */
  stream(path: string): Promise<IncomingMessage> {
    return this.onSomeNode(() => this.streamOnce(path));
  }

  private async streamOnce(path: string): Promise<IncomingMessage> {
    const ca = await this.trusted();
    const url = new URL(path, this.base);
    const headers: Record<string, string> = this.auth ? { authorization: `Bearer ${this.auth}` } : {};
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = url.protocol === 'https:' ? httpsRequest(url, { headers, ...(ca === undefined ? {} : { ca }) }, resolve) : httpRequest(url, { headers }, resolve);
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (err) => reject(this.connectFailure(err)));
      req.end();
    });
    // Past the headers, a quiet followed log is normal.
    res.socket.setTimeout(0);
    if (res.statusCode === 200) return res;
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      // not JSON: report the status
    }
    const status = res.statusCode ?? 0;
    throw new CliError(refusal(status, parsed, this.auth !== null, this.base.origin), status === 404 || status === 409 ? EXIT.failed : status >= 500 ? EXIT.unreachable : EXIT.usage);
  }
}

/** The body as text, refused past `maxBytes` (an answer not yet verified may be anything). */
async function boundedText(res: Response, maxBytes: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > maxBytes) throw new CliError(`${res.url || 'the server'} answered GET /v1/cluster/ca with more than ${maxBytes} bytes: not a CA certificate`, EXIT.failed);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}
