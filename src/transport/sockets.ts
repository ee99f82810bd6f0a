// Every websocket of a transport, and how one is refused, cut or closed; with the
// small socket and request helpers both sides of a link use.
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import type { Clock } from '../util/clock.js';
import type { RateLimitedWarn } from '../util/rate-limited-warn.js';
import { CloseCode } from './options.js';

const CLOSE_GRACE_MS = 1_000; // after a close frame, how long a peer gets to answer before the socket is destroyed
const REASON_MAX_BYTES = 120; // websocket close reasons are limited to 123 bytes

/** Who a refused connection is, for the log: the peer it claims, else where it comes from. */
export interface ConnectionContext {
  remote?: string;
  url?: string;
  peer?: string;
}

export class Sockets {
  /** Every websocket, for close(). */
  readonly all = new Set<WebSocket>();
  /** Connections refused before or during the handshake, both directions. */
  rejected = 0;

  constructor(
    private readonly log: Logger,
    /** Repeated warnings about the same peer and cause are logged at debug in between. */
    readonly warnings: RateLimitedWarn,
    private readonly clock: Clock,
    private readonly maxPreAuthBytes: number,
  ) {}

  /** Refuses a connection during the handshake: counted, logged (warn, rate-limited), closed. */
  refuse(ws: WebSocket, code: number, reason: string, context: ConnectionContext & { err?: unknown }): void {
    this.rejected += 1;
    this.warnings.warn(`refused:${code}:${who(context)}`, { ...context, code, reason }, 'peer connection refused');
    this.close(ws, code, reason);
  }

  /** A handshake message parsed, or null after refusing the connection for it (BadHandshake). */
  parseOrRefuse<T>(ws: WebSocket, parse: (data: Buffer) => T, data: RawData, isBinary: boolean, reason: string, context: ConnectionContext): T | null {
    try {
      return parse(asBinary(data, isBinary));
    } catch (err) {
      this.refuse(ws, CloseCode.BadHandshake, reason, { ...context, err });
      return null;
    }
  }

  /**
   * Cuts a connection that delivered more than the pre-authentication budget. No close
   * frame and no grace period: while the socket stays open its reader keeps buffering
   * the oversized message, which is what the budget is there to prevent.
   */
  cutOverBudget(ws: WebSocket, receivedBytes: number, context: ConnectionContext): void {
    this.rejected += 1;
    this.warnings.warn(`preauth-bytes:${who(context)}`, { ...context, receivedBytes, maxPreAuthBytes: this.maxPreAuthBytes }, 'connection sent more than a handshake before authenticating; cut');
    ws.terminate();
  }

  close(ws: WebSocket, code: number, reason: string): void {
    if (ws.readyState === WebSocket.CLOSED) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    if (ws.readyState === WebSocket.OPEN) ws.close(code, truncateUtf8(reason, REASON_MAX_BYTES));
    // A peer that does not answer the close frame is cut off.
    const timer = this.clock.after(CLOSE_GRACE_MS, () => ws.terminate()).unref();
    ws.once('close', () => timer.cancel());
  }

  onError(err: Error, peer: string | null, where: string, isLink: boolean): void {
    // ws reports protocol violations (oversized message, bad framing) as errors and closes
    // with 1009/1002: abnormal on an authenticated link. Refused dials are routine.
    const code = (err as NodeJS.ErrnoException).code;
    const protocolError = typeof code === 'string' && code.startsWith('WS_ERR_');
    if (isLink && protocolError) this.log.warn({ err, peer, where }, 'peer link protocol error; link closed');
    else this.log.debug({ err, peer, where }, 'peer socket error');
  }
}

/** Rate-limit key of a connection: the claimed id, else the remote host (its port changes on every attempt). */
function who(context: ConnectionContext): string {
  return context.peer ?? (context.remote ?? context.url ?? '').replace(/:[^:]*$/, '');
}

export function asBinary(data: RawData, isBinary: boolean): Buffer {
  if (!isBinary) throw new Error('text message where binary was expected');
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * The accepted TCP connection under a socket: itself, or in secure mode the one the
 * TLS socket wraps (node:tls keeps it as _parent), the key of the pending budget.
 */
export function tcpOf(socket: Socket): Socket {
  const parent = (socket as Socket & { _parent?: unknown })._parent;
  return parent instanceof Object && typeof (parent as Socket).remoteAddress === 'string' ? (parent as Socket) : socket;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** For a canonical IP (see canonicalIp). */
export function isLoopbackIp(canonical: string): boolean {
  return canonical.startsWith('127.') || canonical === '0000:0000:0000:0000:0000:0000:0000:0001';
}

export function pathOf(req: http.IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

export function remoteOf(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

export function refuseUpgrade(socket: Duplex, status: string, log: Logger): void {
  socket.on('error', (err) => log.debug({ err }, 'error on a refused upgrade'));
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function truncateUtf8(s: string, maxBytes: number): string {
  const b = Buffer.from(s, 'utf8');
  return b.length <= maxBytes ? s : b.subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '');
}
