// Peer links on real sockets (127.0.0.1, ephemeral ports): frames flow both ways in
// order and in batches, one link per pair, the handshake keeps out callers without the
// token, links come back after a restart, and queues stay bounded.
import t from 'tap';
import { WebSocketServer } from 'ws';
import { CloseCode } from '../../src/transport/index.js';
import { decodeBatch } from '../../src/transport/codec.js';
import { encodeChallenge, encodeWelcome, newNonce } from '../../src/transport/handshake.js';
import { waitFor } from '../helpers/wait.js';
import { TOKEN, captureLogger, closeOf, connected, freePort, handshakeAs, mesh, openRaw, rawTcp, startNode, waitConnected, type Node } from './transport-fixture.js';

const framesFrom = (n: Node, from: string): unknown[] => n.frames.filter((f) => f.from === from).map((f) => f.frame);

async function connectionCount(n: Node): Promise<number> {
  return new Promise((resolve, reject) => n.transport.httpServer.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}

t.test('three nodes exchange frames both ways, in order per link, over one link per pair', async (t) => {
  const nodes = await Promise.all(['a', 'b', 'c'].map((id) => startNode(t, id)));
  mesh(nodes);
  await waitConnected(nodes);
  // The smaller id dials: a accepts nothing, b accepts a, c accepts a and b.
  t.same(await Promise.all(nodes.map(connectionCount)), [0, 1, 2], 'each node holds only the inbound links from smaller ids');

  for (const from of nodes) {
    for (const to of nodes) {
      if (from === to) continue;
      for (let seq = 0; seq < 50; seq++) {
        t.ok(from.transport.send(to.id, { kind: 'append', from: from.id, seq, data: new Uint8Array([seq]) }), 'send accepted');
        // Spread over several turns so the order holds across batches too.
        if (seq % 10 === 9) await new Promise((r) => setImmediate(r));
      }
    }
  }
  for (const to of nodes) {
    for (const from of nodes) {
      if (from === to) continue;
      const got = await waitFor(`${to.id} has 50 frames from ${from.id}`, () => {
        const fs = framesFrom(to, from.id);
        return fs.length === 50 ? fs : undefined;
      }, 5_000, 5);
      t.same(
        got.map((f) => (f as { seq: number }).seq),
        Array.from({ length: 50 }, (_, i) => i),
        `${from.id} → ${to.id}: frames arrive in the order sent`,
      );
      t.same(got[7], { kind: 'append', from: from.id, seq: 7, data: Buffer.from([7]) }, 'a frame round-trips, binary included');
    }
  }
  t.same(await Promise.all(nodes.map(connectionCount)), [0, 1, 2], 'still one link per pair after traffic');
});

t.test('frames sent to one peer in one event-loop turn leave as one websocket message', async (t) => {
  const nodes = await Promise.all(['a', 'b'].map((id) => startNode(t, id)));
  const [a, b] = nodes as [Node, Node];
  mesh(nodes);
  await waitConnected(nodes);
  const before = { sent: a.transport.stats().peers.b!, received: b.transport.stats().peers.a! };
  for (let seq = 0; seq < 100; seq++) a.transport.send('b', { seq });
  await waitFor('b receives the 100 frames', () => (b.frames.length === 100 ? true : undefined), 5_000, 5);
  const after = { sent: a.transport.stats().peers.b!, received: b.transport.stats().peers.a! };
  t.equal(after.sent.sentMessages - before.sent.sentMessages, 1, 'a sent one websocket message');
  t.equal(after.sent.sentFrames - before.sent.sentFrames, 100, 'carrying 100 frames');
  t.equal(after.received.receivedMessages - before.received.receivedMessages, 1, 'b received one websocket message');
  t.equal(after.received.receivedFrames - before.received.receivedFrames, 100);
  t.same(b.frames.map((f) => (f.frame as { seq: number }).seq), Array.from({ length: 100 }, (_, i) => i));
});

t.test('a wrong token is refused with 4001 and a warning, and nothing from it is delivered', async (t) => {
  const log = captureLogger();
  const b = await startNode(t, 'b', { logger: log.logger });
  const a = await startNode(t, 'a', { token: Buffer.from('not the cluster token') });
  b.transport.setPeers(new Map([['a', a.address]]));
  a.transport.setPeers(new Map([['b', b.address]]));
  a.transport.send('b', { hello: 'from an outsider' });
  await waitFor('b refuses a', () => (b.transport.stats().rejectedConnections >= 2 ? true : undefined), 5_000, 5);
  t.notOk(connected(a, 'b'), 'a never gets a link');
  t.notOk(connected(b, 'a'), 'b never gets a link');
  t.same(b.frames, [], 'no frame reached b');
  const warning = log.lines.find((l) => l.level === 40 && l.code === CloseCode.AuthFailed);
  t.ok(warning, 'b logged a warning naming the authentication failure');
  t.equal(warning?.peer, 'a', 'the warning names the claimed peer id');
  t.equal(log.lines.filter((l) => l.level === 40).length, 1, 'repeated refusals of the same peer are one warning');

  // The same exchange by hand shows the close code the refused side sees.
  const raw = await handshakeAs(b.transport.port, t, 'a', 'b', Buffer.from('not the cluster token'));
  t.same(await raw.closed, { code: CloseCode.AuthFailed, reason: 'authentication failed' });
});

t.test('the right token, or no token on both sides, opens the link', async (t) => {
  for (const token of [TOKEN, null]) {
    const nodes = await Promise.all(['a', 'b'].map((id) => startNode(t, id, { token })));
    const [a, b] = nodes as [Node, Node];
    mesh(nodes);
    a.transport.send('b', { n: 1 });
    await waitFor('b gets the frame', () => (b.frames.length === 1 ? true : undefined), 5_000, 5);
    t.same(b.frames, [{ from: 'a', frame: { n: 1 } }], `token ${token === null ? 'none' : 'shared'}: frame delivered`);
    t.equal(b.transport.stats().rejectedConnections, 0);
  }
});

t.test('a node with the token is refused when its id is not in the peer set, or it dialed another node', async (t) => {
  const b = await startNode(t, 'b');
  b.transport.setPeers(new Map([['a', '127.0.0.1:1']]));
  const stranger = await handshakeAs(b.transport.port, t, 'x', 'b');
  t.equal((await stranger.closed).code, CloseCode.UnknownPeer, 'an id outside the set gets 4003');
  const misdirected = await handshakeAs(b.transport.port, t, 'a', 'c');
  t.equal((await misdirected.closed).code, CloseCode.WrongNode, 'a hello meant for another node gets 4004');
  t.equal(b.transport.stats().rejectedConnections, 2);
  t.same(b.frames, []);
});

t.test('the dialer refuses a server that cannot prove the token', async (t) => {
  // A fake node b: sends a proper challenge, then a welcome with a made-up proof.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  t.teardown(() => new Promise<void>((r) => wss.close(() => r())));
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const closes: number[] = [];
  wss.on('connection', (ws) => {
    ws.send(encodeChallenge({ serverId: 'b', serverNonce: newNonce() }));
    ws.once('message', () => ws.send(encodeWelcome({ proof: newNonce() })));
    ws.on('close', (code) => closes.push(code));
    ws.on('message', () => {});
  });
  const port = (wss.address() as { port: number }).port;
  const a = await startNode(t, 'a');
  a.transport.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
  await waitFor('a refuses the fake b', () => (closes.length >= 1 ? true : undefined), 5_000, 5);
  t.equal(closes[0], CloseCode.AuthFailed, 'the dialer closes with 4001');
  t.ok(a.transport.stats().rejectedConnections >= 1, 'counted on the dialer');
  t.notOk(connected(a, 'b'));
});

t.test('a connection that never finishes the handshake is closed after the timeout', async (t) => {
  const b = await startNode(t, 'b', { handshakeTimeoutMs: 150 });
  b.transport.setPeers(new Map([['a', '127.0.0.1:1']]));
  const silentWs = await openRaw(b.transport.port, t);
  t.same(await closeOf(silentWs.ws), { code: CloseCode.HandshakeTimeout, reason: 'handshake timed out' }, 'a websocket that never says hello gets 4008');
  const silentTcp = await rawTcp(b.transport.port, t);
  await silentTcp.ended;
  t.pass('a TCP connection that never sends a request is closed');
  t.equal(b.transport.stats().rejectedConnections, 2);
});

t.test('after the accepting peer restarts on the same port, the link comes back and frames flow', async (t) => {
  const a = await startNode(t, 'a');
  let b = await startNode(t, 'b');
  const port = b.transport.port;
  mesh([a, b]);
  await waitConnected([a, b]);
  await b.transport.close();
  await waitFor('a sees the link down', () => (connected(a, 'b') ? undefined : true), 5_000, 5);
  a.transport.send('b', { while: 'down' });

  b = await startNode(t, 'b', { listen: { host: '127.0.0.1', port } });
  mesh([a, b]);
  await waitFor('b gets the frame queued while it was down', () => (b.frames.length === 1 ? true : undefined), 5_000, 5);
  t.same(b.frames, [{ from: 'a', frame: { while: 'down' } }]);
  b.transport.send('a', { back: true });
  await waitFor('a hears from the new b', () => (a.frames.length === 1 ? true : undefined), 5_000, 5);
  t.equal(a.transport.stats().peers.b?.reconnects, 1, 'a counts one reconnect');
});

t.test('after the dialing peer restarts, it dials again and frames flow both ways', async (t) => {
  let a = await startNode(t, 'a');
  const b = await startNode(t, 'b');
  const port = a.transport.port;
  mesh([a, b]);
  await waitConnected([a, b]);
  await a.transport.close();
  a = await startNode(t, 'a', { listen: { host: '127.0.0.1', port } });
  mesh([a, b]);
  await waitConnected([a, b]);
  b.transport.send('a', { n: 1 });
  a.transport.send('b', { n: 2 });
  await waitFor('both frames delivered', () => (a.frames.length === 1 && b.frames.length === 1 ? true : undefined), 5_000, 5);
  t.same([a.frames, b.frames], [[{ from: 'b', frame: { n: 1 } }], [{ from: 'a', frame: { n: 2 } }]]);
  t.equal(b.transport.stats().peers.a?.reconnects, 1, 'b counts one reconnect');
  t.equal(await connectionCount(b), 1, 'b holds one link');
});

t.test('a second authenticated link from the same peer replaces the first; only one stays', async (t) => {
  const b = await startNode(t, 'b');
  b.transport.setPeers(new Map([['a', '127.0.0.1:1']]));
  const first = await handshakeAs(b.transport.port, t, 'a', 'b');
  const second = await handshakeAs(b.transport.port, t, 'a', 'b');
  t.equal((await first.closed).code, CloseCode.Duplicate, 'the older link is closed with 4009');
  b.transport.send('a', { to: 'the newer link' });
  await waitFor('the newer link gets the frame', () => (second.messages.length === 1 ? true : undefined), 5_000, 5);
  t.equal(await connectionCount(b), 1);
});

t.test('a link dialed against the rule (by the larger id) is refused while the proper one is up', async (t) => {
  const nodes = await Promise.all(['b', 'c'].map((id) => startNode(t, id)));
  const [b, c] = nodes as [Node, Node];
  mesh(nodes);
  await waitConnected(nodes);
  const wrongWay = await handshakeAs(b.transport.port, t, 'c', 'b'); // "c" dialing b
  t.equal((await wrongWay.closed).code, CloseCode.Duplicate, 'b keeps the link it dialed and closes the other with 4009');
  b.transport.send('c', { still: 'here' });
  await waitFor('c gets the frame over the kept link', () => (c.frames.length === 1 ? true : undefined), 5_000, 5);
  t.equal(c.transport.stats().peers.b?.reconnects, 0, 'the kept link never dropped');
});

t.test('removing a peer closes its link and drops what was queued for it', async (t) => {
  const nodes = await Promise.all(['a', 'b'].map((id) => startNode(t, id)));
  const [a, b] = nodes as [Node, Node];
  mesh(nodes);
  await waitConnected(nodes);
  a.transport.setPeers(new Map());
  t.notOk(a.transport.send('b', { n: 1 }), 'send to a peer not in the set returns false');
  t.same(a.transport.stats().peers, {}, 'no stats for a removed peer');
  await waitFor('b sees the link closed', () => (connected(b, 'a') ? undefined : true), 5_000, 5);
  t.same(b.frames, []);
});

t.test('with the peer down, 100 MB of frames keep the queue within maxQueueBytes and count the drops', async (t) => {
  const maxQueueBytes = 4 * 1024 * 1024;
  const a = await startNode(t, 'a', { maxQueueBytes });
  a.transport.setPeers(new Map([['b', `127.0.0.1:${await freePort()}`]]));
  const payload = Buffer.alloc(64 * 1024, 7);
  const sends = 1600; // 100 MiB
  let maxSeenBytes = 0;
  let refused = 0;
  for (let seq = 0; seq < sends; seq++) {
    if (!a.transport.send('b', { seq, payload })) refused += 1;
    maxSeenBytes = Math.max(maxSeenBytes, a.transport.stats().peers.b!.queuedBytes);
  }
  const s = a.transport.stats().peers.b!;
  t.equal(refused, 0, 'a frame that fits the bound is always queued: older ones make room');
  t.ok(maxSeenBytes <= maxQueueBytes, `queue peaked at ${maxSeenBytes} bytes, bound ${maxQueueBytes}`);
  t.ok(s.queuedFrames > 0 && s.queuedFrames < sends);
  t.equal(s.droppedFrames + s.queuedFrames, sends, 'every frame is either queued or counted as dropped');
  t.notOk(a.transport.send('b', { payload: Buffer.alloc(maxQueueBytes) }), 'a frame larger than the whole bound is refused');
});

t.test('a reader that stops reading does not make memory grow; it gets the newest frames when it resumes', async (t) => {
  const maxQueueBytes = 2 * 1024 * 1024;
  const maxSocketBufferBytes = 1024 * 1024;
  const maxFrameBytes = 1024 * 1024;
  // Keepalive off in practice: this reader is stalled on purpose and must not be cut.
  const b = await startNode(t, 'b', { maxQueueBytes, maxSocketBufferBytes, maxFrameBytes, keepaliveIntervalMs: 60_000 });
  b.transport.setPeers(new Map([['a', '127.0.0.1:1']]));
  const reader = await handshakeAs(b.transport.port, t, 'a', 'b');
  await waitFor('b has the link', () => (connected(b, 'a') ? true : undefined), 5_000, 5);
  reader.ws.pause();

  const payload = Buffer.alloc(64 * 1024, 1);
  const sends = 1600; // 100 MiB
  for (let seq = 0; seq < sends; seq++) {
    b.transport.send('a', { seq, payload });
    // Let flushes and socket writes run, as they would under steady traffic.
    if (seq % 50 === 49) await new Promise((r) => setImmediate(r));
  }
  const s = b.transport.stats().peers.a!;
  t.ok(s.queuedBytes <= maxQueueBytes, `queued ${s.queuedBytes} ≤ ${maxQueueBytes}`);
  t.ok(s.inflightBytes <= maxSocketBufferBytes + maxFrameBytes, `in the socket ${s.inflightBytes} ≤ ${maxSocketBufferBytes} + one message`);
  t.ok(s.droppedFrames > 0, `dropped ${s.droppedFrames} frames`);
  t.equal(s.sentFrames + s.queuedFrames + s.droppedFrames, sends, 'every frame is sent, queued or dropped');

  const seen = new Set<number>();
  const record = (m: Buffer): void => {
    for (const f of decodeBatch(m)) seen.add((f as { seq: number }).seq);
  };
  reader.messages.splice(0).forEach(record);
  reader.ws.on('message', (m) => record(m as Buffer));
  reader.ws.resume();
  await waitFor('the reader gets the last frame', () => (seen.has(sends - 1) ? true : undefined), 10_000, 5);
  t.pass('the newest frame arrives once the reader drains');
});

t.test('a link whose peer stops answering pings is cut; a healthy one never is', async (t) => {
  const b = await startNode(t, 'b', { keepaliveIntervalMs: 30 });
  b.transport.setPeers(new Map([['a', '127.0.0.1:1']]));
  const stalled = await handshakeAs(b.transport.port, t, 'a', 'b');
  await waitFor('b has the link', () => (connected(b, 'a') ? true : undefined), 5_000, 5);
  stalled.ws.pause(); // its pongs stop, as from a box that vanished
  await waitFor('b cuts the silent link', () => (connected(b, 'a') ? undefined : true), 5_000, 5);

  // Two real nodes answer pings: the link stays up over several intervals.
  const nodes = await Promise.all(['x', 'y'].map((id) => startNode(t, id, { keepaliveIntervalMs: 100 })));
  mesh(nodes);
  await waitConnected(nodes);
  await new Promise((r) => setTimeout(r, 600));
  t.equal(nodes[1]!.transport.stats().peers.x?.reconnects, 0, 'a healthy link is never cut');
  t.ok(connected(nodes[0]!, 'y'));
});
