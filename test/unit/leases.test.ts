// The lease protocol (src/node/leases.ts) on simulated time: renewal, expiry exactly
// at the bound, acknowledgements withheld by a leader without its quorum, and the
// bound a leader waits out before it declares a node lost.
import t, { type Test } from 'tap';
import type { NodeId } from '../../raft/types.js';
import type { PeerFrame } from '../../src/node/frames.js';
import { Leases, type LeaseOptions } from '../../src/node/leases.js';
import type { NodeRecord } from '../../src/state/records.js';
import { ManualClock } from '../../src/util/manual-clock.js';

const LEASE_TIMEOUT_MS = 3000;
const RENEW_MS = 500;
const CONTACT_MS = 600;
const FENCE_MARGIN_MS = 400;

interface Net {
  clock: ManualClock;
  leader: Leases;
  follower: Leases;
  /** The leader's quorum contact (what Raft would say). */
  quorum: { ok: boolean };
  withheld: () => number;
  /** Frames are delivered unless this is false. */
  link: { up: boolean };
  /** The term both nodes report; the leader leads while `leading`. */
  raftState: { term: number; leading: boolean };
  /** Lease frames sent so far, by kind. */
  sent: { lease: number; leaseAck: number };
}

/** A leader n1 and a follower n2 whose frames go straight to each other while the link is up. */
function net(extra: Partial<LeaseOptions> = {}): Net {
  const clock = new ManualClock();
  const quorum = { ok: true };
  const link = { up: true };
  const raftState = { term: 1, leading: true };
  const sent = { lease: 0, leaseAck: 0 };
  let withheld = 0;
  const nodes = new Map<NodeId, Leases>();
  const make = (id: NodeId, role: 'leader' | 'follower'): Leases =>
    new Leases({
      id,
      clock,
      raft: {
        status: () => ({ role: role === 'leader' && !raftState.leading ? 'follower' : role, leader: 'n1', term: raftState.term }) as ReturnType<LeaseOptions['raft']['status']>,
        hasQuorumContact: () => role === 'leader' && quorum.ok,
      },
      send: (to: NodeId, frame: PeerFrame) => {
        if (frame.k === 'lease' || frame.k === 'leaseAck') sent[frame.k]++;
        if (link.up) nodes.get(to)?.onFrame(id, frame);
        return true;
      },
      quorumContactMs: CONTACT_MS,
      leaseTimeoutMs: LEASE_TIMEOUT_MS,
      leaseRenewMs: RENEW_MS,
      fenceMarginMs: FENCE_MARGIN_MS,
      onAckWithheld: () => withheld++,
      ...extra,
    });
  const leader = make('n1', 'leader');
  const follower = make('n2', 'follower');
  nodes.set('n1', leader).set('n2', follower);
  return { clock, leader, follower, quorum, link, withheld: () => withheld, raftState, sent };
}

t.test('a renewal the leader acknowledges makes the lease valid and records the node as seen', async (t) => {
  const { clock, leader, follower } = net();
  t.notOk(follower.valid(), 'no lease before the first renewal');
  follower.renew();
  t.ok(follower.valid(), 'valid once acknowledged');
  t.equal(leader.lastSeen.get('n2'), clock.now(), 'the leader saw n2 now');
  leader.renew();
  t.ok(leader.valid(), 'the leader grants itself a lease while it has its quorum');
});

t.test('a lease expires exactly leaseTimeoutMs after the renewal was sent', async (t) => {
  const { clock, follower, link } = net();
  follower.renew();
  link.up = false;
  await clock.advance(LEASE_TIMEOUT_MS - 1);
  t.ok(follower.valid(), 'still valid 1 ms before the bound');
  await clock.advance(1);
  t.notOk(follower.valid(), 'expired at the bound');
  link.up = true;
  follower.renew();
  t.ok(follower.valid(), 'a new acknowledgement restores it');
});

t.test('renewals every leaseRenewMs keep the lease valid on simulated time', async (t) => {
  const { clock, follower } = net();
  const timer = clock.every(RENEW_MS, () => follower.renew());
  follower.renew();
  for (let i = 0; i < 20; i++) {
    await clock.advance(RENEW_MS);
    t.ok(follower.valid(), `valid at ${(i + 1) * RENEW_MS} ms`);
  }
  timer.cancel();
});

t.test('the lease counts from when it was asked, never from the future', async (t) => {
  const { clock, follower } = net();
  const start = clock.now();
  follower.onFrame('n1', { k: 'leaseAck', at: start + 60_000 });
  await clock.advance(LEASE_TIMEOUT_MS);
  t.notOk(follower.valid(), 'an ack from the future counts as now, so it expires at the bound');
  follower.onFrame('n3', { k: 'leaseAck', at: clock.now() });
  t.notOk(follower.valid(), 'an ack from a node that is not the leader grants nothing');
});

t.test('a leader without its quorum records the renewal but withholds the ack', async (t) => {
  const { clock, leader, follower, quorum, withheld } = net();
  quorum.ok = false;
  follower.renew();
  t.notOk(follower.valid(), 'no lease granted');
  t.equal(leader.lastSeen.get('n2'), clock.now(), 'the node still counts as seen');
  leader.renew();
  t.notOk(leader.valid(), 'nor does the leader grant itself one');
  t.equal(withheld(), 2, 'both withholdings counted');
  quorum.ok = true;
  follower.renew();
  t.ok(follower.valid(), 'granted again once the quorum answers');
});

const node = (id: string, state: NodeRecord['state']): NodeRecord => ({ id, state }) as NodeRecord;

t.test("at a new term, a member's lease bound starts where an earlier leader's last lease could have; lost ones get none", async (t) => {
  const { clock, leader } = net();
  await clock.advance(1000);
  const electedAt = clock.monotonic() - 200;
  leader.lastSeen.set('old', 1);
  leader.startTerm([node('n2', 'alive'), node('n3', 'suspect'), node('n4', 'lost')], electedAt);
  t.same([...leader.lastSeen.keys()].sort(), ['n1', 'n2', 'n3']);
  const floor = electedAt + CONTACT_MS;
  t.equal(leader.liveness().lastSeenMs.get('n2'), floor, 'from the election plus the contact window, not from now');
  t.equal(leader.liveness().nodeTimeoutMs, LEASE_TIMEOUT_MS + FENCE_MARGIN_MS, 'then the lease and the fence margin');
  await clock.advance(100);
  leader.admit([node('n2', 'alive'), node('n5', 'alive')]);
  t.equal(leader.lastSeen.get('n2'), clock.now() - 100, 'a known node keeps its time');
  t.equal(leader.liveness().lastSeenMs.get('n5'), floor, 'a node first seen within the window starts at the floor too');
  await clock.advance(CONTACT_MS);
  leader.admit([node('n6', 'alive')]);
  t.equal(leader.liveness().lastSeenMs.get('n6'), clock.monotonic(), 'one first seen after it starts now');
  t.equal(leader.lastSeen.get('n1'), clock.now(), 'the leader is always current');
});

t.test("a renewal to this leader moves the node's bound to its receipt, never before the term floor", async (t) => {
  const { clock, leader, follower } = net();
  leader.startTerm([node('n2', 'alive')], clock.monotonic());
  follower.renew();
  t.equal(leader.liveness().lastSeenMs.get('n2'), clock.monotonic() + CONTACT_MS, 'an early renewal: the old leases still bound it');
  await clock.advance(CONTACT_MS + 50);
  follower.renew();
  t.equal(leader.liveness().lastSeenMs.get('n2'), clock.monotonic(), 'later: from the renewal');
  t.equal(leader.liveness().now, clock.monotonic(), "on the leader's monotonic clock");
});

t.test('reassignBeforeLeaseBound shortens the loss timeout below the lease and drops the term floor', async (t) => {
  t.equal(net().leader.lossTimeoutMs(), LEASE_TIMEOUT_MS + FENCE_MARGIN_MS);
  const { clock, leader } = net({ reassignBeforeLeaseBound: true });
  t.equal(leader.lossTimeoutMs(), 2 * RENEW_MS);
  t.ok(2 * RENEW_MS < LEASE_TIMEOUT_MS, 'a node may still hold a valid lease when it is declared lost');
  leader.startTerm([node('n2', 'alive')], clock.monotonic());
  t.equal(leader.liveness().lastSeenMs.get('n2'), clock.monotonic(), 'no room for an earlier leader');
});

t.test('onLapse fires at the instant the lease ends, not before, and not while renewals keep it', async (t) => {
  let lapses = 0;
  const { clock, follower, link } = net({ onLapse: () => lapses++ });
  const timer = clock.every(RENEW_MS, () => follower.renew());
  follower.renew();
  await clock.advance(5 * LEASE_TIMEOUT_MS);
  t.equal(lapses, 0, 'renewed all along');
  link.up = false;
  const lastAck = clock.monotonic();
  await clock.advance(LEASE_TIMEOUT_MS - 1);
  t.equal(lapses, 0, 'the last ack came at most now - leaseTimeoutMs + 1 ago');
  await clock.advance(1);
  t.equal(lapses, 1, `told at ${clock.monotonic() - lastAck} ms, the end of the last lease`);
  t.notOk(follower.valid(), 'and the lease is indeed over');
  timer.cancel();
  follower.stop();
});

t.test('with catchUp, a lease that starts or comes back counts only once this node caught up with the log', async (t) => {
  let release: (() => void) | null = null;
  let calls = 0;
  const catchUp = (): Promise<void> => {
    calls++;
    return new Promise<void>((resolve) => (release = resolve));
  };
  const { clock, follower, link } = net({ catchUp });
  follower.renew();
  t.notOk(follower.valid(), 'granted, but not caught up yet');
  t.equal(calls, 1, 'catching up started');
  t.notOk(follower.valid(), 'still waiting');
  t.equal(calls, 1, 'one catch-up at a time');
  (release as unknown as () => void)();
  await clock.advance(0);
  t.ok(follower.valid(), 'valid once caught up');

  link.up = false;
  await clock.advance(LEASE_TIMEOUT_MS);
  t.notOk(follower.valid(), 'lapsed');
  link.up = true;
  follower.renew();
  t.notOk(follower.valid(), 'back, but it must catch up again');
  t.equal(calls, 2);
  (release as unknown as () => void)();
  await clock.advance(0);
  t.ok(follower.valid());
});

const HOLD_MS = 400;

/** Runs `act` 1 ms before `ms` from now and at `ms`, and checks `count` after each: the step happens exactly at the bound. */
async function atTheBound(t: Test, clock: ManualClock, ms: number, act: () => void, count: () => number, [before, at]: [number, number], [whatBefore, whatAt]: [string, string]): Promise<void> {
  await clock.advance(ms - 1);
  act();
  t.equal(count(), before, whatBefore);
  await clock.advance(1);
  act();
  t.equal(count(), at, whatAt);
}

t.test('a held ack leaves with the next heartbeat to its node, and the lease counts from the renewal', async (t) => {
  const { clock, leader, follower, sent } = net({ holdAcksMs: HOLD_MS });
  follower.renew();
  const askedAt = clock.monotonic();
  t.equal(sent.leaseAck, 0, 'not acked on receipt');
  t.notOk(follower.valid(), 'so no lease yet');
  await clock.advance(150);
  leader.heartbeatSent('n3');
  t.equal(sent.leaseAck, 0, 'a heartbeat to another node does not release it');
  leader.heartbeatSent('n2');
  t.equal(sent.leaseAck, 1, 'the heartbeat to n2 takes it along');
  await clock.advance(LEASE_TIMEOUT_MS - 150 - 1);
  t.ok(follower.valid(), 'valid until leaseTimeoutMs after the renewal was sent');
  await clock.advance(1);
  t.notOk(follower.valid(), `expired at renewal + leaseTimeoutMs (${clock.monotonic() - askedAt} ms), not ack + leaseTimeoutMs`);
  leader.heartbeatSent('n2');
  t.equal(sent.leaseAck, 1, 'one ack per renewal');
});

t.test('renewals held together are acked once, with the newest', async (t) => {
  const { clock, leader, follower, sent } = net({ holdAcksMs: HOLD_MS });
  follower.renew();
  await clock.advance(RENEW_MS);
  follower.renew();
  const newest = clock.monotonic();
  leader.heartbeatSent('n2');
  t.equal(sent.leaseAck, 1);
  await clock.advance(LEASE_TIMEOUT_MS - 1);
  t.ok(follower.valid(), `the lease counts from the newer renewal (${newest} ms)`);
});

t.test('a held ack is checked for quorum contact when it is sent, not when the renewal came', async (t) => {
  const { leader, follower, quorum, sent, withheld } = net({ holdAcksMs: HOLD_MS });
  follower.renew();
  quorum.ok = false;
  leader.heartbeatSent('n2');
  t.equal(sent.leaseAck, 0, 'contact lost meanwhile: no ack');
  t.equal(withheld(), 1, 'counted as withheld');
  t.notOk(follower.valid());
});

t.test('flushHeldAcks sends an ack held holdAcksMs with no heartbeat meanwhile, not earlier', async (t) => {
  const { clock, leader, follower, sent } = net({ holdAcksMs: HOLD_MS });
  follower.renew();
  await atTheBound(t, clock, HOLD_MS, () => leader.flushHeldAcks(), () => sent.leaseAck, [0, 1], ['1 ms before holdAcksMs it still waits', 'sent alone at holdAcksMs']);
  t.ok(follower.valid());
});

t.test('a held ack is dropped once its term is over or the node no longer leads', async (t) => {
  const { leader, follower, sent, raftState } = net({ holdAcksMs: HOLD_MS });
  follower.renew();
  raftState.term = 2;
  leader.heartbeatSent('n2');
  t.equal(sent.leaseAck, 0, 'a renewal of term 1 is not acked in term 2');
  follower.renew();
  raftState.leading = false;
  leader.flushHeldAcks();
  t.equal(sent.leaseAck, 0, 'nor by a node that stepped down');
  raftState.leading = true;
  leader.heartbeatSent('n2');
  t.equal(sent.leaseAck, 0, 'and it is forgotten, not sent later');
  t.notOk(follower.valid());
});

t.test('heartbeat answers carry a renewal each last gap before one is due, whatever the gap; renewIfDue after a silent leaseRenewMs', async (t) => {
  const { clock, follower, sent } = net();
  const answerEvery = async (gapMs: number, times: number): Promise<number[]> => {
    const counts: number[] = [];
    for (let i = 0; i < times; i++) {
      await clock.advance(gapMs);
      follower.heartbeatAnswered('n1');
      counts.push(sent.lease);
    }
    return counts;
  };
  follower.heartbeatAnswered('n1');
  t.equal(sent.lease, 1, 'the first heartbeat from the leader: a renewal at once');
  t.same(await answerEvery(200, 4), [1, 2, 2, 3], 'heartbeats 200 ms apart (a voter): every second answer, 400 ms apart');
  t.same(await answerEvery(399, 3), [4, 5, 6], 'heartbeats 399 ms apart (a learner, a timer a little early): every answer');
  follower.heartbeatAnswered('n3');
  t.equal(sent.lease, 6, 'an answer to a node that is not the leader carries none');
  const silent: [string, string] = ['no heartbeat: renewIfDue waits a full leaseRenewMs from the last renewal', 'then renews on its own'];
  await atTheBound(t, clock, RENEW_MS, () => follower.renewIfDue(), () => sent.lease, [6, 7], silent);
});
