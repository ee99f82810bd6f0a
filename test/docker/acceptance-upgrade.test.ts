// Issue 18's upgrade test: a three-node `--runtime docker` cluster of the build before
// cluster versions (UPGRADE_BASE_COMMIT, built by scripts/build-at.mjs) is upgraded to
// this build one box at a time, as an operator upgrades a cluster: drain the node,
// wait until it runs nothing, stop it gracefully (SIGTERM), start this build on the
// same data folder, wait until it is ready, undrain it. Meanwhile four
// counting jobs run and checkpoint (each drain moves them), and a client submits a
// small job every SUBMIT_EVERY_MS with an Idempotency-Key, retrying through the other
// nodes when one does not answer, as a real client would.
//
// What must hold:
// - the cluster version stays 1 while a node runs the old build, and rises to 2 on
//   every node once the last one runs the new build (a node never sees it fall);
// - every counting job succeeds with its log holding START, each count and DONE
//   exactly once, no attempt of it fell back to a start from scratch, and no job ever
//   has two live containers;
// - every acknowledged submission exists and finished on every node's replica;
// - no divergence: the leader's `divergence` stays empty, and every state check that
//   two nodes report for the same index has the same hash; at the end all three nodes
//   report a check at one index, with one hash.
//
// Answers of the old build are not checked against this build's OpenAPI description
// (they are described by that commit's own document); answers of nodes on this build
// are, as the harness checks them in every other test.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { JobSummary, JobView } from '../../src/state/views.js';
import { connectDocker } from '../../src/worker/docker-endpoint.js';
import { openApiChecker } from '../helpers/openapi-check.js';
import { waitFor } from '../helpers/wait.js';
import { BINARY, LocalCluster, type RequestInit } from '../process/harness.js';
import { countingLog, countingScript, FINAL } from './acceptance.js';
import { clusterIdOf, removeClusterContainers } from './cluster-containers.js';
import { buildAt, UPGRADE_BASE_COMMIT } from './upgrade-base.js';

const NODES = ['n1', 'n2', 'n3'] as const;
/**
 * Counting jobs: each counts to COUNT at up to 10 a second. On a busy 2-core machine,
 * checkpointing every few seconds beside the submissions, that is about 100 s, longer
 * than the three upgrades (about 35 s after the first checkpoints).
 */
const LONG_JOBS = 4;
const COUNT = 400;
const CHECKPOINT = { mode: 'interval', intervalSeconds: 5 };
const QUICK_JOB = { command: ['sh', '-c', 'echo ok'] };
const SUBMIT_EVERY_MS = 500;
/** How long one submission may go unacknowledged while the client retries through other nodes. */
const SUBMIT_GIVE_UP_MS = 60_000;
const MONITOR_EVERY_MS = 1000;

interface BuildView {
  version: string;
  commit: string;
  protocol: { min: number; max: number };
}

/** GET /v1/cluster; the fields of cluster versions are absent in the old build's answers. */
interface ClusterView {
  leader: string | null;
  clusterVersion?: number;
  build?: BuildView;
  stateCheck?: { index: number; hash: string } | null;
  divergence?: Array<{ node: string; index: number; at: number }>;
  nodes: Array<{ id: string; state: string; draining: boolean; running: number; build?: BuildView | null }>;
}

interface VersionJson {
  version: string;
  commit: string;
  protocol?: { version: number; min: number; max: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

t.test('a rolling upgrade from the build before cluster versions: jobs finish exactly once, no submission is lost, the replicas never diverge, and the cluster version rises after the last node', async (t) => {
  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  // Without a reachable engine the test fails here, saying so (it never skips).
  const docker = connectDocker();
  await docker.ping().catch((err: unknown) => {
    throw new Error(`Docker is not reachable (${describe(err)}): this test needs the machine's engine; run 'make setup'`, { cause: err });
  });

  const dir = mkdtempSync(join(tmpdir(), 'workrs-upgrade-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const OLD = await buildAt(UPGRADE_BASE_COMMIT, join(dir, 'workrs-old'));
  const NEW = BINARY;
  const oldVersion = JSON.parse(execFileSync(OLD, ['version', '--json'], { encoding: 'utf8' })) as VersionJson;
  const newVersion = JSON.parse(execFileSync(NEW, ['version', '--json'], { encoding: 'utf8' })) as VersionJson;
  t.comment(`old build ${oldVersion.commit}, new build ${newVersion.commit} (protocol ${JSON.stringify(newVersion.protocol)}); old built in ${elapsed()}`);
  t.equal(oldVersion.protocol, undefined, `the old build (${UPGRADE_BASE_COMMIT.slice(0, 7)}) is from before protocol versions`);
  t.ok(newVersion.protocol && newVersion.protocol.min <= 1 && newVersion.protocol.max >= 2, 'the new build runs in a version-1 cluster and speaks version 2');

  const c = await LocalCluster.create([...NODES], [], { binary: OLD, openapiCheck: false });
  for (const n of c.nodes.values()) n.args[n.args.indexOf('fake')] = 'docker';
  /** The executable each node runs now. */
  const runs = new Map<string, string>(NODES.map((id) => [id, OLD]));

  // Answers of nodes on this build, checked against its OpenAPI description.
  const apiViolations = new Map<string, string>();
  /**
   * Nodes about to be stopped, and the exchanges under way with each node. The old
   * build's graceful stop waits for its API server to close, and Node closes only
   * keep-alive connections idle at that moment: a client that keeps asking (this test
   * polls each node every second) held one such stop open past 90 s in CI. This build
   * closes them (closeApiServer, test/process/graceful-stop.test.ts); for the old one,
   * the test stops asking a node before it stops it, as an operator's clients would
   * move to other boxes.
   */
  const quiet = new Set<string>();
  const underWay = new Map<string, Set<Promise<unknown>>>();
  const call = async (id: string, path: string, init: RequestInit = {}, timeoutMs = 5000): Promise<Response> => {
    if (quiet.has(id)) throw new Error(`${id} is being stopped: not asked`);
    const exchange = (async () => {
      const res = await c.request(id, path, init, timeoutMs);
      if (runs.get(id) === NEW) {
        const v = await openApiChecker().check(init.method ?? 'GET', path, res);
        if (v !== null && !apiViolations.has(v.problem)) apiViolations.set(v.problem, v.example);
      }
      // Read whole here, so that the exchange is over when this promise is.
      const body = await res.arrayBuffer();
      return new Response([204, 205, 304].includes(res.status) ? null : body, { status: res.status, headers: res.headers });
    })();
    const mine = underWay.get(id) ?? new Set<Promise<unknown>>();
    underWay.set(id, mine.add(exchange));
    try {
      return await exchange;
    } finally {
      mine.delete(exchange);
    }
  };
  const getJson = async <T>(id: string, path: string, timeoutMs = 5000): Promise<T> => {
    const res = await call(id, path, {}, timeoutMs);
    const body = (await res.json()) as T;
    if (res.status !== 200) throw new Error(`GET ${path} on ${id}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  };
  const submit = async (via: string, spec: unknown, key?: string): Promise<string> => {
    const res = await call(via, '/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) }, body: JSON.stringify(spec) }, 10_000);
    const body = (await res.json()) as { id?: string };
    if (res.status !== 202 || typeof body.id !== 'string') throw new Error(`POST /v1/jobs on ${via}: ${res.status} ${JSON.stringify(body)}`);
    return body.id;
  };
  /** A running node other than `id`, for requests about `id`. */
  const otherThan = (id: string): string => {
    const other = NODES.find((n) => n !== id && c.node(n).proc);
    if (other === undefined) throw new Error(`no node but ${id} is running`);
    return other;
  };
  const allJobs = async (via: string): Promise<JobSummary[]> => {
    const jobs: JobSummary[] = [];
    for (let after: string | null = null; ;) {
      const page: { jobs: JobSummary[]; next: string | null } = await getJson(via, `/v1/jobs?limit=1000&stale=1${after === null ? '' : `&after=${encodeURIComponent(after)}`}`);
      jobs.push(...page.jobs);
      if (page.next === null) return jobs;
      after = page.next;
    }
  };

  // What the background client and the monitor find; asserted at the end, so that a
  // failure throughout is reported with everything else.
  const problems: string[] = [];
  /** Per index, each node's state hash at that index, from every answer seen. */
  const stateChecks = new Map<number, Map<string, string>>();
  const highestVersion = new Map<string, number>();
  /** When the last node was started on the new build: no node may run at version 2 before. */
  let lastStartedAt = Number.POSITIVE_INFINITY;
  const observe = (id: string, view: ClusterView, receivedAt: number): void => {
    const version = view.clusterVersion ?? 1;
    if (version > 1 && receivedAt < lastStartedAt) problems.push(`${id} answered cluster version ${version} at ${receivedAt} while a node still ran the old build`);
    if (version < (highestVersion.get(id) ?? 1)) problems.push(`${id}'s cluster version fell from ${highestVersion.get(id)} to ${version}`);
    highestVersion.set(id, Math.max(version, highestVersion.get(id) ?? 1));
    if ((view.divergence?.length ?? 0) > 0) problems.push(`${id} reports divergence (leader ${view.leader}): ${JSON.stringify(view.divergence)}`);
    const check = view.stateCheck;
    if (check) {
      const hashes = stateChecks.get(check.index) ?? new Map<string, string>();
      stateChecks.set(check.index, hashes.set(id, check.hash));
    }
  };
  const observeAll = async (): Promise<void> => {
    await Promise.all(NODES.filter((id) => c.node(id).proc).map(async (id) => {
      const view = await getJson<ClusterView>(id, '/v1/cluster?stale=1', 2000).catch(() => null);
      if (view) observe(id, view, Date.now());
    }));
  };

  let running = true;
  const acked = new Map<string, string>();
  let retries = 0;
  const submitThroughout = async (): Promise<void> => {
    for (let n = 0; running; n++) {
      const key = `upgrade-quick-${n}`;
      const deadline = Date.now() + SUBMIT_GIVE_UP_MS;
      let lastError = '';
      for (let attempt = 0; running; attempt++) {
        // Start at a different node each time, then go round the others.
        const via = NODES[(n + attempt) % NODES.length] ?? 'n1';
        try {
          acked.set(key, await submit(via, QUICK_JOB, key));
          break;
        } catch (err) {
          lastError = `${via}: ${describe(err)}`;
          retries++;
        }
        if (Date.now() > deadline) {
          problems.push(`submission ${key} was not acknowledged within ${SUBMIT_GIVE_UP_MS} ms (last: ${lastError})`);
          return;
        }
        await sleep(200);
      }
      await sleep(SUBMIT_EVERY_MS);
    }
  };
  // Exactly once, from the engine's side: never two live containers of one job.
  const observeContainers = async (): Promise<void> => {
    const live = await docker.listContainers({ filters: { label: [`workrs.cluster=${clusterIdOf(c)}`] } }).catch(() => []);
    const perJob = new Map<string, string[]>();
    for (const box of live) {
      const job = box.Labels['workrs.job'] ?? '?';
      perJob.set(job, [...(perJob.get(job) ?? []), `${box.Labels['workrs.node']}/${box.Labels['workrs.epoch']} ${box.State}`]);
    }
    for (const [job, boxes] of perJob) if (boxes.length > 1) problems.push(`job ${job} has ${boxes.length} live containers at once: ${boxes.join(', ')}`);
  };
  const monitorThroughout = async (): Promise<void> => {
    while (running) {
      await Promise.all([observeAll(), observeContainers()]);
      await sleep(MONITOR_EVERY_MS);
    }
  };
  let background: Array<Promise<void>> = [];
  const stopBackground = async (): Promise<void> => {
    running = false;
    await Promise.all(background);
  };

  t.teardown(async () => {
    await stopBackground();
    try {
      await c.destroy(!t.passing());
    } finally {
      await removeClusterContainers(c);
    }
  });
  c.startAll();
  await c.leader(60_000);
  await c.allReady(60_000);
  t.comment(`old cluster ready at ${elapsed()}`);
  background = [submitThroughout(), monitorThroughout()];

  const long: string[] = [];
  for (let i = 0; i < LONG_JOBS; i++) long.push(await submit('n1', { command: countingScript(COUNT), name: `count-${i + 1}`, checkpoint: CHECKPOINT }));
  // Work worth keeping: a checkpoint of every counting job, taken by the old build.
  for (const id of long) {
    await waitFor(`a checkpoint of ${id}`, async () => {
      const j = await getJson<JobView>('n1', `/v1/jobs/${id}`);
      if (FINAL.has(j.state)) throw new Error(`${id} ended (${j.state}) before the upgrade began`);
      return j.checkpoints.length > 0 ? true : undefined;
    }, 60_000, 250);
  }
  t.comment(`every counting job checkpointed by ${elapsed()}`);

  /**
   * POST (drain) or DELETE (undrain) /v1/cluster/nodes/:id/drain through `via`: a
   * leader that just changed may answer 503 or not at all for a moment, and an
   * operator's command would be retried then.
   */
  const setDraining = async (via: string, id: string, draining: boolean): Promise<number> => waitFor(`${draining ? 'drain' : 'undrain'} of ${id} answered`, async () => {
    const res = await call(via, `/v1/cluster/nodes/${id}/drain`, { method: draining ? 'POST' : 'DELETE' }, 10_000);
    await res.body?.cancel();
    return res.status === 503 ? undefined : res.status;
  }, 30_000, 250);

  for (const [i, id] of NODES.entries()) {
    const via = otherThan(id);
    t.equal(await setDraining(via, id, true), 200, `${id} drained`);
    await waitFor(`${id} to run no job`, async () => {
      const view = await getJson<ClusterView>(via, '/v1/cluster');
      const runningThere = (await allJobs(via)).filter((j) => j.state === 'running' && j.node === id);
      return view.nodes.find((n) => n.id === id)?.running === 0 && runningThere.length === 0 ? true : undefined;
    }, 90_000, 250);
    quiet.add(id);
    await Promise.allSettled([...(underWay.get(id) ?? [])]);
    const code = await c.terminate(id, 90_000);
    t.equal(code, 0, `${id} stopped gracefully on SIGTERM`);
    if (i === NODES.length - 1) lastStartedAt = Date.now();
    runs.set(id, NEW);
    quiet.delete(id);
    c.start(id, NEW);
    await c.allReady(60_000);
    await waitFor(`${id} alive again`, async () => ((await getJson<ClusterView>(id, '/v1/cluster')).nodes.find((n) => n.id === id)?.state === 'alive' ? true : undefined), 30_000, 250);
    t.equal(await setDraining(id, id, false), 200, `${id} undrained through itself, on the new build`);
    t.comment(`${id} runs the new build at ${elapsed()}; ${acked.size} submissions acknowledged, ${retries} retried`);
  }

  // The checks below go on when the version does not rise, so that a failure shows all that is wrong.
  let views: ClusterView[] = [];
  const raised = await waitFor('every node to run at cluster version 2', async () => {
    views = await Promise.all(NODES.map((id) => getJson<ClusterView>(id, '/v1/cluster?stale=1')));
    const now = Date.now();
    views.forEach((v, i) => observe(NODES[i] ?? '', v, now));
    return views.every((v) => v.clusterVersion === 2) ? true : undefined;
  }, 60_000, 250).catch(() => false);
  t.ok(raised, `the cluster version rose to 2 on every node within 60 s of the last upgrade (${views.map((v, i) => `${NODES[i]}: ${v.clusterVersion ?? 'none'}`).join(', ')})`);
  t.comment(`cluster version ${raised ? '2' : 'not raised'} at ${elapsed()}`);
  const leader = await c.leader(30_000);
  const builds = (await getJson<ClusterView>(leader, '/v1/cluster')).nodes.map((n) => [n.id, n.build?.commit ?? null, n.build?.protocol.max ?? null]);
  t.same(builds, NODES.map((id) => [id, newVersion.commit, newVersion.protocol?.max]), 'GET /v1/cluster shows every node on the new build');
  t.same(views.map((v) => v.build?.commit), NODES.map(() => newVersion.commit), 'each node answers as the new build');

  let moves = 0;
  for (const id of long) {
    const done = await waitFor(`counting job ${id} to end`, async () => {
      const j = await getJson<JobView>(leader, `/v1/jobs/${id}`);
      return FINAL.has(j.state) ? j : undefined;
    }, 150_000, 500);
    const log = await (await call(leader, `/v1/jobs/${id}/logs`, {}, 15_000)).text();
    t.equal(done.state, 'succeeded', `${id} succeeded: its count and its file are exactly 1..${COUNT}`);
    t.equal(log, countingLog(COUNT), `${id}'s log holds START, every count and DONE exactly once`);
    t.ok(done.attempts.every((a) => a.restoreError === null), `no attempt of ${id} fell back to a start from scratch`);
    moves += done.attempts.filter((a) => a.fromCheckpoint !== null && /drained/.test(a.reason)).length;
    t.comment(`${id}: attempts ${done.attempts.map((a) => `${a.node}/${a.epoch}${a.fromCheckpoint ? ` from ${a.fromCheckpoint.epoch}.${a.fromCheckpoint.seq}` : ''} (${a.reason})`).join(', ')}`);
  }
  // Every node is drained while the counting jobs run: the drain of each node running one moves it.
  t.ok(moves >= 1, `the drains moved counting jobs from their checkpoints (${moves} moves)`);
  t.comment(`counting jobs ended by ${elapsed()}`);

  await stopBackground();
  const ids = [...acked.values()];
  t.ok(ids.length >= 20, `the client's submissions went on throughout: ${ids.length} acknowledged, ${retries} retries`);
  for (const id of NODES) {
    // Each node's own replica (stale=1): every acknowledged job is there and ended.
    const outcome = async (): Promise<{ lost: string[]; notSucceeded: string[] }> => {
      const jobs = new Map((await allJobs(id)).map((j) => [j.id, j]));
      return { lost: ids.filter((jobId) => !jobs.has(jobId)), notSucceeded: ids.filter((jobId) => jobs.has(jobId) && jobs.get(jobId)?.state !== 'succeeded') };
    };
    const seen = await waitFor(`every acknowledged submission to end on ${id}`, async () => {
      const o = await outcome();
      return o.lost.length === 0 && o.notSucceeded.length === 0 ? o : undefined;
    }, 120_000, 500).catch(outcome);
    t.same(seen, { lost: [], notSucceeded: [] }, `${id} holds every acknowledged submission, each succeeded`);
  }

  // The state hashes at the end: a check made after all the work above, reported by
  // every node. The leader proposes one every few seconds while the log moves; a small
  // job moves it.
  await observeAll();
  const workDone = Math.max(0, ...stateChecks.keys());
  let poke = 0;
  const common = await waitFor('a state check reported by every node', async () => {
    await observeAll();
    const everyNode = [...stateChecks].filter(([index, hashes]) => index > workDone && hashes.size === NODES.length).map(([index]) => index);
    if (everyNode.length > 0) return Math.max(...everyNode);
    await submit(leader, QUICK_JOB, `upgrade-poke-${poke++}`);
    return undefined;
  }, 60_000, 2000).catch(() => null);
  const seenChecks = [...stateChecks].sort(([a], [b]) => a - b).slice(-6).map(([index, hashes]) => `${index}: ${[...hashes.keys()].join(',')}`).join('; ');
  t.ok(common !== null, `every node reported a state check at one index after index ${workDone} within 60 s (the newest seen: ${seenChecks || 'none'})`);
  if (common !== null) t.equal(new Set(stateChecks.get(common)?.values()).size, 1, `every node has the same state hash at index ${common}`);
  const mismatched = [...stateChecks].filter(([, hashes]) => new Set(hashes.values()).size > 1).map(([index, hashes]) => `${index}: ${JSON.stringify(Object.fromEntries(hashes))}`);
  t.same(mismatched, [], `no two nodes ever reported different hashes at one index (${stateChecks.size} indexes seen)`);
  const final = await getJson<ClusterView>(leader, '/v1/cluster');
  t.same(final.divergence, [], 'the leader detected no divergence');
  t.same(problems, [], 'nothing went wrong throughout (cluster versions, divergence, submissions, live containers per job)');
  t.same([...apiViolations].map(([problem, example]) => `${problem} e.g. ${example}`), [], 'the new build\'s answers match its OpenAPI description');
  t.comment(`done at ${elapsed()}`);
});
