// Helpers for the transport tests: real transports on 127.0.0.1, a hand-driven peer
// that speaks the handshake itself (to send what a real transport never would), and a
// log capture.
import { createServer, connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { WebSocket } from 'ws';
import { PeerTransport, type PeerTransportOptions } from '../../src/transport/index.js';
import { computeProof, encodeHello, newNonce, parseChallenge, parseWelcome, verifyProof } from '../../src/transport/handshake.js';
import { waitFor } from '../helpers/wait.js';

export const TOKEN = Buffer.from('correct horse battery staple');

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger at debug whose lines land in `lines` (warn = level 40). */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

export interface Node {
  transport: PeerTransport;
  id: string;
  address: string;
  frames: Array<{ from: string; frame: unknown }>;
}

/** Starts a transport on an ephemeral (or given) loopback port that records every frame; closed at teardown. */
export async function startNode(t: Teardown, id: string, opts: Partial<PeerTransportOptions> = {}): Promise<Node> {
  const transport = await PeerTransport.start({
    id,
    listen: { host: '127.0.0.1', port: 0 },
    token: TOKEN,
    backoff: { baseMs: 10, maxMs: 100 },
    ...opts,
  });
  t.teardown(() => transport.close());
  const frames: Node['frames'] = [];
  transport.onFrame((from, frame) => frames.push({ from, frame }));
  return { transport, id, address: `127.0.0.1:${transport.port}`, frames };
}

/** Gives each node every other node as a peer. */
export function mesh(nodes: Node[]): void {
  for (const n of nodes) n.transport.setPeers(new Map(nodes.filter((m) => m !== n).map((m) => [m.id, m.address])));
}

export function connected(n: Node, peer: string): boolean {
  return n.transport.stats().peers[peer]?.connected === true;
}

export async function waitConnected(nodes: Node[]): Promise<void> {
  for (const n of nodes) {
    for (const m of nodes) {
      if (m !== n) await waitFor(`${n.id} connected to ${m.id}`, () => (connected(n, m.id) ? true : undefined), 5_000, 5);
    }
  }
}

/** Resolves with the close code and reason of a websocket. */
export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: -1, reason: 'already closed' });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** A websocket to a transport's /peer endpoint, open, before any handshake message. */
export async function openRaw(port: number, t: Teardown): Promise<{ ws: WebSocket; messages: Buffer[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/peer`, { perMessageDeflate: false });
  t.teardown(() => ws.terminate());
  const messages: Buffer[] = [];
  ws.on('message', (data) => messages.push(data as Buffer));
  ws.on('error', () => {}); // the close event carries what the tests check
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, messages };
}

/** The `index`-th message received, or the close if the socket closes first. */
function message(ws: WebSocket, messages: Buffer[], index: number): Promise<Buffer | { code: number }> {
  return new Promise((resolve) => {
    const check = (): void => {
      const m = messages[index];
      if (m !== undefined) done(m);
      else if (ws.readyState === WebSocket.CLOSED) done({ code: -1 });
    };
    const onClose = (code: number): void => done({ code });
    const done = (v: Buffer | { code: number }): void => {
      ws.off('message', check);
      ws.off('close', onClose);
      resolve(v);
    };
    ws.on('message', check);
    ws.on('close', onClose);
    check();
  });
}

/**
 * Runs the client side of the handshake by hand as `id` against the node `serverId`.
 * Resolves with the socket once the server's welcome has verified (frames then flow),
 * or with the close code if the server refuses.
 */
export async function handshakeAs(
  port: number,
  t: Teardown,
  id: string,
  serverId: string,
  token: Buffer | null = TOKEN,
): Promise<{ ws: WebSocket; messages: Buffer[]; closed: Promise<{ code: number; reason: string }> }> {
  const { ws, messages } = await openRaw(port, t);
  const closed = closeOf(ws);
  const first = await message(ws, messages, 0);
  if (!Buffer.isBuffer(first)) throw new Error(`closed before the challenge: ${first.code}`);
  const challenge = parseChallenge(first);
  const transcript = { clientId: id, serverId, clientNonce: newNonce(), serverNonce: challenge.serverNonce };
  ws.send(encodeHello({ clientId: id, serverId, clientNonce: transcript.clientNonce, proof: computeProof(token, 'client', transcript) }));
  const second = await message(ws, messages, 1);
  if (!Buffer.isBuffer(second)) return { ws, messages, closed };
  if (!verifyProof(token, 'server', transcript, parseWelcome(second).proof)) throw new Error('server proof did not verify');
  messages.splice(0, 2);
  return { ws, messages, closed };
}

/** A port nothing listens on (bound then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A plain TCP connection; resolves `ended` when the other side closes it. */
export async function rawTcp(port: number, t: Teardown): Promise<{ socket: Socket; ended: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.resume();
  return { socket, ended };
}
