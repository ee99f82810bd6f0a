// `make bench`: what checkpointing costs a job, and how fast a job is back after its
// box dies, for jobs holding 10 MB / 100 MB / 500 MB of memory
// that CRIU must dump (random bytes, so neither compression nor dedupe helps).
//
//   1. Pause: how long the job is frozen by a Workrs checkpoint (DockerRuntime: the CRIU
//      dump with the capture hook copying the files while the job is frozen, or pause →
//      dump → commit → unpause without the hook) vs a raw `docker checkpoint create
//      --leave-running` of the same kind of container on the same engine, run with the
//      hook's configuration moved aside. Both are read from the job's own clock: it
//      prints /proc/uptime every 20 ms and the pause is the largest gap.
//   2. Restore on another engine (a second dockerd in its own network namespace, a
//      stand-in for another box): Workrs unpacks the checkpoint from its blob store and
//      DockerRuntime.restore loads the snapshot image, creates the container, places
//      the CRIU images and starts from them; vs a raw `docker start --checkpoint` of a
//      container checkpointed on that same engine (the best case Docker offers).
//   3. Failover: a real 3-node cluster of `workrs start --runtime docker` processes;
//      once a checkpoint of the filled memory is committed, the box running the job is
//      destroyed (kill -9, its containers removed, its data folder deleted) and we time
//      until a container restored from the checkpoint runs on another node.
//   4. Dedupe: the bytes a second checkpoint of an unchanged 200 MB job puts on the
//      wire, against the first's (test/docker/dedupe-measure.ts).
//
// Method (docs/development.md, "How to benchmark"): Workrs and raw Docker alternate, ≥ 3 repetitions,
// median and range, ratio of medians; fresh containers, stores and clusters each time.
// A dated section is appended to bench/RESULTS.md. BENCH_QUICK=1: 10 MB only, one
// repetition (a smoke run, minutes). BENCH_REPS=n overrides the repetitions,
// BENCH_SIZES=100,500 the job sizes (MB);
// BENCH_NOTE adds a sentence about the conditions (e.g. other work on the machine).
// BENCH_TRACE=1 runs the failovers alone, records nothing, and prints what the
// surviving nodes logged after each kill (a look at where a takeover's time goes).
import { appendFile, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type Docker from 'dockerode';
import { BlobStore } from '../src/blobs/index.js';
import { RUNC_CRIU_CONF } from '../src/worker/criu-hook.js';
import { removeCheckpointLeftovers } from '../src/worker/ctrd-leftovers.js';
import { createCheckpoint, deleteCheckpoint, engineCheckpointDir, startFromCheckpoint } from '../src/worker/docker-checkpoint.js';
import { mergeDockerLog } from '../src/worker/docker-logs.js';
import { createOptions, runConfigOf } from '../src/worker/docker-run-config.js';
import { metricValue } from '../test/helpers/prometheus.js';
import { waitFor } from '../test/helpers/wait.js';
import { BASE_IMAGE, mainEngine, secondEngine, type Engine } from '../test/docker/engines.js';
import { twoReplicatedCheckpoints } from '../test/docker/dedupe-measure.js';
import { assignment, testRuntime, uid } from '../test/docker/fixtures.js';
import { BINARY, LocalCluster } from '../test/process/harness.js';
import { containersOf, destroyBox, type JobView, removeContainers, removeSnapshotImages } from './boxes.js';
import { loadAverage, machineFacts } from './machine.js';
import { megabytes, ratio, seconds, summarize, table, type Summary } from './stats.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.env.BENCH_QUICK === '1';
// BENCH_SIZES=100,500: only these job sizes (MB), e.g. to look at one change closely.
const SIZES = process.env.BENCH_SIZES ? process.env.BENCH_SIZES.split(',').map((mb) => Number(mb) * 1e6) : QUICK ? [10e6] : [10e6, 100e6, 500e6];
if (!SIZES.every((b) => Number.isFinite(b) && b > 0)) throw new Error(`BENCH_SIZES=${process.env.BENCH_SIZES ?? ''}: sizes in MB, comma-separated`);
const REPS = Number(process.env.BENCH_REPS ?? (QUICK ? 1 : 3));
const RESULTS = join(root, 'bench', 'RESULTS.md');
/** The bench's own second engine: never one a test may be using (or stopping) meanwhile. */
const ENGINE_B_DIR = '/var/lib/workrs-bench-engine-b';
const ENGINE_B_NETNS = 'workrs-bench-engine-b';
/** Label on the bench's raw containers, so an interrupted run's leftovers can be found. */
const RAW_LABEL = 'workrs.bench';
const TICK_US = 20_000;
/** Ticks recorded on each side of a pause. */
const SETTLE_MS = 1000;
/** Checkpoints in the cluster runs: long enough for 500 MB to be filled first. */
const CLUSTER_INTERVAL_SECONDS = 5;
/** BENCH_TRACE=1: failovers only, nothing recorded; each prints what the survivors logged (at info, the harness's level) after the kill. */
const TRACE = process.env.BENCH_TRACE === '1';

/**
 * Fills `bytes` of anonymous memory with random bytes in one buffer (dd), then blocks
 * forever writing it into a pipe nobody drains: the memory stays as it is. The reader
 * takes one byte (so dd has read everything), says FILLED, then prints the machine's
 * uptime (10 ms resolution) every 20 ms: the job's own clock.
 */
function holdingJob(bytes: number): string[] {
  const ticker = `while true; do read up rest </proc/uptime; echo "T $up"; usleep ${TICK_US}; done`;
  return ['sh', '-c', `dd if=/dev/urandom bs=${bytes} count=1 iflag=fullblock 2>/dev/null | { head -c 1 >/dev/null; echo FILLED; ${ticker}; }`];
}

function jobSpec(bytes: number): Record<string, unknown> {
  return { command: holdingJob(bytes), memoryMB: Math.ceil(bytes / 2 ** 20) + 128, cpus: 1 };
}

/**
 * The largest gap between two consecutive ticks, in ms: how long the job was frozen at
 * most. Of the whole log, or of its first `upTo` bytes (before the checkpoint: the
 * clock's own noise on a busy machine).
 */
function longestPauseMs(log: Buffer, upTo = log.length): number {
  const ticks = [...log.subarray(0, upTo).toString().matchAll(/^T (\d+\.\d+)$/gm)].map((m) => Number(m[1]));
  if (ticks.length < 10) throw new Error(`only ${ticks.length} ticks in the job's log: the clock did not run`);
  let gap = 0;
  for (let i = 1; i < ticks.length; i++) gap = Math.max(gap, (ticks[i] as number) - (ticks[i - 1] as number));
  return Math.round(gap * 1000);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - started };
}

async function waitForLog(what: string, read: () => Promise<Buffer>, pattern: RegExp, timeoutMs = 120_000): Promise<void> {
  await waitFor(what, async () => (pattern.test((await read()).toString()) ? true : undefined), timeoutMs, 100);
}

async function rawLog(container: Docker.Container): Promise<Buffer> {
  return mergeDockerLog(await container.logs({ stdout: true, stderr: true, follow: false }));
}

/** Ticks in a log so far: a count that grows shows the job's clock runs (again). */
const ticksIn = (log: Buffer): number => (log.toString().match(/^T /gm) ?? []).length;

// ---- cleanup, also on Ctrl-C ---------------------------------------------------

const cleanups: Array<() => Promise<void>> = [];
function onCleanup(fn: () => Promise<void>): () => Promise<void> {
  cleanups.push(fn);
  return async () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
    await fn();
  };
}
async function cleanupAll(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch((err: unknown) => console.error('cleanup failed:', err));
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

// ---- 1 and 2: Workrs checkpoint + restore elsewhere, raw Docker beside it -------

interface WorkrsSample {
  pauseMs: number; // from the job's clock
  noiseMs: number; // the clock's longest gap in the second before the checkpoint
  frozenMs: number; // as DockerRuntime reports it (the dump with the hook; pause → unpause without)
  capture: string; // 'hook' or 'pause'
  checkpointMs: number; // the whole checkpoint call: capture, export of the bundle
  bundleBytes: number;
  putMs: number; // into the blob store (chunks on disk, fsynced)
  unpackMs: number; // the bundle out of the blob store on the restoring node
  restoreMs: number; // DockerRuntime.restore on engine B
  restoreSteps: string; // where restoreMs went (RestoreResult.steps)
  standbyPrepareMs: number; // unpack + DockerRuntime.prepareStandby on engine B, ahead of the takeover
  standbyRestoreMs: number; // DockerRuntime.restore on engine B claiming that standby
  standbySteps: string;
}

/** `standbyFirst`: which of the two restores on engine B goes first (the repetitions alternate). */
async function workrsRound(bytes: number, a: Engine, b: Engine, standbyFirst: boolean): Promise<WorkrsSample> {
  const onA = await testRuntime(a.docker, `bench-a-${uid()}`);
  const onB = await testRuntime(b.docker, `bench-b-${uid()}`);
  const dir = await mkdtemp(join(tmpdir(), 'workrs-bench-'));
  const done = onCleanup(async () => {
    await onA.cleanup();
    await onB.cleanup();
    await rm(dir, { recursive: true, force: true });
  });
  try {
    const jobId = `j-${uid()}`;
    const first = { jobId, epoch: 1 };
    const second = { jobId, epoch: 2 };
    await onA.runtime.start(assignment(jobId, 1, jobSpec(bytes)), () => {});
    await waitForLog('the job to fill its memory', () => onA.runtime.logBytes(first), /^FILLED$/m);
    await delay(SETTLE_MS);
    const logged = (await onA.runtime.logBytes(first)).length;
    const cp = await onA.runtime.checkpoint(first, 'c1');
    await delay(SETTLE_MS);
    const log = await onA.runtime.logBytes(first);
    const pauseMs = longestPauseMs(log);
    const noiseMs = longestPauseMs(log, logged);
    await onA.runtime.stop(first); // box A is gone; the memory it held is free again

    const store = await BlobStore.open(join(dir, 'blobs'));
    const put = await timed(() => store.putFolder(cp.bundleDir, 'checkpoint'));
    await rm(cp.bundleDir, { recursive: true, force: true });
    // Twice from the same checkpoint on engine B: unpacked and restored at the takeover
    // (cold), and from a standby prepared ahead (src/worker/docker-standby.ts).
    const restoreOn = async (key: { jobId: string; epoch: number }, folder: string) => {
      const restore = await timed(() => onB.runtime.restore(assignment(jobId, key.epoch, jobSpec(bytes)), folder, () => {}));
      if (!restore.value.restored) throw new Error(`restore on engine B failed: ${restore.value.reason}`);
      const ticksAtRestore = ticksIn(await onB.runtime.logBytes(key));
      await waitFor('the restored job to tick', async () => (ticksIn(await onB.runtime.logBytes(key)) > ticksAtRestore ? true : undefined), 30_000, 50);
      await onB.runtime.stop(key);
      const steps = Object.entries(restore.value.steps ?? {}).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)}`).join(', ');
      return { ms: restore.ms, steps, fromStandby: restore.value.fromStandby === true };
    };
    const cold = async () => {
      const unpacked = join(dir, 'restore');
      const unpack = await timed(() => store.exportFolder(put.value.id, unpacked));
      return { unpackMs: unpack.ms, ...(await restoreOn(second, unpacked)) };
    };
    const standby = async () => {
      const unpacked = join(dir, 'standby');
      const prepare = await timed(async () => {
        await store.exportFolder(put.value.id, unpacked);
        await onB.runtime.prepareStandby(jobId, unpacked, put.value.id);
      });
      const r = await restoreOn({ jobId, epoch: 3 }, unpacked);
      if (!r.fromStandby) throw new Error('the restore did not claim the standby prepared for it');
      return { prepareMs: prepare.ms, ...r };
    };
    const [c, w] = standbyFirst ? await standby().then(async (w) => [await cold(), w] as const) : await cold().then(async (c) => [c, await standby()] as const);
    return {
      restoreSteps: c.steps,
      pauseMs,
      noiseMs,
      frozenMs: cp.frozenMs,
      capture: cp.capture ?? '?',
      checkpointMs: cp.durationMs,
      bundleBytes: cp.bytes,
      putMs: put.ms,
      unpackMs: c.unpackMs,
      restoreMs: c.ms,
      standbyPrepareMs: w.prepareMs,
      standbyRestoreMs: w.ms,
      standbySteps: w.steps,
    };
  } finally {
    await done();
  }
}

interface RawPauseSample {
  pauseMs: number;
  noiseMs: number;
  callMs: number; // `docker checkpoint create --leave-running`, the whole call
}

interface RawRestoreSample {
  restoreMs: number; // `docker start --checkpoint`
  withHookMs: number; // the same, with Workrs' capture hook in CRIU's configuration
}

/** A container configured as Workrs configures a job's (same limits, same security), outside Workrs. */
async function rawContainer(engine: Engine, bytes: number): Promise<Docker.Container> {
  const run = runConfigOf(assignment('raw', 1, jobSpec(bytes)).spec);
  const container = await engine.docker.createContainer(createOptions({ name: `workrs-bench-raw-${uid()}`, image: BASE_IMAGE, run, labels: { [RAW_LABEL]: 'raw' } }));
  await container.start();
  await waitForLog('the raw job to fill its memory', () => rawLog(container), /^FILLED$/m);
  await delay(SETTLE_MS);
  return container;
}

/**
 * Raw Docker as it is without Workrs: the CRIU configuration that names Workrs' capture
 * hook (criu-hook.ts, which every dump on the host runs) is moved aside for `fn`.
 */
async function withoutCaptureHook<T>(fn: () => Promise<T>): Promise<T> {
  const aside = `${RUNC_CRIU_CONF}.bench-aside`;
  const moved = await rename(RUNC_CRIU_CONF, aside).then(
    () => true,
    () => false,
  );
  try {
    return await fn();
  } finally {
    if (moved) await rename(aside, RUNC_CRIU_CONF);
  }
}

async function rawPauseRound(bytes: number, engine: Engine): Promise<RawPauseSample> {
  const container = await rawContainer(engine, bytes);
  const done = onCleanup(async () => {
    await container.remove({ force: true });
  });
  try {
    const logged = (await rawLog(container)).length;
    const call = await withoutCaptureHook(() => timed(() => createCheckpoint(container, 'c1', { leaveRunning: true })));
    await delay(SETTLE_MS);
    const log = await rawLog(container);
    await deleteCheckpoint(container, 'c1');
    return { pauseMs: longestPauseMs(log), noiseMs: longestPauseMs(log, logged), callMs: call.ms };
  } finally {
    await done();
  }
}

/**
 * Two raw restores of one container on `engine`, each from a fresh dump (made without
 * the hook): one as Docker is without Workrs, one with the capture hook in CRIU's
 * configuration, as a restore on a Workrs box runs (CRIU calls the hook at every
 * point of a restore too: what the hook alone costs). `hookFirst` alternates the order.
 */
async function rawRestoreRound(bytes: number, engine: Engine, hookFirst: boolean): Promise<RawRestoreSample> {
  const container = await rawContainer(engine, bytes);
  const rootDir = ((await engine.docker.info()) as { DockerRootDir: string }).DockerRootDir;
  const names = ['c1', 'c2'];
  let started = false;
  const done = onCleanup(async () => {
    if (started) for (const name of names) await removeCheckpointLeftovers(engineCheckpointDir(rootDir, container.id, name)).catch(() => []);
    await container.remove({ force: true });
  });
  try {
    const restoreOnce = async (name: string, withHook: boolean): Promise<number> => {
      await withoutCaptureHook(() => createCheckpoint(container, name, { leaveRunning: false }));
      await waitFor('the checkpointed container to stop', async () => ((await container.inspect()).State.Running ? undefined : true), 30_000, 50);
      // As in the Workrs round, the restore does not follow the dump within a second
      // (containerd's "already exists" retry would count against the raw side).
      await delay(SETTLE_MS);
      const ticksBefore = ticksIn(await rawLog(container));
      started = true;
      const start = () => timed(() => startFromCheckpoint(container, name));
      const restore = withHook ? await start() : await withoutCaptureHook(start);
      await waitFor('the restored raw job to tick', async () => (ticksIn(await rawLog(container)) > ticksBefore ? true : undefined), 30_000, 50);
      return restore.ms;
    };
    const first = await restoreOnce('c1', hookFirst);
    const second = await restoreOnce('c2', !hookFirst);
    return hookFirst ? { restoreMs: second, withHookMs: first } : { restoreMs: first, withHookMs: second };
  } finally {
    await done();
  }
}

// ---- 4: bytes a second checkpoint moves --------------------------------------------

const DEDUPE_BYTES = 200_000_000;

async function dedupeRound(docker: Docker): Promise<{ first: number; second: number }> {
  const cleanups: (() => Promise<void>)[] = [];
  const done = onCleanup(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  try {
    const run = await twoReplicatedCheckpoints(docker, DEDUPE_BYTES, (fn) => cleanups.push(fn));
    return { first: run.replications[0].wireBytes, second: run.replications[1].wireBytes };
  } finally {
    await done();
  }
}

// ---- 3: failover in a real cluster ---------------------------------------------

interface FailoverSample {
  reassignedMs: number; // kill → the job assigned to a new epoch on another node
  runningMs: number; // kill → a container restored from the checkpoint runs there
  reportedMs: number; // kill → the cluster has applied the new attempt's start
  fromCheckpoint: boolean;
  fromStandby: boolean; // the new attempt claimed a standby container prepared ahead
  standbyMs: number; // the checkpoint seen committed → a survivor's standby ready
}

/** BENCH_TRACE=1: what each survivor logged after the kill, ms from it (the nodes log at info). */
async function printTrace(logFile: string, id: string, killedWall: number): Promise<void> {
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    const entry = (() => {
      try {
        return JSON.parse(line) as { time?: number; msg?: string; steps?: unknown };
      } catch {
        return null;
      }
    })();
    if (entry?.time !== undefined && entry.time >= killedWall) console.log(`    ${id} +${entry.time - killedWall} ms ${entry.msg ?? ''}${entry.steps === undefined ? '' : ` ${JSON.stringify(entry.steps)}`}`);
  }
}

async function metricsOf(cluster: LocalCluster, id: string): Promise<string> {
  return cluster.request(id, '/metrics').then((r) => r.text(), () => '');
}

async function failoverRound(bytes: number, docker: Docker): Promise<FailoverSample> {
  const run = uid();
  const ids = [1, 2, 3].map((i) => `bench-${run}-n${i}`);
  const cluster = await LocalCluster.create(ids);
  for (const n of cluster.nodes.values()) {
    n.args[n.args.indexOf('fake')] = 'docker';
  }
  let failed = true;
  let submitted: string | null = null;
  const done = onCleanup(async () => {
    await cluster.destroy(failed);
    for (const id of ids) await removeContainers(docker, `workrs.node=${id}`);
    if (submitted !== null) await removeSnapshotImages(docker, submitted);
  });
  try {
    cluster.startAll();
    await cluster.leader(60_000);
    await cluster.allReady(60_000);
    const spec = { ...jobSpec(bytes), checkpoint: { mode: 'interval', intervalSeconds: CLUSTER_INTERVAL_SECONDS } };
    const sub = await cluster.post<{ id: string }>(ids[0] as string, '/v1/jobs', spec);
    if (sub.status !== 202) throw new Error(`submit answered ${sub.status}: ${JSON.stringify(sub.body)}`);
    const jobId = sub.body.id;
    submitted = jobId;
    const before = await waitFor('a committed checkpoint of the filled memory', async () => {
      const j = (await cluster.get<JobView>(ids[0] as string, `/v1/jobs/${jobId}`)).body;
      return j.node !== null && j.checkpoints.some((c) => c.bytes >= bytes) ? j : undefined;
    }, 240_000, 100);
    const victim = before.node as string;
    const survivors = ids.filter((id) => id !== victim);
    const survivor = survivors[0] as string;
    // A box dies at any moment of a checkpoint interval, and for most of it the holders
    // of the newest checkpoint stand by with its takeover prepared (src/node/standby-restores.ts):
    // the box is destroyed once one of them reports its standby ready, and how long that
    // took after the checkpoint was seen committed is reported alongside.
    const committedAt = performance.now();
    await waitFor('a survivor to have the takeover prepared', async () => {
      for (const id of survivors) if (metricValue(await metricsOf(cluster, id), 'workrs_standby_restores_ready') >= 1) return true;
      return undefined;
    }, 240_000, 50);
    const standbyMs = performance.now() - committedAt;

    const killedAt = performance.now();
    const killedWall = Date.now();
    await destroyBox(cluster, docker, victim);

    const since = (): number => performance.now() - killedAt;
    const marks: { reassigned?: number; running?: number; reported?: number } = {};
    const watchApi = waitFor('the cluster to report the job started elsewhere', async () => {
      const j = (await cluster.get<JobView>(survivor, `/v1/jobs/${jobId}?stale=1`).catch(() => null))?.body;
      if (!j || j.epoch <= before.epoch || j.node === victim) return undefined;
      marks.reassigned ??= since();
      if (j.attempts.at(-1)?.startedAt == null) return undefined;
      marks.reported = since();
      return j;
    }, 180_000, 20);
    const watchDocker = waitFor('a container of the job running on another node', async () => {
      const c = (await containersOf(docker, `workrs.job=${jobId}`)).find((info) => info.State === 'running' && info.Labels['workrs.node'] !== victim);
      if (!c) return undefined;
      marks.running = since();
      return c;
    }, 180_000, 20);
    const [after] = await Promise.all([watchApi, watchDocker]);
    // Restored: the attempt was assigned a checkpoint and its start reported no restore error.
    const last = after.attempts.at(-1);
    const fromCheckpoint = last?.fromCheckpoint != null && last.restoreError == null;
    if (TRACE) for (const id of survivors) await printTrace(cluster.node(id).logFile, id, killedWall);
    const fromStandby = metricValue(await metricsOf(cluster, after.node as string), 'workrs_restores_total{how="standby"}') >= 1;
    failed = false;
    return { reassignedMs: marks.reassigned ?? Number.NaN, runningMs: marks.running ?? Number.NaN, reportedMs: marks.reported ?? Number.NaN, fromCheckpoint, fromStandby, standbyMs };
  } finally {
    await done();
  }
}

// ---- the run ---------------------------------------------------------------------

/** Keeps going when one round fails: the failure is counted and reported. */
async function attempt<T>(what: string, fn: () => Promise<T>, failures: string[]): Promise<T | null> {
  try {
    return await fn();
  } catch (err) {
    const message = err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err);
    console.error(`  ${what} FAILED: ${message}`);
    failures.push(`${what}: ${message.split('\n')[0]}`);
    return null;
  }
}

/** Copies the base image to an engine that lacks it (`docker save | docker load`). */
async function ensureImage(from: Docker, to: Docker, ref: string): Promise<void> {
  if (await to.getImage(ref).inspect().then(() => true, () => false)) return;
  const progress = (await to.loadImage((await from.getImage(ref).get()) as NodeJS.ReadableStream, { quiet: true })) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => to.modem.followProgress(progress, (err: Error | null) => (err ? reject(err) : resolve())));
}

const list = (values: readonly number[]): string => values.map((ms) => (ms / 1000).toFixed(2)).join(', ');
const pick = <T>(samples: readonly T[], f: (s: T) => number): number[] => samples.map(f);
const s = (values: readonly number[]): Summary | null => summarize(values);

async function main(): Promise<void> {
  if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`BENCH_REPS must be a whole number ≥ 1, got ${process.env.BENCH_REPS}`);
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run 'make build' first (make bench uses a copy of dist/workrs)`);
  const startedAt = new Date();
  const wallStart = performance.now();
  const a = await mainEngine();
  const b = await secondEngine(ENGINE_B_DIR, ENGINE_B_NETNS);
  onCleanup(() => b.stop());
  await ensureImage(a.docker, b.docker, BASE_IMAGE);
  const facts = await machineFacts({ binary: BINARY, engines: [{ name: 'A (main)', docker: a.docker }, { name: 'B (second dockerd, own netns)', docker: b.docker }] });
  console.log(facts.map((f) => `- ${f}`).join('\n'));

  const failures: string[] = [];
  const pauseRows: string[][] = [];
  const restoreRows: string[][] = [];
  const failoverRows: string[][] = [];
  const samples: string[] = [];
  for (const bytes of SIZES) {
    const size = megabytes(bytes);
    const workrs: WorkrsSample[] = [];
    const rawPause: RawPauseSample[] = [];
    const rawRestore: RawRestoreSample[] = [];
    for (let rep = 1; rep <= (TRACE ? 0 : REPS); rep++) {
      // A B, then B A: neither side always runs on a machine the other just warmed.
      const order = rep % 2 === 1 ? ['workrs', 'raw'] : ['raw', 'workrs'];
      for (const side of order) {
        console.log(`${size} rep ${rep}/${REPS}: ${side}`);
        if (side === 'workrs') {
          const w = await attempt(`${size} rep ${rep} Workrs checkpoint + restore`, () => workrsRound(bytes, a, b, rep % 2 === 0), failures);
          if (w) {
            workrs.push(w);
            console.log(`  pause ${w.pauseMs} ms (frozenMs ${w.frozenMs.toFixed(0)}, ${w.capture}), checkpoint ${w.checkpointMs.toFixed(0)} ms, put ${w.putMs.toFixed(0)} ms, unpack ${w.unpackMs.toFixed(0)} ms, restore ${w.restoreMs.toFixed(0)} ms; standby prepared ${w.standbyPrepareMs.toFixed(0)} ms, restore from it ${w.standbyRestoreMs.toFixed(0)} ms`);
          }
        } else {
          const p = await attempt(`${size} rep ${rep} raw checkpoint`, () => rawPauseRound(bytes, a), failures);
          if (p) rawPause.push(p);
          const r = await attempt(`${size} rep ${rep} raw restore`, () => rawRestoreRound(bytes, b, rep % 2 === 0), failures);
          if (r) rawRestore.push(r);
          console.log(`  pause ${p?.pauseMs ?? '–'} ms (call ${p?.callMs.toFixed(0) ?? '–'} ms), start --checkpoint ${r?.restoreMs.toFixed(0) ?? '–'} ms (with the hook configured ${r?.withHookMs.toFixed(0) ?? '–'} ms)`);
        }
      }
    }
    const wPause = s(pick(workrs, (w) => w.pauseMs));
    const rPause = s(pick(rawPause, (r) => r.pauseMs));
    const noise = s([...pick(workrs, (w) => w.noiseMs), ...pick(rawPause, (r) => r.noiseMs)]);
    pauseRows.push([size, seconds(wPause), seconds(rPause), ratio(wPause, rPause), seconds(noise), seconds(s(pick(workrs, (w) => w.frozenMs))), seconds(s(pick(workrs, (w) => w.checkpointMs))), seconds(s(pick(rawPause, (r) => r.callMs))), megabytes(workrs[0]?.bundleBytes ?? 0), [...new Set(workrs.map((w) => w.capture))].join(', ')]);
    const wRestore = s(pick(workrs, (w) => w.restoreMs));
    const wTotal = s(pick(workrs, (w) => w.unpackMs + w.restoreMs));
    const rRestore = s(pick(rawRestore, (r) => r.restoreMs));
    const rHook = s(pick(rawRestore, (r) => r.withHookMs));
    const wStandby = s(pick(workrs, (w) => w.standbyRestoreMs));
    restoreRows.push([
      size,
      seconds(wStandby),
      seconds(rRestore),
      ratio(wStandby, rRestore),
      `${seconds(rHook)} (${ratio(rHook, rRestore)})`,
      seconds(s(pick(workrs, (w) => w.standbyPrepareMs))),
      seconds(s(pick(workrs, (w) => w.unpackMs))),
      seconds(wRestore),
      ratio(wRestore, rRestore),
      ratio(wTotal, rRestore),
      seconds(s(pick(workrs, (w) => w.putMs))),
    ]);
    samples.push(
      `- ${size}: Workrs pause ${list(pick(workrs, (w) => w.pauseMs))}; raw pause ${list(pick(rawPause, (r) => r.pauseMs))}; ` +
        `Workrs restore from a standby ${list(pick(workrs, (w) => w.standbyRestoreMs))} (by step: ${workrs.map((w) => w.standbySteps).join(' / ')}); ` +
        `cold ${list(pick(workrs, (w) => w.restoreMs))} (+ unpack ${list(pick(workrs, (w) => w.unpackMs))}; by step: ${workrs.map((w) => w.restoreSteps).join(' / ')}); raw start --checkpoint ${list(pick(rawRestore, (r) => r.restoreMs))} (with the hook configured ${list(pick(rawRestore, (r) => r.withHookMs))})`,
    );

    const failovers: FailoverSample[] = [];
    for (let rep = 1; rep <= REPS; rep++) {
      console.log(`${size} rep ${rep}/${REPS}: failover in a 3-node cluster`);
      const f = await attempt(`${size} rep ${rep} failover`, () => failoverRound(bytes, a.docker), failures);
      if (!f) continue;
      console.log(`  reassigned ${f.reassignedMs.toFixed(0)} ms, running ${f.runningMs.toFixed(0)} ms, reported ${f.reportedMs.toFixed(0)} ms, from checkpoint: ${f.fromCheckpoint}`);
      if (f.fromCheckpoint) failovers.push(f);
      else failures.push(`${size} rep ${rep} failover: the job started from scratch, not from its checkpoint (not counted)`);
    }
    failoverRows.push([
      size,
      seconds(s(pick(failovers, (f) => f.reassignedMs))),
      seconds(s(pick(failovers, (f) => f.runningMs))),
      seconds(s(pick(failovers, (f) => f.reportedMs))),
      `${failovers.length}/${REPS}`,
      `${failovers.filter((f) => f.fromStandby).length}/${failovers.length}`,
      seconds(s(pick(failovers, (f) => f.standbyMs))),
    ]);
    samples.push(`- ${size}: kill → running elsewhere ${list(pick(failovers, (f) => f.runningMs))}`);
  }

  if (TRACE) return; // a look at the failovers only: nothing recorded

  // 4. What a second checkpoint of an unchanged job moves (dedupe-measure.ts).
  const dedupe: { first: number; second: number }[] = [];
  for (let rep = 1; rep <= (QUICK ? 1 : REPS); rep++) {
    console.log(`rep ${rep}: two checkpoints of an unchanged ${megabytes(DEDUPE_BYTES)} job, each replicated`);
    const r = await attempt(`rep ${rep} dedupe`, () => dedupeRound(a.docker), failures);
    if (!r) continue;
    dedupe.push(r);
    console.log(`  first ${megabytes(r.first)}, second ${(r.second / 1e3).toFixed(0)} kB on the wire (${((100 * r.second) / r.first).toFixed(2)}%)`);
  }
  const dedupeRows = [[megabytes(DEDUPE_BYTES), megabytes(s(pick(dedupe, (d) => d.first))?.median ?? 0), `${((s(pick(dedupe, (d) => d.second))?.median ?? 0) / 1e3).toFixed(0)} kB`, `${(100 * (s(pick(dedupe, (d) => d.second / d.first))?.median ?? NaN)).toFixed(2)}%`, `${dedupe.length}`]];

  const minutes = ((performance.now() - wallStart) / 60_000).toFixed(1);
  const command = process.env.BENCH_COMMAND ?? `${process.env.WORKRS_BINARY ? `WORKRS_BINARY=${process.env.WORKRS_BINARY} ` : ''}node_modules/.bin/tsx bench/checkpoint.ts`;
  const settings = [`BENCH_QUICK=${QUICK ? 1 : 0}`, `BENCH_REPS=${REPS}`].join(' ');
  const section = [
    `## ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC: checkpoint pause, restore elsewhere, failover${QUICK ? ' (quick)' : ''}`,
    '',
    `Command: \`${command}\` (${settings}); ran ${minutes} min.`,
    '',
    ...facts.map((f) => `- ${f}`),
    `- load average at the end: ${loadAverage()}`,
    ...(process.env.BENCH_NOTE ? [`- conditions: ${process.env.BENCH_NOTE}`] : []),
    '',
    `Jobs hold 10 / 100 / 500 MB of random bytes in one anonymous buffer (dd), limited to 1 CPU and their size + 128 MiB. ` +
      `Median (range) of ${REPS} repetition${REPS === 1 ? '' : 's'}, Workrs and raw Docker alternating; a ratio is Workrs' median over raw Docker's.`,
    '',
    `### 1. Checkpoint pause (the job's own clock: its longest gap between ticks 20 ms apart)`,
    '',
    table(['job memory', 'Workrs pause', 'raw `checkpoint create --leave-running` pause', 'ratio', 'clock noise (longest gap in the second before, both sides)', 'Workrs frozenMs (as the runtime reports it)', 'Workrs whole checkpoint (+ export of the bundle)', 'raw call', 'bundle', 'capture'], pauseRows),
    '',
    `### 2. Restore on another engine (engine B)`,
    '',
    'Workrs restores each checkpoint twice on engine B, the order alternating. **From a standby**, as a node that holds the checkpoint does at a takeover: ahead of it, the bundle unpacked from the blob store and DockerRuntime.prepareStandby (the container made from the job image, the checkpoint filesystem layer unpacked into it, the CRIU images placed; not started); timed: DockerRuntime.restore claiming it (a rename) and starting it. **Cold**, as a node without a standby: the bundle unpacked, then DockerRuntime.restore making all of that and starting. Raw: `docker start --checkpoint` of a container checkpointed on engine B itself (its container and images in place, as a standby\'s are), without Workrs\' capture hook in CRIU\'s configuration; and once more from a second dump with it there, as on a Workrs box, where CRIU runs the hook at every point of a restore too.',
    '',
    table(['job memory', 'Workrs restore from a standby', 'raw `start --checkpoint`', 'ratio (standby)', 'raw with the capture hook configured (its ratio to raw)', 'standby prepared ahead in (unpack + make)', 'Workrs cold unpack', 'Workrs cold restore', 'ratio (cold restore)', 'ratio (cold unpack + restore)', 'for reference: Workrs put into the blob store'], restoreRows),
    '',
    `### 3. Box killed → job running again on another node`,
    '',
    `Three \`workrs start --runtime docker\` processes (default timings: lease 2 s, node timeout 3 s), all on engine A; checkpoints every ${CLUSTER_INTERVAL_SECONDS} s. ` +
      'The box is destroyed once a survivor holding the checkpoint reports its takeover prepared (`workrs_standby_restores_ready`), as it is for most of a checkpoint interval; the last column is how long after the checkpoint was seen committed that was. ' +
      'Clock starts at kill -9 of the workrs process of the node running the job (its containers are then removed and its data folder deleted).',
    '',
    table(['job memory', 'reassigned to another node', 'restored container running', 'start applied by the cluster', 'rounds restored from a checkpoint', 'of them from a standby', 'standby ready after the commit'], failoverRows),
    '',
    `### 4. Bytes a second checkpoint moves`,
    '',
    'A job holding random bytes that never change, checkpointed twice by the node\'s own checkpoint loop; each checkpoint put into the blob store and replicated to a peer over HTTP as a node does it. Bytes the holder\'s sockets wrote for each replication (test/docker/dedupe-measure.ts).',
    '',
    table(['job memory', 'first replication on the wire', 'second', 'second / first', 'runs'], dedupeRows),
    '',
    'Samples (seconds):',
    '',
    ...samples,
    ...(failures.length > 0 ? ['', 'Failed rounds (not in the figures):', '', ...failures.map((f) => `- ${f}`)] : []),
    '',
  ].join('\n');
  const existing = existsSync(RESULTS) ? await readFile(RESULTS, 'utf8') : '';
  const preamble = existing === '' ? '# Benchmark results\n\nWritten by the bench scripts (`make bench`); each run appends a dated section. Never edited by hand.\n\n' : '';
  await appendFile(RESULTS, `${preamble}${existing.endsWith('\n\n') || existing === '' ? '' : '\n'}${section}`);
  console.log(`\n${section}\nappended to ${RESULTS}`);
}

try {
  await main();
} finally {
  await cleanupAll();
}
