// Someone floods the leader's peer port: 64 connections each upgrade to a websocket and
// send a 16 MiB message (as large as an authenticated peer may send) before any
// handshake, all but its last byte, so that a reader waiting for whole messages holds
// every one of them at once. Until a connection has completed the handshake it may
// deliver only a few KiB, so the leader's memory stays flat, and the cluster serves on.
// Who can get that far differs by mode:
// - secure mode: the upgrade needs a certificate of the cluster CA (a stranger gets
//   401, checked first), so the flood comes from a holder of one: a node "a-flood"
//   enrolled with the join secret, which is no member (no handshake would succeed);
// - dev mode (loopback only): anyone on the box, with no secret at all.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t, { type Test } from 'tap';
import { type LocalCluster, startedCluster } from '../process/harness.js';
import { enrollAs, openPeer, peerTlsOptions, UpgradeRefused, type NodeCert } from '../helpers/secure-clients.js';
import { assertClusterHealthy, rssMiB } from './health.js';

const CONNECTIONS = 64;
const SOURCES = 8; // 127.0.0.50…57, 8 connections each: within the default budgets of a source and of all strangers
const MESSAGE_BYTES = 16 * 1024 * 1024; // the default maxFrameBytes
const CHUNK = Buffer.alloc(1024 * 1024); // every connection writes this one buffer: the flood costs the test nothing
const RSS_LIMIT_MIB = 250;

interface FloodResult {
  upgraded: boolean; // the server answered 101 and the message went out (or the server cut it)
}

/**
 * Upgrades by hand on /peer (over TLS presenting `tls`'s certificate in secure mode),
 * then sends a binary message announced as MESSAGE_BYTES, masked with a zero key (so
 * the payload is CHUNK as is), all but its last byte; then waits for the server to
 * close the connection.
 */
function floodOne(c: LocalCluster, id: string, localAddress: string, cert: NodeCert | null): Promise<FloodResult> {
  const { host, peerPort: port } = c.node(id);
  return new Promise((resolve) => {
    const tcp = connect({ host, port, localAddress });
    tcp.on('error', () => {}); // in secure mode the TLS socket over it reports it too
    const socket: Socket = c.secure ? tlsConnect({ socket: tcp, host, ...peerTlsOptions(c, cert) }) : tcp;
    let upgraded = false;
    let response = '';
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      tcp.destroy();
      resolve({ upgraded });
    };
    const timer = setTimeout(done, 120_000);
    socket.on('error', () => {}); // a cut connection is the expected outcome; 'close' follows
    socket.on('close', done);
    socket.on(c.secure ? 'secureConnect' : 'connect', () => {
      socket.write(
        `GET /peer HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) return; // what the server says after the upgrade does not matter
      response += chunk.toString('latin1');
      if (!response.includes('\r\n\r\n')) return;
      if (!response.startsWith('HTTP/1.1 101')) {
        done();
        return;
      }
      upgraded = true;
      const header = Buffer.alloc(14);
      header[0] = 0x82; // FIN, binary
      header[1] = 0x80 | 127; // masked, 64-bit length
      header.writeBigUInt64BE(BigInt(MESSAGE_BYTES), 2); // then a zero mask
      socket.write(header);
      for (let sent = 0; sent < MESSAGE_BYTES; sent += CHUNK.length) socket.write(sent + CHUNK.length < MESSAGE_BYTES ? CHUNK : CHUNK.subarray(1));
    });
  });
}

async function flood(t: Test, mode: 'secure' | 'dev'): Promise<void> {
  const { c, leader } = await startedCluster(t, ['n1', 'n2', 'n3'], [], { mode });
  let cert: NodeCert | null = null;
  if (c.secure) {
    const stranger = await openPeer(c, leader, t, null).then(() => 0, (err: unknown) => (err instanceof UpgradeRefused ? err.status : -1));
    t.equal(stranger, 401, 'a stranger without a certificate of the cluster CA gets no upgrade (401)');
    cert = await enrollAs(c, 'a-flood', leader);
  }
  const target = c.node(leader);
  const pid = target.proc?.pid;
  if (pid === undefined) throw new Error(`${leader} has no process`);
  const baselineMiB = rssMiB(pid);

  let peakMiB = baselineMiB;
  const sampler = setInterval(() => {
    try {
      peakMiB = Math.max(peakMiB, rssMiB(pid));
    } catch (err) {
      t.fail(`reading the leader's memory failed: ${String(err)}`);
    }
  }, 50);
  const results = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => floodOne(c, leader, `127.0.0.${50 + (i % SOURCES)}`, cert)));
  // Memory freed late (a message completed just before its connection closed) shows here too.
  await new Promise((r) => setTimeout(r, 2_000));
  clearInterval(sampler);

  const upgraded = results.filter((r) => r.upgraded).length;
  t.comment(`leader ${leader}: RSS ${baselineMiB.toFixed(0)} MiB before, ${peakMiB.toFixed(0)} MiB at the peak of the flood; ${upgraded} of ${CONNECTIONS} connections upgraded`);
  t.ok(upgraded >= CONNECTIONS * 0.9, `the flood reached the websocket layer (${upgraded} of ${CONNECTIONS} upgraded)`);
  t.ok(peakMiB < RSS_LIMIT_MIB, `the leader's RSS stayed below ${RSS_LIMIT_MIB} MiB (peak ${peakMiB.toFixed(0)} MiB, ${baselineMiB.toFixed(0)} MiB before)`);
  await assertClusterHealthy(t, c);
}

for (const mode of ['secure', 'dev'] as const) {
  t.test(`64 connections each sending 16 MiB before any handshake do not grow the leader; the cluster keeps serving (${mode} mode)`, (t) => flood(t, mode));
}
