// A small HTTP toolkit for the gateway: routing by method and path pattern, bounded
// body reading, JSON answers, and errors as `{"error":{"code","message"}}`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { WorkrsError } from '../errors.js';

export class HttpError extends WorkrsError {
  constructor(status: number, code: string, message: string, readonly details?: unknown) {
    super(code, status, message);
    this.name = 'HttpError';
  }
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  /** The handler for a request, 405 when the path exists with other methods, 404 otherwise. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string> } {
    const segs = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const r of this.routes) {
      const params = matchParts(r.parts, segs);
      if (!params) continue;
      pathMatched = true;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { handler: r.handler, params };
    }
    if (pathMatched) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
    throw new HttpError(404, 'NOT_FOUND', `no such endpoint: ${method} ${path}`);
  }
}

function matchParts(pattern: string[], segs: string[]): Record<string, string> | null {
  if (pattern.length !== segs.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] ?? '';
    const s = segs[i] ?? '';
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(s);
      } catch {
        return null;
      }
    } else if (p !== s) {
      return null;
    }
  }
  return params;
}

/** Reads the whole body, refusing more than `maxBytes` with 413 (without buffering the excess). */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new HttpError(413, 'BODY_TOO_LARGE', `the body is ${declared} bytes; the limit is ${maxBytes}`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    total += b.length;
    if (total > maxBytes) throw new HttpError(413, 'BODY_TOO_LARGE', `the body exceeds the limit of ${maxBytes} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const body = await readBody(req, maxBytes);
  if (body.length === 0) throw new HttpError(400, 'EMPTY_BODY', 'the request needs a JSON body');
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw new HttpError(400, 'BAD_JSON', `the body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof WorkrsError) {
    const body: { error: { code: string; message: string; details?: unknown } } = { error: { code: err.code, message: err.message } };
    if (err instanceof HttpError && err.details !== undefined) body.error.details = err.details;
    sendJson(res, err.httpStatus, body);
    return;
  }
  sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error; see the node log' } });
}
