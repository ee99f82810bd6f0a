// Someone who can pass for a member on the peer port completes the handshake under a
// member's name and sends each node a heartbeat at term 2^53-1, then one at 2^52. In
// secure mode that takes the member's own key and certificate: the test uses the ones
// in the member's data folder, as a thief of its disk would (a certificate of the
// cluster naming another id gets no link: the fuzz test shows that). In dev mode, on
// loopback, any local process can: the handshake's key is empty there. A node that adopted such a term would persist it and could never
// campaign past it: every election message would be a number no decoder accepts, and
// restarting would not help. The nodes must drop these frames (counted in
// workrs_peer_frames_dropped_total), keep small terms, keep or elect a leader, and do
// so again after every node is killed and restarted.
import t, { type Test } from 'tap';
import { RAFT_NUMBER_LIMIT } from '../../raft/types.js';
import { encodeBatch, encodeFrame } from '../../src/transport/codec.js';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster } from '../process/harness.js';
import { handshakeAs, stolenCert } from '../helpers/secure-clients.js';
import { assertClusterHealthy } from './health.js';

const IDS = ['n1', 'n2', 'n3'];
const HUGE_TERMS = [Number.MAX_SAFE_INTEGER, RAFT_NUMBER_LIMIT];
/** A healthy three-node cluster that ran for a minute stays far below this. */
const SMALL_TERM = 1000;

interface ClusterView {
  leader: string | null;
  term: number;
}

async function terms(c: LocalCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const id of IDS) out[id] = (await c.get<ClusterView>(id, '/v1/cluster?stale=1')).body.term;
  return out;
}

/** The value of workrs_peer_frames_dropped_total{reason} on a node (0 when absent). */
async function dropped(c: LocalCluster, id: string, reason: string): Promise<number> {
  const text = await (await c.request(id, '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`workrs_peer_frames_dropped_total{reason="${reason}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

async function hugeTerms(t: Test, mode: 'secure' | 'dev'): Promise<void> {
  const c = await LocalCluster.create(IDS, [], { mode });
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader(30_000);
  t.ok(leader, `the cluster elected ${leader}`);
  const before = await terms(c);
  t.ok(Object.values(before).every((term) => term < SMALL_TERM), `terms before the attack: ${JSON.stringify(before)}`);

  // To each node, as another member, right after the handshake. The transport keeps one
  // link per pair and prefers the one the smaller id dialed: as n1 the attacker gets
  // into n2 and n3 whatever their links (until the real n1 dials again); into n1 (as
  // n2) only while n1's own link to n2 is down, so that one is a try. A node that
  // adopted the term would spread it in its answers anyway.
  let delivered = 0;
  for (const target of IDS) {
    const as = target === 'n1' ? 'n2' : 'n1';
    // handshakeAs returns once the welcome verified, or once the server closed the socket.
    const { ws, welcomed } = await handshakeAs(c, target, t, as, c.secure ? stolenCert(c, as) : null);
    if (!welcomed) {
      t.comment(`${target} refused the handshake as ${as}`);
      continue;
    }
    const frames = HUGE_TERMS.map((term) => encodeFrame({ k: 'raft', m: { type: 'heartbeat', from: as, to: target, term, commit: 0, ctx: null } }));
    const sent = await new Promise<boolean>((resolve) => ws.send(encodeBatch(frames), (err) => resolve(err === undefined || err === null)));
    if (sent && target !== 'n1') delivered++;
    ws.close();
  }
  t.equal(delivered, 2, 'the forged heartbeats reached n2 and n3');

  // Five election timeouts and more: time for a term to spread and for elections to fail.
  await new Promise((r) => setTimeout(r, 5000));
  const after = await terms(c);
  t.ok(Object.values(after).every((term) => term < SMALL_TERM), `every node's term stays small: ${JSON.stringify(after)}`);
  const leaderAfter = await c.leader(30_000).catch((err: Error) => `none (${err.message})`);
  t.ok(IDS.includes(leaderAfter), `the cluster has a leader after the attack: ${leaderAfter}`);
  let counted = 0;
  for (const id of IDS) counted += await dropped(c, id, 'out_of_range');
  t.ok(counted >= 4, `the nodes counted the dropped frames: workrs_peer_frames_dropped_total{reason="out_of_range"} sums to ${counted}`);

  for (const id of IDS) await c.kill(id);
  c.startAll();
  const leaderRestarted = await c.leader(60_000).catch((err: Error) => `none (${err.message})`);
  t.ok(IDS.includes(leaderRestarted), `after kill -9 and restart of every node, ${leaderRestarted} leads`);
  const restarted = await terms(c);
  t.ok(Object.values(restarted).every((term) => term < SMALL_TERM), `terms after the restart stay small: ${JSON.stringify(restarted)}`);

  await waitFor('every node answering after the restart', async () => ((await c.allReady(30_000).then(() => true, () => false)) ? true : undefined), 60_000, 500);
  await assertClusterHealthy(t, c);
  failed = false;
}

for (const mode of ['secure', 'dev'] as const) {
  t.test(`heartbeats at term 2^53-1 and 2^52 under a member's name are dropped: terms stay small, a leader is elected, also after kill -9 of every node (${mode} mode)`, (t) => hugeTerms(t, mode));
}
