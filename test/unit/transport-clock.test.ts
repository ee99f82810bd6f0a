// The transport's timers run on the clock it is given: the handshake deadline of a
// pending connection and the redial backoff wait for simulated time, not real time.
import { connect, createServer, type Socket } from 'node:net';
import t from 'tap';
import { ManualClock } from '../../src/util/manual-clock.js';
import { waitFor } from '../helpers/wait.js';
import { connected, handshakeAs, startNode } from './transport-fixture.js';

const realPause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a connection that sends nothing is closed when the simulated handshake deadline passes', async (t) => {
  const clock = new ManualClock();
  const node = await startNode(t, 'n1', { clock, handshakeTimeoutMs: 5_000 });
  const socket = connect(node.transport.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  await waitFor('the connection to be pending', () => (node.transport.stats().pendingConnections.strangers === 1 ? true : undefined));
  await clock.advance(4_999);
  await realPause(100);
  t.notOk(closed, 'still open just before the deadline, however long it waits in real time');
  await clock.advance(1);
  await waitFor('the connection to be closed', () => (closed ? true : undefined));
  t.equal(node.transport.stats().rejectedConnections, 1, 'counted as refused');
});

t.test('a failed dial is retried after the backoff delay on the given clock', async (t) => {
  const clock = new ManualClock();
  const dials: Socket[] = [];
  // A peer address where every connection is cut at once: each dial fails.
  const server = createServer((socket) => {
    dials.push(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  const node = await startNode(t, 'a', { clock, backoff: { baseMs: 1_000, maxMs: 1_000 }, random: () => 0 });
  node.transport.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
  await waitFor('the first dial', () => (dials.length === 1 ? true : undefined));
  await realPause(100);
  t.equal(dials.length, 1, 'no redial while simulated time stands still');
  // Equal jitter with random() = 0: half the cap.
  await clock.advance(499);
  await realPause(100);
  t.equal(dials.length, 1, 'not before the delay');
  await clock.advance(1);
  await waitFor('the redial', () => (dials.length === 2 ? true : undefined));
  t.pass('redialed once the delay passed on the clock');
});

t.test('a link that carries no messages is pinged only every tenth keepalive interval; one that carries messages at every silent one', async (t) => {
  const clock = new ManualClock();
  const b = await startNode(t, 'b', { clock, keepaliveIntervalMs: 1_000 });
  b.transport.setPeers(new Map([['a', '127.0.0.1:1']]));
  const peer = await handshakeAs(b.transport.port, t, 'a', 'b');
  let pings = 0;
  peer.ws.on('ping', () => pings++);
  await waitFor('b has the link', () => (connected(b, 'a') ? true : undefined), 5_000, 5);
  // Each interval: the check, then real time for a ping and its pong to cross.
  const intervals = async (n: number, each: () => void = () => undefined): Promise<number> => {
    const before = pings;
    for (let i = 0; i < n; i++) {
      each();
      await realPause(5); // the transport flushes what was sent at its next turn: before the check
      await clock.advance(1_000);
      await realPause(20);
    }
    return pings - before;
  };
  await intervals(10); // the link goes quiet
  t.equal(await intervals(40), 2, 'quiet: 2 pings in 40 intervals (each performed check that heard nothing since the last)');
  t.ok(connected(b, 'a'), 'and the answering link stays up');
  const busy = await intervals(40, () => b.transport.send('a', { seq: 1 }));
  t.ok(busy >= 15, `carrying a message every interval, with nothing coming back but pongs: pinged at every silent check (${busy} in 40)`);
  peer.ws.pause(); // its pongs stop
  await intervals(3, () => b.transport.send('a', { seq: 2 }));
  t.notOk(connected(b, 'a'), 'a link in use that stops answering is cut within 3 intervals');
});
