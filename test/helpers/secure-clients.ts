// Clients of a node's ports below fetch, for tests that speak to them by hand in either
// mode: a raw connection or request to a node's API (TLS trusting the cluster CA in
// secure mode), and what tests attacking the peer port need in secure mode, where it
// speaks TLS and a link or a bulk request needs a certificate of the cluster CA: a
// node certificate (enrolled with the join secret, as any holder of the secret can, or
// copied from a node's data folder, as a thief of its disk can), and the peer
// handshake run by hand over it.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { WebSocket } from 'ws';
import { enroll } from '../../src/tls/enroll.js';
import { newNodeKey } from '../../src/tls/pki.js';
import { JoinSecret, readSecretFile } from '../../src/tls/secret.js';
import { computeProof, encodeHello, newNonce, parseChallenge, parseWelcome, verifyProof } from '../../src/transport/handshake.js';
import type { LocalCluster } from '../process/harness.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

function caOf(c: LocalCluster): string {
  const ca = c.caPem();
  if (ca === null) throw new Error('no node has written its ca.pem yet');
  return ca;
}

/** A connection to node `id`'s API port: TCP in dev mode, TLS trusting the cluster CA in secure mode. Resolves once it can carry a request. */
export function connectApi(c: LocalCluster, id: string): Promise<Socket> {
  const n = c.node(id);
  return new Promise((resolve, reject) => {
    const socket = c.secure ? tlsConnect({ host: n.host, port: n.apiPort, ca: caOf(c) }) : netConnect(n.apiPort, n.host);
    socket.once('error', reject);
    socket.once(c.secure ? 'secureConnect' : 'connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** http.request to node `id`'s API (https with the cluster CA in secure mode); the caller adds the auth headers. */
export function requestApi(c: LocalCluster, id: string, options: http.RequestOptions): http.ClientRequest {
  const n = c.node(id);
  const where = { host: n.host, port: n.apiPort };
  return c.secure ? https.request({ ...options, ...where, ca: caOf(c) }) : http.request({ ...options, ...where });
}

/** A node's key and certificate of the cluster CA. */
export interface NodeCert {
  nodeId: string;
  keyPem: string;
  certPem: string;
  caPem: string;
}

/**
 * A certificate of the cluster naming `nodeId`, enrolled through node `via`'s API with
 * the cluster's join secret: what any holder of the secret can get, for any id.
 */
export async function enrollAs(c: LocalCluster, nodeId: string, via: string, hosts = ['127.0.0.1']): Promise<NodeCert> {
  const secret = new JoinSecret(readSecretFile(c.secretFile, 'the test cluster\'s join secret'));
  const { keyPem, publicKeyDer } = await newNodeKey();
  const got = await enroll({ url: c.url(via), secret, nodeId, publicKeyDer, hosts, pinnedFingerprint: null, timeoutMs: 10_000 });
  return { nodeId, keyPem, certPem: got.certPem, caPem: got.caPem };
}

/** Node `id`'s own key and certificate, read from its data folder: what a thief of its disk holds. */
export function stolenCert(c: LocalCluster, id: string): NodeCert {
  const dir = join(c.node(id).dataDir, 'tls');
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return { nodeId: id, keyPem: read('node-key.pem'), certPem: read('node-cert.pem'), caPem: read('ca-cert.pem') };
}

/** TLS options for a client of a secure-mode node's peer port: the cluster CA trusted, and `cert` presented (none: a stranger). */
export function peerTlsOptions(c: LocalCluster, cert: NodeCert | null): ConnectionOptions {
  return { ca: caOf(c), ...(cert === null ? {} : { key: cert.keyPem, cert: cert.certPem }) };
}

export interface PeerSocket {
  ws: WebSocket;
  /** Messages received after the handshake (or all of them, before it). */
  messages: Buffer[];
  closed: Promise<{ code: number; reason: string }>;
}

/** The status a refused websocket upgrade was answered with. */
export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`the upgrade was answered ${status}`);
    this.name = 'UpgradeRefused';
  }
}

/**
 * A websocket to node `id`'s /peer, open, before any handshake message: ws:// in dev
 * mode, wss:// presenting `cert` in secure mode. Rejects with UpgradeRefused when the
 * node answers the upgrade with an HTTP status instead.
 */
export async function openPeer(c: LocalCluster, id: string, t: Teardown, cert: NodeCert | null): Promise<PeerSocket> {
  const n = c.node(id);
  const url = `${c.secure ? 'wss' : 'ws'}://${n.host}:${n.peerPort}/peer`;
  const ws = new WebSocket(url, { perMessageDeflate: false, ...(c.secure ? peerTlsOptions(c, cert) : {}) });
  t.teardown(() => ws.terminate());
  const messages: Buffer[] = [];
  ws.on('message', (data) => messages.push(data as Buffer));
  ws.on('error', () => {}); // the close event carries what the tests check
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      reject(new UpgradeRefused(res.statusCode ?? 0));
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
  return { ws, messages, closed };
}

/** The `index`-th message received, or null if the socket closes first. */
function nthMessage(p: PeerSocket, index: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const check = (): void => {
      const m = p.messages[index];
      if (m !== undefined) done(m);
      else if (p.ws.readyState === WebSocket.CLOSED) done(null);
    };
    const done = (v: Buffer | null): void => {
      p.ws.off('message', check);
      p.ws.off('close', check);
      resolve(v);
    };
    p.ws.on('message', check);
    p.ws.on('close', check);
    check();
  });
}

/**
 * Opens /peer on node `target` (see openPeer) and runs the client side of the
 * handshake by hand as `as`, its proof made with `key` (null: the empty key, which
 * nodes without a token use in both modes; secure mode authenticates by certificate).
 * Resolves once the welcome verified (frames then flow; `welcomed` true), or once the
 * node closed the socket.
 */
export async function handshakeAs(c: LocalCluster, target: string, t: Teardown, as: string, cert: NodeCert | null, key: Buffer | null = null): Promise<PeerSocket & { welcomed: boolean }> {
  const p = await openPeer(c, target, t, cert);
  const first = await nthMessage(p, 0);
  if (first === null) return { ...p, welcomed: false };
  const challenge = parseChallenge(first);
  const transcript = { clientId: as, serverId: target, clientNonce: newNonce(), serverNonce: challenge.serverNonce };
  p.ws.send(encodeHello({ clientId: as, serverId: target, clientNonce: transcript.clientNonce, proof: computeProof(key, 'client', transcript) }));
  const second = await nthMessage(p, 1);
  if (second === null) return { ...p, welcomed: false };
  if (!verifyProof(key, 'server', transcript, parseWelcome(second).proof)) throw new Error('the server\'s proof did not verify');
  p.messages.splice(0, 2);
  return { ...p, welcomed: true };
}
