// Protocol versions at the door (docs/upgrading.md), with real processes over real
// sockets: a cluster of the current build raises its version to 2 by itself; then a
// node whose build does not speak version 2 is refused, clearly, both when it joins
// and when a member restarts on it, and the cluster goes on unharmed. Two such builds:
//   - the current executable run with WORKRS_TEST_PROTOCOL_MAX=1: it knows the new
//     commands' names but not as its own, as a future build's older sibling would;
//   - the real last build before versions (UPGRADE_BASE_COMMIT), built from this
//     repository's history: it announces nothing and applies what it does not know as
//     a no-op, so the cluster must keep it out.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { BINARY, type LocalCluster, startedCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';
import { buildAt, UPGRADE_BASE_COMMIT } from '../docker/upgrade-base.js';

interface ClusterView {
  leader: string | null;
  clusterVersion?: number;
  stateCheck?: { index: number; hash: string } | null;
  divergence?: unknown[];
  nodes: Array<{ id: string; state: string; build?: { protocol: { min: number; max: number } } | null }>;
}

const dir = mkdtempSync(join(tmpdir(), 'workrs-gate-'));
/** The current executable as a build that speaks protocol version 1 only. */
const v1Only = join(dir, 'workrs-v1-only');
writeFileSync(v1Only, `#!/bin/sh\nWORKRS_TEST_PROTOCOL_MAX=1 exec '${BINARY}' "$@"\n`);
chmodSync(v1Only, 0o755);

const logOf = (c: LocalCluster, id: string): string => readFileSync(c.node(id).logFile, 'utf8');

async function atVersion(c: LocalCluster, ids: string[], version: number): Promise<void> {
  for (const id of ids) {
    await waitFor(`${id} at cluster version ${version}`, async () => ((await c.get<ClusterView>(id, '/v1/cluster?stale=1')).body.clusterVersion === version ? true : undefined), 20_000, 200);
  }
}

/** A job submitted and finished through `via`: the cluster still takes and runs work. */
async function runsAJob(t: Test, c: LocalCluster, via: string, name: string): Promise<void> {
  const sub = await c.post<{ id: string }>(via, '/v1/jobs', { command: ['sh', '-c', 'echo ok'], name });
  t.equal(sub.status, 202, `${name} accepted`);
  const done = await waitFor(`${name} to finish`, async () => {
    const j = (await c.get<{ state: string }>(via, `/v1/jobs/${sub.body.id}`)).body;
    return j.state === 'succeeded' || j.state === 'failed' ? j.state : undefined;
  }, 30_000, 200);
  t.equal(done, 'succeeded', `${name} ran`);
}

/** Every member's newest state check, once all three hold the same index. */
async function equalChecks(t: Test, c: LocalCluster, ids: string[]): Promise<void> {
  const checks = await waitFor('every member to report a state check at the same index', async () => {
    const views = await Promise.all(ids.map(async (id) => (await c.get<ClusterView>(id, '/v1/cluster?stale=1')).body.stateCheck ?? null));
    return views.every((v) => v !== null && v.index === views[0]?.index) ? views : undefined;
  }, 30_000, 250);
  t.equal(new Set(checks.map((v) => v?.hash)).size, 1, `the state hashes of ${ids.join(', ')} are equal at index ${checks[0]?.index}`);
}

t.test('a cluster raises its version by itself, then refuses builds that do not speak it, at the join and at a restart', async (t) => {
  const { c, leader } = await startedCluster(t);
  await atVersion(c, ['n1', 'n2', 'n3'], 2);
  const view = (await c.get<ClusterView>(leader, '/v1/cluster')).body;
  t.same(view.nodes.map((n) => n.build?.protocol), [{ min: 1, max: 2 }, { min: 1, max: 2 }, { min: 1, max: 2 }], 'the leader heard every build');
  const nodes = spawnSync(BINARY, ['nodes'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...(await c.cliEnv()), WORKRS_SERVER: c.url('n2') } });
  t.equal(nodes.status, 0, nodes.stderr);
  t.match(nodes.stdout, /cluster version 2/, '`workrs nodes` shows the cluster version');
  t.equal(nodes.stdout.match(/\(protocol 1-2\)/g)?.length, 3, "and every node's build");

  // A join with a build that speaks only version 1.
  await c.addJoiner('n4', 'n2');
  c.start('n4', v1Only);
  t.not(await c.exited('n4', 60_000), 0, 'the v1-only joiner exits with an error');
  t.match(logOf(c, 'n4'), /n4 runs .*, which speaks protocol versions 1–1, and this cluster runs at version 2: it cannot join/, 'and says why, naming both versions');

  // A join with the real build from before versions.
  const old = await buildAt(UPGRADE_BASE_COMMIT, join(dir, 'workrs-old'));
  await c.addJoiner('n5', 'n1');
  c.start('n5', old);
  t.not(await c.exited('n5', 60_000), 0, 'the build from before versions is refused too');
  t.match(logOf(c, 'n5'), /n5 announces no protocol version \(a build from before versions, which speaks version 1 only\), and this cluster runs at version 2: it cannot join/);
  const members = (await c.get<ClusterView>(leader, '/v1/cluster')).body.nodes.map((n) => n.id);
  t.same(members, ['n1', 'n2', 'n3'], 'neither became a member');
  await runsAJob(t, c, 'n1', 'after-the-joins');

  // A member restarted on the v1-only build after the raise stops at the raise, loudly.
  const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader) ?? 'n3';
  await c.terminate(follower);
  c.start(follower, v1Only);
  t.equal(await c.exited(follower, 60_000), 70, 'a restart on the v1-only build stops (exit 70)');
  t.match(logOf(c, follower), /workrs: the node stops: entry \d+ holds a command this build does not know: command type "setClusterVersion" of protocol version 2.*this build speaks protocol versions 1–1/, 'naming the entry and both versions');
  await runsAJob(t, c, leader, 'with-one-member-refused');

  // Back on the current build it catches up, and the replicas agree.
  c.start(follower);
  await c.allReady();
  await runsAJob(t, c, follower, 'after-the-restart');
  await equalChecks(t, c, ['n1', 'n2', 'n3']);
  t.same((await c.get<ClusterView>(leader, '/v1/cluster')).body.divergence, [], 'no divergence');
});

t.test('a member restarted on the build from before versions is refused by the leader: no lease, no work, its proposals turned away', async (t) => {
  const { c, leader } = await startedCluster(t);
  await atVersion(c, ['n1', 'n2', 'n3'], 2);
  const old = await buildAt(UPGRADE_BASE_COMMIT, join(dir, 'workrs-old'));
  const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader) ?? 'n3';
  await c.terminate(follower);
  c.start(follower, old);
  await waitFor('the leader to refuse it', async () => (/runs a build that speaks protocol versions 1–1 \(it announced none: a build from before versions\), but the cluster runs at version 2: its lease is refused/.test(logOf(c, leader)) ? true : undefined), 30_000, 250);
  t.pass('the leader logged the refusal, naming the node and both versions');
  const through = await c.post<{ error?: { message: string } }>(follower, '/v1/jobs', { command: ['sh', '-c', 'echo no'] });
  t.not(through.status, 202, `a submission through it is not taken (${through.status}: ${through.body.error?.message ?? ''})`);
  await runsAJob(t, c, leader, 'beside-the-old-member');
  // Upgraded again, it rejoins.
  await c.terminate(follower);
  c.start(follower);
  await c.allReady();
  await runsAJob(t, c, follower, 'after-it-is-upgraded');
  await equalChecks(t, c, ['n1', 'n2', 'n3']);
});

t.test('once the version is raised, snapshots are written in format 2, which the build from before versions refuses instead of misreading', async (t) => {
  const { c, leader } = await startedCluster(t);
  await atVersion(c, ['n1', 'n2', 'n3'], 2);
  const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader) ?? 'n3';
  // A small log: compaction (a state snapshot on disk) after 40 entries. Set on the
  // follower only, through its config file, and picked up at its restart.
  const config = join(dir, 'small-log.json');
  writeFileSync(config, JSON.stringify({ compactEveryEntries: 40 }));
  await c.terminate(follower);
  c.node(follower).args.push('--config', config);
  c.start(follower);
  await c.allReady();
  for (let i = 0; i < 30; i++) t.equal((await c.post(leader, '/v1/jobs', { command: ['true'] })).status, 202, `job ${i}`);
  await waitFor(`${follower} to compact its log`, async () => (/^workrs_raft_compactions [1-9]/m.test(await (await c.request(follower, '/metrics')).text()) ? true : undefined), 30_000, 250);
  const old = await buildAt(UPGRADE_BASE_COMMIT, join(dir, 'workrs-old'));
  await c.terminate(follower);
  c.start(follower, old);
  t.not(await c.exited(follower, 60_000), 0, 'the build from before versions does not start on a format 2 snapshot');
  t.match(logOf(c, follower), /unknown state snapshot format version 2/, 'and says the format is unknown to it');
  await runsAJob(t, c, leader, 'beside-the-refused-build');
  c.start(follower);
  await c.allReady();
  await runsAJob(t, c, follower, 'back-on-the-new-build');
  await equalChecks(t, c, ['n1', 'n2', 'n3']);
});
