// The peer port's admission of unauthenticated connections (src/transport/preauth.ts)
// against a model of its contract, over random sequences of connections, closes and
// peer-set changes, with each address written in several spellings (IPv4-mapped IPv6,
// hex or dotted tails, padded, compressed, upper case, with a zone). Every decision
// must be the model's: a peer host admits while its connections are fewer than
// maxPendingPerSource per peer advertising it; a stranger while its source (IPv4
// address, IPv6 /64) holds fewer than maxPendingPerSource and all strangers fewer than
// maxPendingStrangers. The counts match the model after every step, a place is given
// back once however often it is released, and closing everything leaves nothing.
import fc from 'fast-check';
import { PendingConnections, canonicalIp, type AdmissionTicket } from '../../../src/transport/preauth.js';
import type { FuzzTarget } from '../target.js';

/** An address by identity: IPv4 10.0.0.n, or IPv6 2001:db8:0:<prefix>:<n>::<n> (hosts of one /64 differ right after the prefix). */
type Address = { v: 4; n: number } | { v: 6; prefix: number; n: number };

const ADDRESSES: Address[] = [
  ...[1, 2, 3].map((n): Address => ({ v: 4, n })),
  ...[0, 1].flatMap((prefix) => [1, 2, 3].map((n): Address => ({ v: 6, prefix, n }))),
];
const SPELLINGS = 6;

function identity(a: Address): string {
  return a.v === 4 ? `10.0.0.${a.n}` : compressed(groupsOf(a));
}

/** The stranger source an address counts against, by the contract (not by the code under test). */
function sourceOf(a: Address): string {
  return a.v === 4 ? identity(a) : `2001:db8:0:${a.prefix}::/64`;
}

function groupsOf(a: Address): number[] {
  return a.v === 4 ? [0, 0, 0, 0, 0, 0xffff, 0x0a00, a.n] : [0x2001, 0x0db8, 0, a.prefix, a.n, 0, 0, a.n];
}

function compressed(groups: number[]): string {
  // The longest run of zero groups becomes "::".
  let best = { at: -1, length: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j += 1;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.length < 2) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.length).join(':')}`;
}

/** One of SPELLINGS ways to write the address, as a socket or a peer table might. */
function spell(a: Address, variant: number): string {
  const groups = groupsOf(a);
  switch (variant % SPELLINGS) {
    case 0:
      return a.v === 4 ? identity(a) : compressed(groups);
    case 1:
      return a.v === 4 ? `::ffff:${identity(a)}` : groups.map((g) => g.toString(16).padStart(4, '0')).join(':');
    case 2:
      return compressed(groups); // IPv4: the mapped form with a hex tail
    case 3:
      return compressed(groups).toUpperCase();
    case 4:
      return a.v === 4 ? `0:0:0:0:0:ffff:${identity(a)}` : groups.map((g) => g.toString(16)).join(':');
    default:
      return a.v === 4 ? `::FFFF:${identity(a)}` : `${compressed(groups)}%lo`;
  }
}

type Op = { kind: 'connect'; address: number; spelling: number } | { kind: 'close'; which: number; twice: boolean } | { kind: 'peers'; hosts: Array<{ address: number; spelling: number }> };

const anAddress = fc.nat(ADDRESSES.length - 1);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('connect' as const), address: anAddress, spelling: fc.nat(SPELLINGS - 1) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('close' as const), which: fc.nat(), twice: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('peers' as const), hosts: fc.array(fc.record({ address: anAddress, spelling: fc.nat(SPELLINGS - 1) }), { maxLength: 5 }) }) },
);

interface Held {
  ticket: AdmissionTicket;
  peerHost: boolean;
  key: string; // the model's: the address for a peer host, the source for a stranger
}

function fail(message: string): never {
  throw new Error(`preauth admission: ${message}`);
}

export const target: FuzzTarget = {
  name: 'preauth-admission',
  property() {
    // `focus`: how many of the addresses a run uses; few make sources fill up and peer hosts repeat.
    const run = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: ADDRESSES.length }), fc.array(op, { maxLength: 80 }));
    return fc.property(run, ([maxPendingPerSource, maxPendingStrangers, focus, ops]) => {
      const address = (i: number): Address => ADDRESSES[i % focus] ?? fail('no address');
      for (const a of ADDRESSES) {
        for (let s = 0; s < SPELLINGS; s++) {
          if (canonicalIp(spell(a, s)) !== canonicalIp(spell(a, 0))) fail(`${spell(a, s)} and ${spell(a, 0)} are one address`);
        }
      }
      const pending = new PendingConnections({ maxPendingPerSource, maxPendingStrangers });
      let peerHosts = new Map<string, number>(); // identity → peers advertising it
      const held: Held[] = [];
      const count = (peerHost: boolean, key?: string): number => held.filter((h) => h.peerHost === peerHost && (key === undefined || h.key === key)).length;
      for (const o of ops) {
        if (o.kind === 'peers') {
          peerHosts = new Map();
          for (const h of o.hosts) {
            const id = identity(address(h.address));
            peerHosts.set(id, (peerHosts.get(id) ?? 0) + 1);
          }
          pending.setPeerHosts(o.hosts.map((h) => canonicalIp(spell(address(h.address), h.spelling)) ?? fail('not an IP')));
        } else if (o.kind === 'close') {
          if (held.length === 0) continue;
          const [h] = held.splice(o.which % held.length, 1);
          if (h === undefined) fail('no held connection');
          pending.release(h.ticket);
          if (o.twice) pending.release(h.ticket);
        } else {
          const a = address(o.address);
          const written = spell(a, o.spelling);
          const peersThere = peerHosts.get(identity(a));
          const peerHost = peersThere !== undefined;
          const key = peerHost ? identity(a) : sourceOf(a);
          const expected = peerHost ? count(true, key) < maxPendingPerSource * peersThere : count(false, key) < maxPendingPerSource && count(false) < maxPendingStrangers;
          const got = pending.admit(written);
          if (got.admitted !== expected) fail(`${written} (${peerHost ? 'peer host' : 'stranger'}): admitted ${got.admitted}, expected ${expected}`);
          if (got.admitted) {
            if (got.ticket.peerHost !== peerHost) fail(`${written} admitted as the wrong class`);
            held.push({ ticket: got.ticket, peerHost, key });
          }
        }
        const counts = pending.counts();
        if (counts.strangers !== count(false) || counts.peerHosts !== count(true)) fail(`counts ${JSON.stringify(counts)}, expected ${count(false)} strangers and ${count(true)} at peer hosts`);
        if (counts.strangers > maxPendingStrangers) fail('strangers beyond their budget');
      }
      for (const h of held.splice(0)) pending.release(h.ticket);
      const counts = pending.counts();
      if (counts.strangers !== 0 || counts.peerHosts !== 0) fail(`all closed, yet ${JSON.stringify(counts)} pending`);
      for (const junk of ['', 'localhost', '10.0.0', '::g', '1.2.3.4.5']) if (pending.admit(junk).admitted) fail(`"${junk}" admitted`);
      return true;
    });
  },
};
