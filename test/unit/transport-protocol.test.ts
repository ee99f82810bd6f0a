// The transport's pure parts, without sockets: handshake messages and proofs, the
// batch codec, the bounded frame queue, reconnect delays, peer addresses.
import t from 'tap';
import { parsePeerAddress, peerUrl } from '../../src/transport/address.js';
import { backoffDelayMs } from '../../src/util/backoff.js';
import { FrameDecodeError, decodeBatch, encodeBatch, encodeFrame } from '../../src/transport/codec.js';
import { FrameQueue } from '../../src/transport/frame-queue.js';
import {
  HandshakeError,
  computeProof,
  encodeChallenge,
  encodeHello,
  encodeWelcome,
  newNonce,
  parseChallenge,
  parseHello,
  parseWelcome,
  verifyProof,
} from '../../src/transport/handshake.js';
import { seededBytes } from './transport-random.js';

const TOKEN = Buffer.from('s3cret-cluster-token');

function transcript() {
  return { clientId: 'n1', serverId: 'n2', clientNonce: newNonce(), serverNonce: newNonce() };
}

t.test('a proof verifies with the same token and transcript only', async (t) => {
  const tr = transcript();
  const proof = computeProof(TOKEN, 'client', tr);
  t.ok(verifyProof(TOKEN, 'client', tr, proof), 'same token, same transcript');
  t.notOk(verifyProof(Buffer.from('other'), 'client', tr, proof), 'another token');
  t.notOk(verifyProof(TOKEN, 'server', tr, proof), 'a client proof is not a server proof (no reflection)');
  t.notOk(verifyProof(TOKEN, 'client', { ...tr, serverNonce: newNonce() }, proof), 'another server nonce (no replay)');
  t.notOk(verifyProof(TOKEN, 'client', { ...tr, clientNonce: tr.serverNonce, serverNonce: tr.clientNonce }, proof), 'nonces swapped');
  t.notOk(verifyProof(TOKEN, 'client', { ...tr, clientId: 'n3' }, proof), 'another client id');
  t.notOk(verifyProof(TOKEN, 'client', tr, proof.subarray(0, 31)), 'a truncated proof');
  t.ok(verifyProof(null, 'client', tr, computeProof(null, 'client', tr)), 'no token: the handshake runs with an empty key');
  t.same(computeProof(null, 'client', tr), computeProof(Buffer.alloc(0), 'client', tr));
  t.notSame(computeProof(null, 'client', tr), computeProof(TOKEN, 'client', tr), 'a node without the token cannot pass for one with it');
});

t.test('handshake messages round-trip and never carry the token', async (t) => {
  const tr = transcript();
  const challenge = { serverId: 'n2', serverNonce: tr.serverNonce };
  const hello = { clientId: 'n1', serverId: 'n2', clientNonce: tr.clientNonce, proof: computeProof(TOKEN, 'client', tr) };
  const welcome = { proof: computeProof(TOKEN, 'server', tr) };
  t.same(parseChallenge(encodeChallenge(challenge)), challenge);
  t.same(parseHello(encodeHello(hello)), hello);
  t.same(parseWelcome(encodeWelcome(welcome)), welcome);
  t.same(parseHello(encodeHello({ ...hello, clientId: 'nœud-é' })).clientId, 'nœud-é', 'ids are UTF-8');
  for (const bytes of [encodeChallenge(challenge), encodeHello(hello), encodeWelcome(welcome)]) {
    t.equal(bytes.indexOf(TOKEN), -1, 'the token is not in the message');
  }
});

t.test('malformed handshake messages are rejected with a HandshakeError', async (t) => {
  const hello = encodeHello({ clientId: 'n1', serverId: 'n2', clientNonce: newNonce(), proof: newNonce() });
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['truncated', hello.subarray(0, hello.length - 1)],
    ['trailing bytes', Buffer.concat([hello, Buffer.from([0])])],
    ['wrong kind', Buffer.concat([Buffer.from([3]), hello.subarray(1)])],
    ['wrong version', Buffer.concat([Buffer.from([2, 9]), hello.subarray(2)])],
    ['empty id', Buffer.concat([hello.subarray(0, 66), Buffer.from([0])])],
    ['invalid UTF-8 id', Buffer.concat([hello.subarray(0, 66), Buffer.from([1, 0xff, 2, 0x6e, 0x32])])],
  ];
  for (const [what, bytes] of cases) t.throws(() => parseHello(bytes), HandshakeError, what);
  for (let seed = 1; seed <= 200; seed++) {
    const bytes = seededBytes(seed, seed % 90);
    try {
      parseHello(bytes);
      parseChallenge(bytes);
    } catch (err) {
      if (!(err instanceof HandshakeError)) t.fail(`seed ${seed}: ${String(err)}`);
    }
  }
  t.throws(() => encodeHello({ clientId: 'x'.repeat(256), serverId: 'n2', clientNonce: newNonce(), proof: newNonce() }), TypeError, 'an id too long to encode');
});

t.test('a batch is one msgpack array of the frames, whatever their number', async (t) => {
  for (const n of [0, 1, 15, 16, 65535, 65536]) {
    const frames = Array.from({ length: n }, (_, i) => ({ i }));
    // Compared as JSON: tap's deep equality is slow on 65536 items.
    t.equal(JSON.stringify(decodeBatch(encodeBatch(frames.map(encodeFrame)))), JSON.stringify(frames), `${n} frames`);
  }
  t.same(decodeBatch(encodeBatch([encodeFrame({ data: new Uint8Array([1, 2, 3]), s: 'x', n: -1.5, nil: null })])), [{ data: Buffer.from([1, 2, 3]), s: 'x', n: -1.5, nil: null }]);
});

t.test('a message that is not exactly one msgpack array is a FrameDecodeError', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['a map', encodeFrame({ a: 1 })],
    ['a number', encodeFrame(7)],
    ['truncated array', encodeBatch([encodeFrame('abc')]).subarray(0, 3)],
    ['an array then trailing bytes', Buffer.concat([encodeBatch([encodeFrame(1)]), Buffer.from([1])])],
    ['array header claiming 2^32-1 items', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])],
    ['string header claiming 4 GiB', Buffer.from([0x91, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])],
  ];
  for (const [what, bytes] of cases) t.throws(() => decodeBatch(bytes), FrameDecodeError, what);
  let arrays = 0;
  for (let seed = 1; seed <= 2000; seed++) {
    try {
      if (Array.isArray(decodeBatch(seededBytes(seed, 1 + (seed % 300))))) arrays += 1;
    } catch (err) {
      if (!(err instanceof FrameDecodeError)) t.fail(`seed ${seed}: random bytes threw ${String(err)}`);
    }
  }
  t.pass(`2000 random messages: ${arrays} happened to be arrays, every other one a FrameDecodeError`);
});

t.test('the frame queue keeps its byte bound by dropping the oldest frames', async (t) => {
  const q = new FrameQueue(10);
  t.same(q.push(Buffer.alloc(4, 1)), { queued: true, droppedFrames: 0 });
  t.same(q.push(Buffer.alloc(4, 2)), { queued: true, droppedFrames: 0 });
  t.same(q.push(Buffer.alloc(4, 3)), { queued: true, droppedFrames: 1 }, 'the first frame makes room');
  t.equal(q.bytes, 8);
  t.same(q.push(Buffer.alloc(11)), { queued: false, droppedFrames: 0 }, 'a frame larger than the bound is refused, nothing evicted');
  t.same(q.push(Buffer.alloc(10, 4)), { queued: true, droppedFrames: 2 });
  t.same(q.take(100).map((b) => b[0]), [4]);
  t.equal(q.bytes, 0);

  const big = new FrameQueue(1_000_000);
  for (let i = 0; i < 5000; i++) big.push(Buffer.from([i & 0xff, i >> 8]));
  const first = big.take(10);
  t.same(first.length, 5, 'take stops at maxBytes');
  t.same(big.take(1).length, 1, 'and always returns at least one frame');
  const order: number[] = [];
  while (big.length > 0) for (const f of big.take(333)) order.push(f[0]! | (f[1]! << 8));
  t.equal(order.join(), Array.from({ length: 4994 }, (_, i) => i + 6).join(), 'order survives compaction');
  t.equal(big.bytes, 0);
});

t.test('reconnect delays double from the base to the cap, with jitter in the upper half', async (t) => {
  const opts = { baseMs: 50, maxMs: 2_000 };
  const caps = [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000];
  caps.forEach((cap, attempt) => {
    t.equal(backoffDelayMs(attempt, () => 0, opts), cap / 2, `attempt ${attempt}: lowest`);
    t.ok(backoffDelayMs(attempt, () => 0.999999, opts) <= cap, `attempt ${attempt}: highest ≤ ${cap}`);
  });
  t.equal(backoffDelayMs(10_000, () => 0.5, opts), 1500, 'huge attempt counts stay capped');
});

t.test('peer addresses are host:port, IPv6 in brackets', async (t) => {
  t.same(parsePeerAddress('127.0.0.1:7804'), { host: '127.0.0.1', port: 7804 });
  t.same(parsePeerAddress('box-3.lan:1'), { host: 'box-3.lan', port: 1 });
  t.same(parsePeerAddress('[::1]:7804'), { host: '::1', port: 7804 });
  t.equal(peerUrl('[::1]:7804'), 'ws://[::1]:7804/peer');
  t.equal(peerUrl('10.0.0.2:7804'), 'ws://10.0.0.2:7804/peer');
  for (const bad of ['', '127.0.0.1', ':80', 'host:0', 'host:65536', '::1:80', 'http://h:1', 'h:1/x']) {
    t.throws(() => parsePeerAddress(bad), TypeError, `"${bad}" is refused`);
  }
});
