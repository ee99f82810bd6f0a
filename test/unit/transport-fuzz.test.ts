// Hostile input against a live transport: random bytes, garbage websocket messages
// before and after the handshake, oversized messages. Each closes only the connection
// that carried it; the link between two legitimate nodes never drops, and no garbage
// reaches onFrame. Random bytes come from fixed seeds, so a failure replays.
import t, { type Test } from 'tap';
import { CloseCode } from '../../src/transport/index.js';
import { encodeFrame } from '../../src/transport/codec.js';
import { waitFor } from '../helpers/wait.js';
import { closeOf, connected, handshakeAs, mesh, openRaw, rawTcp, startNode, waitConnected, type Node } from './transport-fixture.js';
import { seededBytes } from './transport-random.js';

const maxFrameBytes = 64 * 1024;

/** b and c linked for real; the attacker poses as "a", which c knows (and does not dial: a < c). */
async function cluster(t: Test): Promise<{ b: Node; c: Node }> {
  const nodes = await Promise.all(['b', 'c'].map((id) => startNode(t, id, { maxFrameBytes })));
  const [b, c] = nodes as [Node, Node];
  mesh(nodes);
  c.transport.setPeers(new Map([['b', b.address], ['a', '127.0.0.1:1']]));
  await waitConnected(nodes);
  return { b, c };
}

let round = 0;
/** The legitimate link still carries frames both ways and never went down. */
async function legitLinkWorks(t: Test, b: Node, c: Node): Promise<void> {
  round += 1;
  b.transport.send('c', { round, from: 'b' });
  c.transport.send('b', { round, from: 'c' });
  const has = (n: Node, from: string): boolean => n.frames.some((f) => f.from === from && (f.frame as { round: number }).round === round);
  await waitFor(`round ${round} crosses the b-c link`, () => (has(b, 'c') && has(c, 'b') ? true : undefined), 5_000, 5);
  t.ok(connected(b, 'c') && connected(c, 'b'), 'b-c link up');
  t.equal(c.transport.stats().peers.b?.reconnects, 0, 'the b-c link never dropped');
  t.same(c.frames.filter((f) => f.from !== 'b'), [], 'nothing but b frames reached c');
}

t.test('random bytes on a raw TCP connection close it', async (t) => {
  const { b, c } = await cluster(t);
  for (let seed = 1; seed <= 5; seed++) {
    const raw = await rawTcp(c.transport.port, t);
    raw.socket.write(seededBytes(seed, 4096));
    await raw.ended;
  }
  await legitLinkWorks(t, b, c);
});

t.test('garbage before the handshake is refused with 4000', async (t) => {
  const { b, c } = await cluster(t);
  for (let seed = 1; seed <= 10; seed++) {
    const { ws } = await openRaw(c.transport.port, t);
    ws.send(seededBytes(seed, 1 + seed * 37));
    t.equal((await closeOf(ws)).code, CloseCode.BadHandshake, `seed ${seed}`);
  }
  const text = await openRaw(c.transport.port, t);
  text.ws.send('{"hello":"json"}');
  t.equal((await closeOf(text.ws)).code, CloseCode.BadHandshake, 'a text message');
  t.equal(c.transport.stats().rejectedConnections, 11);
  await legitLinkWorks(t, b, c);
});

t.test('garbage from an authenticated peer closes its link with 4002 and delivers nothing', async (t) => {
  const { b, c } = await cluster(t);
  const garbage: Array<[string, Buffer | string]> = [
    ...Array.from({ length: 10 }, (_, i): [string, Buffer] => [`random bytes, seed ${i + 1}`, seededBytes(i + 1, 64 + i * 101)]),
    ['msgpack, but a map', encodeFrame({ kind: 'append' })],
    ['msgpack, but a string', encodeFrame('frames')],
    ['a text message', '[1,2,3]'],
  ];
  for (const [what, data] of garbage) {
    const a = await handshakeAs(c.transport.port, t, 'a', 'c');
    a.ws.send(data);
    t.equal((await a.closed).code, CloseCode.BadFrame, what);
  }
  t.equal(c.transport.stats().peers.a?.receivedFrames, 0, 'no frame from the garbage sender counted');
  await legitLinkWorks(t, b, c);
});

t.test('before the handshake more than a handshake cuts the connection; after it an oversized message closes it with 1009', async (t) => {
  const { b, c } = await cluster(t);
  const before = await openRaw(c.transport.port, t);
  // The first 8 KiB of a message (far below maxFrameBytes) that never ends.
  before.ws.send(Buffer.alloc(8 * 1024), { fin: false });
  t.equal((await closeOf(before.ws)).code, 1006, 'before the handshake: cut without a close frame');

  const after = await handshakeAs(c.transport.port, t, 'a', 'c');
  // A valid batch, just too large: the size alone closes the link.
  after.ws.send(Buffer.concat([Buffer.from([0x91, 0xc6]), Buffer.from([0, 1, 0, 0]), Buffer.alloc(65536)]));
  t.equal((await after.closed).code, 1009, 'after the handshake');
  await legitLinkWorks(t, b, c);

  // And the peer can come back with sane messages afterwards.
  const again = await handshakeAs(c.transport.port, t, 'a', 'c');
  again.ws.send(Buffer.concat([Buffer.from([0x91]), encodeFrame({ ok: true })]));
  await waitFor('c gets the sane frame', () => (c.frames.some((f) => f.from === 'a') ? true : undefined), 5_000, 5);
  t.same(c.frames.filter((f) => f.from === 'a'), [{ from: 'a', frame: { ok: true } }]);
});

t.test('a frame too large for one message is refused by send, not sent', async (t) => {
  const { b, c } = await cluster(t);
  t.notOk(b.transport.send('c', { blob: Buffer.alloc(maxFrameBytes) }), 'send returns false');
  t.equal(b.transport.stats().peers.c?.droppedFrames, 1);
  await legitLinkWorks(t, b, c);
});
