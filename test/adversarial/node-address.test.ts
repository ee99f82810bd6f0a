// Attack: someone with an admin token (node join is admin: a submit token is refused
// with 403) re-registers an existing node (POST /v1/cluster/nodes with its id) at an
// address of their own. Nodes call each other at the addresses of the node table (a
// join forwarded to the leader, a running job's log proxied from the node running it,
// peer links, bulk transfers): a moved address would send them to the attacker, who
// then sits between nodes. And an address that is not host:port must not reach the
// node table, where every node's peer links are built from it.
//
// Expected: another address for a registered node (alive, or lost) is 409
// NODE_EXISTS, the same addresses again are a harmless success, a malformed address
// is 400 (once in the table, it would stop every node: the peer set built from the
// table refuses it inside apply), and the test's listener never receives a connection. A node's own
// registration still moves it: one killed, declared lost and restarted on new ports
// registers its new addresses and works.
import http from 'node:http';
import t from 'tap';
import { LocalCluster } from '../process/harness.js';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { assertClusterHealthy } from './health.js';

const IDS = ['n1', 'n2', 'n3'];

interface NodeRow {
  id: string;
  api: string;
  peer: string;
  state: string;
}

interface Trap {
  address: string;
  /** Requests received, with the authorization header each carried. */
  received: { url: string; authorization: string | undefined }[];
  connections: () => number;
  close: () => Promise<void>;
}

/** A listener of the test's own, posing as a node's API and peer port. */
async function trap(): Promise<Trap> {
  const received: Trap['received'] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    received.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.writeHead(500).end();
  });
  server.on('connection', () => (connections += 1));
  server.on('upgrade', (_req, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    received,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function joinBody(id: string, api: string, peer: string): Record<string, unknown> {
  return { id, api, peer, slots: 4, memoryMB: 1024, versions: { docker: 'fake', criu: 'unknown', kernel: 'attacker' } };
}

async function nodesSeenBy(c: LocalCluster, via: string): Promise<NodeRow[]> {
  return (await c.get<{ nodes: NodeRow[] }>(via, '/v1/cluster')).body.nodes;
}

t.test('the API cannot move a registered node; the node moves itself', async (t) => {
  const c = await LocalCluster.create(IDS);
  let failed = true;
  const evil = await trap();
  t.teardown(async () => {
    await evil.close();
    await c.destroy(failed);
  });
  c.startAll();
  const leader = await c.leader(30_000);
  await c.allReady(30_000);
  const follower = IDS.find((id) => id !== leader) ?? 'n2';
  const before = await nodesSeenBy(c, leader);

  const { token: submitter } = await c.createToken('submit');
  const bySubmitter = await c.post<{ error?: { code: string } }>(leader, '/v1/cluster/nodes', joinBody('n2', evil.address, evil.address), {}, submitter);
  t.equal(bySubmitter.status, 403, 'a submit token may not register a node');
  t.equal(bySubmitter.body.error?.code, 'FORBIDDEN');

  for (const target of IDS) {
    for (const via of [leader, follower]) {
      const r = await c.post<{ error?: { code: string; message: string } }>(via, '/v1/cluster/nodes', joinBody(target, evil.address, evil.address));
      t.equal(r.status, 409, `${target} re-registered at the test's listener through ${via === leader ? 'the leader' : 'a follower'}: 409`);
      t.equal(r.body.error?.code, 'NODE_EXISTS');
      t.match(r.body.error?.message ?? '', /already registered/);
    }
  }
  const mine = before.find((n) => n.id === follower);
  if (mine === undefined) throw new Error(`${follower} is not in the node table`);
  const repeated = await c.post<{ id: string }>(follower, '/v1/cluster/nodes', joinBody(follower, mine.api, mine.peer));
  t.equal(repeated.status, 200, 'the same addresses again: a retried join succeeds');

  t.same(
    (await nodesSeenBy(c, leader)).filter((n) => IDS.includes(n.id)).map((n) => [n.id, n.api, n.peer]),
    before.filter((n) => IDS.includes(n.id)).map((n) => [n.id, n.api, n.peer]),
    'the node table still has every node at its own addresses',
  );

  // Node-to-node API calls, each to an address from the table.
  const submitted = await c.post<{ id: string }>(follower, '/v1/jobs', { command: ['sleep'], env: { FAKE_SECONDS: '60' } });
  t.equal(submitted.status, 202, 'a job submitted to a follower is accepted');
  const runsOn = await waitFor('the job to run', async () => {
    const r = await c.get<{ state: string; node: string | null }>(leader, `/v1/jobs/${submitted.body.id}`);
    return r.body.state === 'running' && r.body.node !== null ? r.body.node : undefined;
  }, 30_000, 100);
  const asker = IDS.find((id) => id !== runsOn) ?? 'n1';
  const logs = await c.request(asker, `/v1/jobs/${submitted.body.id}/logs`, {}, 15_000);
  await logs.arrayBuffer();
  t.comment(`logs of a job on ${runsOn}, asked of ${asker}: ${logs.status}`);
  const joinVia = await c.post<{ id: string }>(follower, '/v1/cluster/nodes', joinBody('n0-spare', '127.0.0.1:9', '127.0.0.1:9'));
  t.equal(joinVia.status, 200, 'a join through a follower is forwarded to the leader');
  await c.request('n1', '/v1/cluster/nodes/n0-spare', { method: 'DELETE' }, 30_000);
  await c.request(leader, `/v1/jobs/${submitted.body.id}`, { method: 'DELETE' });

  t.same(evil.received, [], 'the listener never received a request (nor a bearer token)');
  t.equal(evil.connections(), 0, 'nor a connection');

  // n1 dies, is declared lost, and comes back on new ports: its own registration moves it.
  await c.kill('n1');
  await waitFor('n1 declared lost', async () => {
    const seen = await c.leader(30_000);
    return (await nodesSeenBy(c, seen)).find((n) => n.id === 'n1')?.state === 'lost' ? true : undefined;
  }, 30_000, 200);
  const stillLeading = await c.leader(30_000);
  const hijack = await c.post<{ error?: { code: string } }>(stillLeading, '/v1/cluster/nodes', joinBody('n1', evil.address, evil.address));
  t.equal(hijack.status, 409, 'a lost node cannot be moved through the API either');
  t.equal(hijack.body.error?.code, 'NODE_EXISTS');

  const n1 = c.node('n1');
  const [apiPort = 0, peerPort = 0] = await freePorts(2);
  n1.args = n1.args.map((a) => a.replace(`${n1.host}:${n1.apiPort}`, `${n1.host}:${apiPort}`).replace(`${n1.host}:${n1.peerPort}`, `${n1.host}:${peerPort}`));
  n1.apiPort = apiPort;
  n1.peerPort = peerPort;
  c.start('n1');
  await c.allReady(60_000);
  const moved = await waitFor('n1 alive at its new addresses', async () => {
    const row = (await nodesSeenBy(c, await c.leader(30_000))).find((n) => n.id === 'n1');
    return row?.state === 'alive' && row.api === `${n1.host}:${apiPort}` && row.peer === `${n1.host}:${peerPort}` ? row : undefined;
  }, 60_000, 200);
  t.ok(moved, 'the restarted node registered its new addresses itself');
  t.same(evil.received, [], 'still no request at the listener');

  await assertClusterHealthy(t, c);
  failed = t.counts.fail > 0;
});

t.test('a join whose address is not host:port is refused, and every node stays up', async (t) => {
  const c = await LocalCluster.create(IDS);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader(30_000);
  await c.allReady(30_000);
  const follower = IDS.find((id) => id !== leader) ?? 'n2';
  for (const [via, api, peer] of [
    [leader, '127.0.0.1:1', 'not an address'],
    [follower, 'http://127.0.0.1:1/', '127.0.0.1:2'],
  ] as const) {
    const r = await c.post<{ error?: { code: string } }>(via, '/v1/cluster/nodes', joinBody('n9', api, peer));
    t.equal(r.status, 400, `api ${api}, peer ${peer}: 400`);
    t.equal(r.body.error?.code, 'INVALID_ADDRESS');
  }
  // Had the entry been applied, every node would have stopped by now.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  t.notOk((await nodesSeenBy(c, leader)).some((n) => n.id === 'n9'), 'n9 is not in the node table');
  await assertClusterHealthy(t, c);
  failed = t.counts.fail > 0;
});
