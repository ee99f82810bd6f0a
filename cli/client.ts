// The CLI is an HTTP client of the gateway (API.md). Exit codes: 1 for a job that
// failed or is not found, 2 for usage, 3 when no node of the cluster answers.
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CliError, EXIT } from './exit.js';

export interface ClientOptions {
  server: string;
  tokenFile?: string;
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

function token(opts: ClientOptions): string | null {
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

/** A body sent as it is read (a big file), never held in memory. */
export interface StreamBody {
  body: AsyncIterable<Uint8Array>;
  contentType: string;
  bytes: number;
}

export class ApiClient {
  private readonly base: URL;
  private readonly auth: string | null;

  constructor(readonly opts: ClientOptions) {
    try {
      this.base = new URL(opts.server);
    } catch {
      throw new CliError(`--server: '${opts.server}' is not a URL (e.g. http://127.0.0.1:7701)`, EXIT.usage);
    }
    this.auth = token(opts);
  }

  /** Sends a request; a 4xx/5xx answer becomes a CliError unless `accept` lists its status. */
  async request<T>(method: string, path: string, init: { json?: unknown; form?: FormData; stream?: StreamBody; headers?: Record<string, string>; accept?: number[] } = {}): Promise<ApiResponse<T>> {
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
      res = await fetch(new URL(path, this.base), { method, headers, body, signal: AbortSignal.timeout(timeoutMs), ...(init.stream ? { duplex: 'half' as const } : {}) });
    } catch (err) {
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
      throw new CliError(`cannot reach the cluster at ${this.base.origin}: ${cause}`, EXIT.unreachable, { cause: err });
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
      const e = apiError(parsed);
      const message = e ? `${e.message} (${e.code})` : `HTTP ${res.status}`;
      const exit = res.status === 404 ? EXIT.failed : res.status === 400 || res.status === 401 || res.status === 413 || res.status === 415 ? EXIT.usage : res.status >= 500 ? EXIT.unreachable : EXIT.failed;
      throw new CliError(message, exit);
    }
    return { status: res.status, body: parsed as T };
  }

  /**
   * A GET whose answer is streamed (logs, archives): the body once the status is 200.
   * node:http rather than fetch, which gives up on a body that stays quiet for 5 minutes.
   */
  async stream(path: string): Promise<IncomingMessage> {
    const url = new URL(path, this.base);
    const headers: Record<string, string> = this.auth ? { authorization: `Bearer ${this.auth}` } : {};
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers }, resolve);
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (err) => reject(new CliError(`cannot reach the cluster at ${this.base.origin}: ${err.message}`, EXIT.unreachable, { cause: err })));
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
    const e = apiError(parsed);
    const status = res.statusCode ?? 0;
    throw new CliError(e ? `${e.message} (${e.code})` : `HTTP ${status}`, status === 404 || status === 409 ? EXIT.failed : status >= 500 ? EXIT.unreachable : EXIT.usage);
  }
}
