// Issue 13 acceptance, what makes a process a node of a secure-mode cluster (real
// `workrs start --secret-file` processes, the harness's default), one cluster of three
// for all of it, joined by more processes as each part needs:
// - a node joins with --secret-file and --join alone, runs a job, and its certificate
//   chains to the cluster CA (n4);
// - the CA pinned by fingerprint: the right one joins (n5), a wrong one exits naming
//   both (n6);
// - a submit token used as the join secret enrolls nothing (n7), and a TLS client
//   without a certificate of the cluster CA gets no peer link;
// - a certificate of the cluster naming another node than the one claimed is refused;
// - a removed node (n4) cannot come back with its old certificate: not through the
//   API, bulk transfer or a peer link, nor by restarting on its old data.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type https from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { enroll } from '../../src/tls/enroll.js';
import { createCa, fingerprintOf, newNodeKey, nodeIdOf } from '../../src/tls/pki.js';
import { JoinSecret } from '../../src/tls/secret.js';
import { enrollAs, handshakeAs, openPeer, requestApi, stolenCert, UpgradeRefused, type NodeCert } from '../helpers/secure-clients.js';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster } from './harness.js';
import { absentBlobId, after, answerOf, bulkRequest, exitOf, exitWithin, peerLinks, rogueCaNodeCert, selfSignedNodeCert, type Answer } from './trust-helpers.js';

const VOTERS = ['n1', 'n2', 'n3'];

interface ClusterView {
  leader: string | null;
  nodes: Array<{ id: string; state: string; voter: boolean }>;
}

interface JobView {
  state: string;
  node: string | null;
}

const c = await LocalCluster.create(VOTERS);
c.startAll();
// A failure here ends the file before any teardown: stop the nodes (and show their logs) first.
const leader = await c.allReady(30_000).then(() => c.leader()).catch(async (err: unknown) => {
  await c.destroy(true);
  throw err;
});
t.teardown(() => c.destroy(!t.passing()));
const caPem = c.caPem() ?? '';
const fingerprint = fingerprintOf(caPem);

/** Node `id`'s state in the node table: as the leader has it, or (`via`) as node `via` has applied it. */
const stateOf = async (id: string, via?: string): Promise<string | null> => {
  const v = (await c.get<ClusterView>(via ?? leader, via === undefined ? '/v1/cluster' : '/v1/cluster?stale=1')).body;
  return v.nodes.find((n) => n.id === id)?.state ?? null;
};
const readyz = (id: string): Promise<number> => fetch(`${c.url(id)}/readyz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.status, () => 0);
const logOf = (id: string): string => (existsSync(c.node(id).logFile) ? readFileSync(c.node(id).logFile, 'utf8') : '');
/**
 * The node's log once it says `what` (or as it is after 10 s): a process's 'exit' can
 * come before the harness has written the last of its output to the log file.
 */
const logSaying = (id: string, what: RegExp): Promise<string> =>
  waitFor(`${id}'s log to match ${what}`, () => (what.test(logOf(id)) ? logOf(id) : undefined), 10_000, 50).catch(() => logOf(id));
/** Node `id` joined: its /readyz answers 200 and the leader lists it alive. */
const joined = (id: string): Promise<true> => waitFor(`${id} ready and alive`, async () => ((await readyz(id)) === 200 && (await stateOf(id)) === 'alive' ? true : undefined), 60_000, 100);
/** A /peer upgrade attempt with `cert` (null: none): 'open' or how it was refused. */
const linkAttempt = async (id: string, cert: NodeCert | null): Promise<string> => {
  try {
    const p = await openPeer(c, id, t, cert);
    p.ws.terminate();
    return 'open';
  } catch (err) {
    return err instanceof UpgradeRefused ? `refused ${err.status}` : `failed: ${(err as Error).message}`;
  }
};
/** An API call presenting `cert` as TLS client certificate and no token. */
const callWithCert = (id: string, method: string, path: string, cert: NodeCert, body?: unknown): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const options: https.RequestOptions = { method, path, key: cert.keyPem, cert: cert.certPem, agent: false, headers: text === undefined ? {} : { 'content-type': 'application/json' } };
    const req = requestApi(c, id, options);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => answerOf(new Response(Buffer.concat(chunks).toString('utf8'), { status: res.statusCode ?? 0 })).then(resolve, reject));
    });
    req.on('error', reject);
    req.end(text);
  });
/** Every voter has its links to the other voters up. */
const votersLinked = (): Promise<true> =>
  waitFor('every voter linked to the others', async () => {
    for (const id of VOTERS) {
      const links = await peerLinks(c, id);
      if (!VOTERS.filter((p) => p !== id).every((p) => links[p] === true)) return undefined;
    }
    return true;
  }, 10_000, 100);

t.test('a node joins with --secret-file and --join alone', async (t) => {
  const n4 = await c.addJoiner('n4', 'n1');
  t.ok(n4.args.includes('--secret-file') && n4.args.includes('--join'), 'n4 is given the join secret and a node to join through');
  t.notOk(n4.args.some((a) => a.startsWith('--ca') || a.startsWith('--token')), `and nothing else of trust (${n4.args.join(' ')})`);
  c.start('n4');
  await joined('n4');
  t.pass('n4 is ready and alive');
  const cert = new X509Certificate(readFileSync(join(n4.dataDir, 'tls', 'node-cert.pem')));
  const ca = new X509Certificate(caPem);
  t.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'its certificate is signed by the cluster CA');
  t.equal(nodeIdOf(cert), 'n4', 'and names n4');
  t.equal(readFileSync(join(n4.dataDir, 'ca.pem'), 'utf8'), caPem, 'its DATA/ca.pem is the cluster CA');
  const served = await new Promise<Buffer>((resolve, reject) => {
    const s = tlsConnect({ host: n4.host, port: n4.apiPort, ca: caPem }, () => {
      resolve(s.getPeerCertificate().raw);
      s.end();
    });
    s.on('error', reject);
  });
  t.ok(served.equals(cert.raw), 'its API serves that certificate, verified with the cluster CA alone');
  // Placement prefers the least loaded node: a batch of jobs puts one on the newcomer.
  const ran = await waitFor('a job to run on n4 and succeed', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '1' } })).body.id);
    const done = await waitFor('the batch to finish', async () => {
      const jobs = await Promise.all(ids.map(async (id) => (await c.get<JobView>(leader, `/v1/jobs/${id}`)).body));
      return jobs.every((j) => j.state === 'succeeded' || j.state === 'failed') ? jobs : undefined;
    }, 30_000, 100);
    return done.find((j) => j.node === 'n4' && j.state === 'succeeded');
  }, 90_000, 0);
  t.equal(ran.state, 'succeeded', 'a job ran on n4 and succeeded');
});

t.test('the CA pinned by fingerprint works, and a wrong fingerprint fails', async (t) => {
  const n5 = await c.addJoiner('n5', 'n2', ['--ca-fingerprint', fingerprint]);
  c.start('n5');
  await joined('n5');
  t.pass(`n5, pinning the cluster's sha256:${fingerprint.slice(0, 16)}…, joined (ready and alive)`);

  const wrong = fingerprintOf((await createCa('another')).certPem);
  const n6 = await c.addJoiner('n6', 'n2', ['--ca-fingerprint', wrong]);
  c.start('n6');
  const exit = await exitWithin(n6.proc, 30_000);
  t.ok(exit !== null && exit.code !== 0, `n6, pinning another CA, exits non-zero (${JSON.stringify(exit)})`);
  const log = await logSaying('n6', new RegExp(wrong));
  t.ok(log.includes(fingerprint) && log.includes(wrong), 'its message names both fingerprints');
  t.comment(log.split('\n').filter((l) => l.includes(wrong)).join('\n'));
  t.notOk(existsSync(join(n6.dataDir, 'tls', 'node-cert.pem')), 'it kept no certificate');
  t.equal(await stateOf('n6'), null, 'the cluster does not list n6');
});

t.test('a submit token used as the join secret gets no peer link', async (t) => {
  const submit = await c.createToken('submit', { name: 'device' });
  const tokenAsSecret = join(c.dir, 'submit-token-as-secret');
  writeFileSync(tokenAsSecret, `${submit.token}\n`, { mode: 0o600 });
  const n7 = await c.addJoiner('n7', 'n1');
  n7.args[n7.args.indexOf('--secret-file') + 1] = tokenAsSecret;
  c.start('n7');
  const exit = await exitWithin(n7.proc, 20_000);
  if (exit === null) t.not(await readyz('n7'), 200, 'n7 still runs, and is not ready');
  else t.not(exit.code, 0, `n7 exits non-zero (${JSON.stringify(exit)})`);
  t.match(await logSaying('n7', /ENROLL_REFUSED|does not verify/), /ENROLL_REFUSED|does not verify/, 'enrollment was refused: its proof does not verify');
  t.notOk(existsSync(join(n7.dataDir, 'tls', 'node-cert.pem')), 'n7 got no certificate');
  t.equal(await stateOf('n7'), null, 'the cluster does not list n7');
  for (const id of VOTERS) t.notOk('n7' in (await peerLinks(c, id)), `${id} has no link with n7`);
  await c.kill('n7');
  // The node's side, without n7's own checks of the answer: asked with the token as the secret, it issues nothing.
  const direct = await enroll({ url: c.url('n2'), secret: new JoinSecret(Buffer.from(submit.token)), nodeId: 'n7', publicKeyDer: (await newNodeKey()).publicKeyDer, hosts: ['127.0.0.1'], pinnedFingerprint: null, timeoutMs: 10_000 }).then(
    () => 'a certificate',
    (err: unknown) => (err as Error).message,
  );
  t.match(direct, /refused \(401 ENROLL_REFUSED\)/, `an enrollment proved with the submit token is refused by the node (${direct})`);
});

t.test('a TLS client without a certificate of the cluster CA gets no peer link', async (t) => {
  const strangers: Array<[string, NodeCert | null]> = [
    ['no client certificate', null],
    ['a self-signed certificate naming n2', await selfSignedNodeCert('n2')],
    ['a certificate naming n2 from a CA of its own', await rogueCaNodeCert('n2')],
  ];
  for (const [what, cert] of strangers) {
    for (const id of ['n1', 'n3']) t.equal(await linkAttempt(id, cert), 'refused 401', `${what}: ${id} refuses the upgrade (no 101)`);
  }
  await votersLinked();
  t.equal(await readyz('n1'), 200, 'the cluster stays healthy: voters linked, n1 ready');
});

t.test('a node whose certificate names another id is refused', async (t) => {
  const n9 = await enrollAs(c, 'n9', 'n1');
  t.equal(nodeIdOf(new X509Certificate(n9.certPem)), 'n9', 'enrolled with the join secret: a certificate of the cluster CA naming n9');
  const own = await handshakeAs(c, 'n3', t, 'n9', n9);
  const ownClose = await own.closed;
  t.same([own.welcomed, ownClose.code], [false, 4003], `control: claiming n9 with it passes the certificate check and stops at the peer set (${ownClose.code} ${ownClose.reason})`);

  t.equal((await peerLinks(c, 'n3')).n2, true, 'n3 is linked with the real n2');
  const forged = await handshakeAs(c, 'n3', t, 'n2', n9);
  const forgedClose = await forged.closed;
  t.notOk(forged.welcomed, 'claiming n2 with the n9 certificate is not welcomed');
  t.equal(forgedClose.code, 4001, `n3 closes it with AuthFailed (${forgedClose.code} ${forgedClose.reason})`);
  t.match(forgedClose.reason, /names n9, not n2/, 'saying the certificate names n9');
  const bulk = await bulkRequest(c, 'n3', n9, 'n2', 'GET', `/bulk/manifest/${absentBlobId()}`);
  t.equal(bulk.status, 401, `a bulk request signed as n2 with the n9 certificate gets 401 (${bulk.message})`);
  // n2's own link is up on both ends, now and for the next second (that it was never
  // replaced shows above: a link adopted would have been welcomed).
  for (let i = 0; i < 10; i++) {
    const [seen3, seen2] = await Promise.all([peerLinks(c, 'n3'), peerLinks(c, 'n2')]);
    if (seen3.n2 !== true || seen2.n3 !== true) t.fail(`the n2–n3 link went down (n3 sees ${JSON.stringify(seen3)}, n2 sees ${JSON.stringify(seen2)})`);
    await after(100, null);
  }
  t.pass('the real n2–n3 link is up');
});

t.test('a removed node cannot rejoin with its old certificate', async (t) => {
  const old = stolenCert(c, 'n4');
  const blob = absentBlobId();
  // Controls while n4 is a member: its certificate authenticates it as a node.
  t.equal((await callWithCert('n1', 'GET', '/v1/cluster', old)).status, 200, 'control: with n4\'s certificate and no token, GET /v1/cluster is 200');
  const bulkBefore = await bulkRequest(c, 'n1', old, 'n4', 'GET', `/bulk/manifest/${blob}`);
  t.equal(bulkBefore.status, 404, `control: a bulk request signed as n4 with it is served (404 for a blob nobody has: ${bulkBefore.code})`);
  await c.kill('n4'); // stopped: its links and its process gone, its data folder kept
  const link = await handshakeAs(c, 'n1', t, 'n4', old);
  t.ok(link.welcomed, 'control: with n4 stopped, its certificate gets a peer link to n1');
  link.ws.close();

  const removed = await c.request(leader, '/v1/cluster/nodes/n4', { method: 'DELETE' });
  t.equal(removed.status, 202, 'n4 removed (DELETE /v1/cluster/nodes/n4 as admin)');
  for (const id of VOTERS) await waitFor(`${id} to see n4 left`, async () => ((await stateOf('n4', id)) === 'left' ? true : undefined), 10_000, 50);
  t.pass('every voter sees n4 left');

  const joinBody = { id: 'n4', api: `${c.node('n4').host}:${c.node('n4').apiPort}`, peer: `${c.node('n4').host}:${c.node('n4').peerPort}`, slots: 4, memoryMB: 1024, versions: { docker: 'fake', criu: 'unknown', kernel: 'test' } };
  for (const id of VOTERS) {
    const rejoin = await callWithCert(id, 'POST', '/v1/cluster/nodes', old, joinBody);
    t.equal(rejoin.status, 401, `${id}: POST /v1/cluster/nodes with the old certificate gets 401 (${rejoin.code})`);
    t.equal((await callWithCert(id, 'GET', '/v1/cluster', old)).status, 401, `${id}: GET /v1/cluster with it gets 401`);
    const bulk = await bulkRequest(c, id, old, 'n4', 'GET', `/bulk/manifest/${blob}`);
    t.equal(bulk.status, 401, `${id}: a bulk request with it gets 401`);
    t.equal(await linkAttempt(id, old), 'refused 401', `${id}: a peer link with it is refused`);
  }

  c.start('n4');
  let restartExit = 'still running';
  void exitOf(c.node('n4').proc).then((e) => (restartExit = `exited ${JSON.stringify(e)}`));
  // Long enough for its start, an election timeout and a few dials.
  const WATCH_MS = 8_000;
  const watchUntil = Date.now() + WATCH_MS;
  const seen = new Set<string>();
  while (Date.now() < watchUntil) {
    const state = await stateOf('n4');
    if (state !== 'left') seen.add(`cluster lists n4 ${state}`);
    for (const id of VOTERS) if ((await peerLinks(c, id)).n4 === true) seen.add(`${id} linked with n4`);
    if ((await readyz('n4')) === 200) seen.add('n4 ready');
    await after(200, null);
  }
  t.same([...seen], [], 'restarted on its old data, n4 stays out: left, no link, not ready');
  t.comment(`the restarted n4, ${WATCH_MS / 1000} s on: ${restartExit}`);
  await votersLinked();
  t.equal(await stateOf('n5'), 'alive', 'the cluster carries on');
});
