// A small HTTP toolkit for the gateway: routing by method and path pattern, bounded
// body reading, JSON answers, and errors as `{"error":{"code","message"}}`.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WorkrsError } from '../errors.js';
import type { Principal } from './roles.js';

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
  /** Who is calling (src/api/roles.ts). */
  who: Principal;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route<M> {
  method: string;
  parts: string[];
  handler: Handler;
  meta: M;
}

/** Routes by method and path pattern; each route carries `meta` (the gateway: the role it needs). */
export class Router<M = undefined> {
  private readonly routes: Array<Route<M>> = [];

  add(method: string, pattern: string, handler: Handler, meta: M): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler, meta });
    return this;
  }

  /** The handler for a request, 405 when the path exists with other methods, 404 otherwise. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string>; meta: M; pattern: string } {
    const segs = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const r of this.routes) {
      const params = matchParts(r.parts, segs);
      if (!params) continue;
      pathMatched = true;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { handler: r.handler, params, meta: r.meta, pattern: `/${r.parts.join('/')}` };
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

/**
 * Reads the whole body, refusing more than `maxBytes` with 413 (without buffering the
 * excess). Plain 'data' events rather than an async iterator: a submission's body is
 * one chunk, and the iterator's promises per chunk cost more than the chunk.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(new HttpError(413, 'BODY_TOO_LARGE', `the body is ${declared} bytes; the limit is ${maxBytes}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (err: Error | null): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err === null) {
        resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, total));
        return;
      }
      // Stopped early, the request is left paused, not destroyed: its socket carries the answer.
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > maxBytes) finish(new HttpError(413, 'BODY_TOO_LARGE', `the body exceeds the limit of ${maxBytes} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(null);
    const onError = (err: Error): void => finish(bodyIncomplete(err));
    const onClose = (): void => {
      if (!req.complete) finish(bodyIncomplete(new Error('the connection closed')));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** The request ended (the client went away, the connection broke) before its body did. */
export function bodyIncomplete(cause: unknown): HttpError {
  return new HttpError(400, 'BODY_INCOMPLETE', `the request ended before its body was complete: ${cause instanceof Error ? cause.message : String(cause)}`);
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

/**
 * Whether the request announced a body that has not been received to its end: the
 * answer comes before or in the middle of it (a refusal, or a route that takes no body).
 */
function bodyUnread(req: IncomingMessage): boolean {
  const announced = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  return announced && !req.complete;
}

/**
 * Every answer's status line and headers. An answer to a request whose body is still
 * unread carries Connection: close, and the socket is closed once the answer is
 * flushed: the gateway never drains a body it will not use, which a client could make
 * arbitrarily large, or trickle to hold the socket for as long as it likes.
 */
export function writeHead(res: ServerResponse, status: number, headers: OutgoingHttpHeaders): void {
  if (!bodyUnread(res.req)) {
    res.writeHead(status, headers);
    return;
  }
  res.writeHead(status, { ...headers, connection: 'close' });
  if (res.socket) lingerBeforeClosing(res.socket, res.req);
}

/** How long a socket closed after an early answer still reads, and drops, what the client sends. */
export const LINGER_MS = 2000;

/**
 * Node ends the socket of a Connection: close answer with destroySoon() once the
 * answer is written, which destroys it as soon as its own end is sent. Bytes the
 * client is still sending would then meet a closed socket, and the kernel answers
 * them with a reset, which a client still writing its body (fetch, the CLI) may see
 * before it has read the answer: it would report a broken connection instead of the
 * 413. So this socket closes the lingering way: its end is sent, what arrives is read
 * and dropped for at most LINGER_MS, then it is destroyed.
 */
function lingerBeforeClosing(socket: Socket, req: IncomingMessage): void {
  let closing = false;
  socket.destroySoon = () => {
    if (closing) return;
    closing = true;
    socket.end();
    req.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  writeHead(res, status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  writeHead(res, status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
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
