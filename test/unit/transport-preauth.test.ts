// The budget of connections that have not proved the token: how addresses are counted,
// how many connections a source and all strangers may hold, how many bytes each may
// send, and that a node's peers get in whatever strangers do.
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { PendingConnections, canonicalIp, dialSourceAddress, sourceKey, type AdmissionTicket } from '../../src/transport/preauth.js';
import { waitFor } from '../helpers/wait.js';
import { closeOf, connected, openRaw, startNode, waitConnected } from './transport-fixture.js';

t.test('addresses compare by their canonical text; strangers count per IPv4 address or IPv6 /64', async (t) => {
  t.equal(canonicalIp('127.0.0.1'), '127.0.0.1');
  t.equal(canonicalIp('::ffff:127.0.0.1'), '127.0.0.1', 'an IPv4 caller on a dual-stack socket');
  t.equal(canonicalIp('::1'), '0000:0000:0000:0000:0000:0000:0000:0001');
  t.equal(canonicalIp('2001:DB8::1'), canonicalIp('2001:db8:0:0:0:0:0:1'), 'two spellings of one address');
  t.equal(canonicalIp('fe80::1%eth0'), '0000:0000:0000:0000:0000:0000:0000:0001'.replace(/^0000/, 'fe80'), 'the zone is dropped');
  t.equal(canonicalIp('::ffff:1.2.3.4'), '1.2.3.4');
  t.equal(canonicalIp('1:2:3:4:5:6:7.8.9.10'), '0001:0002:0003:0004:0005:0006:0708:090a', 'an embedded IPv4 tail');
  t.equal(canonicalIp('node1.example'), null);
  t.equal(canonicalIp(''), null);
  t.equal(sourceKey('10.1.2.3'), '10.1.2.3');
  const a = canonicalIp('2001:db8:1:2::5');
  const b = canonicalIp('2001:db8:1:2:ffff::9');
  t.ok(a !== null && b !== null && sourceKey(a) === sourceKey(b), 'two hosts of one /64 are one source');
  t.not(sourceKey(canonicalIp('2001:db8:1:3::5') ?? ''), sourceKey(a ?? ''), 'another /64 is another source');
});

t.test('dials leave from the listening address only when it is one specific IP', async (t) => {
  t.same(dialSourceAddress('127.0.0.2'), { localAddress: '127.0.0.2', family: 4 });
  t.same(dialSourceAddress('::1'), { localAddress: '::1', family: 6 });
  t.same(dialSourceAddress('[::1]'), { localAddress: '::1', family: 6 });
  t.equal(dialSourceAddress('0.0.0.0'), undefined);
  t.equal(dialSourceAddress('::'), undefined);
  t.equal(dialSourceAddress('localhost'), undefined);
});

t.test('admission: a source holds maxPendingPerSource, strangers maxPendingStrangers together, peer hosts a share of their own', async (t) => {
  const pending = new PendingConnections({ maxPendingPerSource: 2, maxPendingStrangers: 3 });
  pending.setPeerHosts(['10.0.0.1', '10.0.0.2', '10.0.0.2']); // two peers advertise 10.0.0.2
  const tickets: AdmissionTicket[] = [];
  const admit = (address: string): string => {
    const a = pending.admit(address);
    if (a.admitted) tickets.push(a.ticket);
    return a.admitted ? 'admitted' : a.reason;
  };
  t.same([admit('192.0.2.1'), admit('192.0.2.1'), admit('192.0.2.1')], ['admitted', 'admitted', 'source-busy'], 'one stranger source');
  t.same([admit('192.0.2.2'), admit('192.0.2.3')], ['admitted', 'strangers-busy'], 'all strangers together');
  t.same([admit('10.0.0.1'), admit('10.0.0.1'), admit('10.0.0.1')], ['admitted', 'admitted', 'source-busy'], 'a peer host, though strangers are full');
  t.same([1, 2, 3, 4, 5].map(() => admit('::ffff:10.0.0.2')), ['admitted', 'admitted', 'admitted', 'admitted', 'source-busy'], 'a host two peers advertise holds two shares');
  t.equal(admit(undefined as unknown as string), 'no-address', 'a socket already closed has no address');
  t.same(pending.counts(), { strangers: 3, peerHosts: 6 });

  pending.setPeerHosts([]); // the peer set changed: tickets keep their class
  for (const ticket of tickets) {
    pending.release(ticket);
    pending.release(ticket);
  }
  t.same(pending.counts(), { strangers: 0, peerHosts: 0 }, 'every place given back once, whatever the peer set became');
  t.equal(admit('10.0.0.1'), 'admitted', 'and 10.0.0.1 now counts as a stranger');
  t.same(pending.counts(), { strangers: 1, peerHosts: 0 });
  t.throws(() => new PendingConnections({ maxPendingPerSource: 0, maxPendingStrangers: 1 }), RangeError);
});

/** A TCP connection to host:port from `localAddress`; `closed` resolves when it ends. */
async function tcpFrom(t: Test, host: string, port: number, localAddress: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect({ host, port, localAddress });
  t.teardown(() => socket.destroy());
  socket.on('error', () => {}); // the close is what the tests check
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', resolve);
  });
  socket.resume();
  return { socket, closed };
}

t.test('more than a handshake before authenticating cuts the connection at once', async (t) => {
  const c = await startNode(t, 'c', { maxPreAuthBytes: 4096 });
  c.transport.setPeers(new Map([['a', '127.0.0.1:1']]));
  const raw = await openRaw(c.transport.port, t);
  // Announced as one 1 MiB message: only the first reads of it are ever taken in.
  raw.ws.send(Buffer.alloc(1024 * 1024));
  t.equal((await closeOf(raw.ws)).code, 1006, 'cut, no close frame');
  t.equal(c.transport.stats().rejectedConnections, 1);
  await waitFor('its place given back', () => (c.transport.stats().pendingConnections.strangers === 0 ? true : undefined), 5_000, 5);
  await t.rejects(startNode(t, 'd', { maxPreAuthBytes: 100 }), RangeError, 'a budget below two handshake messages is refused');
});

t.test('a source holds maxPendingPerSource connections; more are closed as they come', async (t) => {
  const c = await startNode(t, 'c', { maxPendingPerSource: 3, maxPendingHandshakes: 100 });
  const held = await Promise.all([1, 2, 3].map(() => tcpFrom(t, '127.0.0.1', c.transport.port, '127.0.0.50')));
  await waitFor('three pending', () => (c.transport.stats().pendingConnections.strangers === 3 ? true : undefined), 5_000, 5);
  const fourth = await tcpFrom(t, '127.0.0.1', c.transport.port, '127.0.0.50');
  await fourth.closed;
  t.pass('the fourth from 127.0.0.50 is closed');
  const other = await tcpFrom(t, '127.0.0.1', c.transport.port, '127.0.0.51');
  await waitFor('another source gets in', () => (c.transport.stats().pendingConnections.strangers === 4 ? true : undefined), 5_000, 5);
  t.equal(c.transport.stats().rejectedConnections, 1);
  for (const h of [...held, other]) h.socket.destroy();
  await waitFor('places given back on close', () => (c.transport.stats().pendingConnections.strangers === 0 ? true : undefined), 5_000, 5);
});

t.test('strangers holding their whole budget do not keep a peer from linking', async (t) => {
  // Each node on an address of its own: b dials c from 127.0.0.2, which c's peer set names.
  const b = await startNode(t, 'b', { listen: { host: '127.0.0.2', port: 0 } });
  const c = await startNode(t, 'c', { listen: { host: '127.0.0.3', port: 0 }, maxPendingHandshakes: 8, maxPendingPerSource: 2 });
  b.address = `127.0.0.2:${b.transport.port}`;
  c.address = `127.0.0.3:${c.transport.port}`;
  c.transport.setPeers(new Map([['b', b.address]]));
  const strangers = await Promise.all(Array.from({ length: 10 }, (_, i) => tcpFrom(t, '127.0.0.3', c.transport.port, `127.0.0.${50 + (i % 5)}`)));
  await waitFor('strangers hold their budget', () => (c.transport.stats().pendingConnections.strangers === 8 ? true : undefined), 5_000, 5);
  const refused = await Promise.race([Promise.any(strangers.map((s) => s.closed)).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
  t.ok(refused, 'strangers beyond their budget are closed');
  b.transport.setPeers(new Map([['c', c.address]]));
  await waitConnected([b, c]);
  t.ok(connected(b, 'c') && connected(c, 'b'), 'b linked to c while strangers held their whole budget');
  t.equal(c.transport.stats().pendingConnections.strangers, 8, 'the strangers still hold it');
  b.transport.send('c', { hello: 'c' });
  await waitFor('c gets the frame', () => (c.frames.length > 0 ? true : undefined), 5_000, 5);
  t.same(c.frames, [{ from: 'b', frame: { hello: 'c' } }]);
});

t.test('a peer named by a host name makes the addresses the name resolves to peer hosts', async (t) => {
  const c = await startNode(t, 'c');
  c.transport.setPeers(new Map([['a', 'localhost:1']]));
  const classOfNextConnection = async (): Promise<'peer host' | 'stranger' | undefined> => {
    const conn = await tcpFrom(t, '127.0.0.1', c.transport.port, '127.0.0.1');
    const counted = await waitFor('the connection counted', () => {
      const { strangers, peerHosts } = c.transport.stats().pendingConnections;
      return peerHosts === 1 ? 'peer host' : strangers === 1 ? 'stranger' : undefined;
    }, 5_000, 5);
    conn.socket.destroy();
    await waitFor('its place given back', () => (c.transport.stats().pendingConnections.peerHosts + c.transport.stats().pendingConnections.strangers === 0 ? true : undefined), 5_000, 5);
    return counted;
  };
  const counted = await waitFor('localhost looked up', async () => ((await classOfNextConnection()) === 'peer host' ? true : undefined), 5_000, 20);
  t.ok(counted, 'a connection from 127.0.0.1 counts against the peer hosts once "localhost" resolved');
  c.transport.setPeers(new Map([['a', '127.0.0.9:1']]));
  t.equal(await classOfNextConnection(), 'stranger', 'and against the strangers once no peer is named so');
});
