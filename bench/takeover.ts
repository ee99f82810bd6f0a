// Takeover: a box destroyed under a checkpointed job, and the time until the job runs
// again elsewhere from its replicated checkpoint. A real 3-node cluster of `workrs start
// --runtime docker` processes on this machine's engine, default timings; the job holds
// 10 MB of random bytes in memory and checkpoints every CHECKPOINT_SECONDS. Once its
// first checkpoint is committed (so held by two nodes), the box running it is destroyed:
// kill -9 of its workrs process, its containers removed, its data folder deleted. Two
// series: the job on the leader's box (an election first), and on a follower's.
//
// The clock starts at the kill. "Running elsewhere" is the first moment a survivor's
// applied state (?stale=1, polled every POLL_MS) shows the new attempt started from the
// checkpoint (its jobStarted applied, no restore error). The phases come from the same
// polls (new leader known, the box declared lost, the job reassigned) and from the
// restoring node's log (start of the restore, "resumed from checkpoint").
//
//   npx tsx bench/takeover.ts [--runs 5] [--only leader|follower]
//   WORKRS_BINARY=/tmp/x/workrs npx tsx bench/takeover.ts   (a binary other than dist/workrs)
//
// `takeover()` returns the markdown section; bench/raft.ts adds it to its report.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { mainEngine } from '../test/docker/engines.js';
import { waitFor } from '../test/helpers/wait.js';
import { BINARY, LocalCluster } from '../test/process/harness.js';
import { destroyBox, type JobView, removeContainers, removeSnapshotImages } from './boxes.js';
import { loadAverage } from './machine.js';
import { seconds, summarize, table, type Summary } from './stats.js';

const JOB_BYTES = 10e6;
const CHECKPOINT_SECONDS = 3;
const POLL_MS = 20;
/** TAKEOVER_KEEP_LOGS=dir: every node's log is copied there (to see where the time went). */
const KEEP_LOGS = process.env.TAKEOVER_KEEP_LOGS;
/** Acceptance targets of the medians (issue 15). */
const TARGET_MS = { leader: 6000, follower: 5000 } as const;

export type Victim = 'leader' | 'follower';

/** One destroyed box; every time in ms after the kill (null: not seen). */
export interface TakeoverSample {
  victim: Victim;
  /** A survivor knows a leader other than the destroyed box (the leader series only). */
  electedMs: number | null;
  /** The destroyed box's node record is lost in a survivor's state. */
  lostMs: number | null;
  /** The job has a new attempt on a survivor. */
  assignedMs: number | null;
  /** The restoring node's worker begins the attempt (its log). */
  restoreBeganMs: number | null;
  /** The restoring node's "resumed from checkpoint" (its log). */
  resumedMs: number | null;
  /** The new attempt's start, restored from the checkpoint, applied on a survivor. */
  runningMs: number;
  fromCheckpoint: boolean;
}

export interface TakeoverResult {
  markdown: string;
  samples: TakeoverSample[];
  leader: Summary | null;
  follower: Summary | null;
  failures: string[];
}

interface ClusterView {
  leader: string | null;
  nodes: Array<{ id: string; state: string }>;
}

/** Fills `bytes` of memory with random bytes (dd into a pipe nobody drains, so they stay), then ticks. */
function holdingJob(bytes: number): Record<string, unknown> {
  const command = ['sh', '-c', `dd if=/dev/urandom bs=${bytes} count=1 iflag=fullblock 2>/dev/null | { head -c 1 >/dev/null; echo FILLED; while true; do sleep 1; echo T; done; }`];
  return { command, memoryMB: Math.ceil(bytes / 2 ** 20) + 128, cpus: 1, checkpoint: { mode: 'interval', intervalSeconds: CHECKPOINT_SECONDS } };
}

/** Submits copies of the job until one is placed on `target`; the other copies are cancelled. */
async function placeOn(cluster: LocalCluster, via: string, target: string): Promise<string> {
  const others: string[] = [];
  try {
    for (let copy = 0; copy < 8; copy++) {
      const r = await cluster.post<{ id: string }>(via, '/v1/jobs', holdingJob(JOB_BYTES));
      if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
      const placed = await waitFor('the job placed', async () => {
        const j = (await cluster.get<JobView>(via, `/v1/jobs/${r.body.id}`)).body;
        return j.node ?? undefined;
      }, 60_000, 50);
      if (placed === target) return r.body.id;
      others.push(r.body.id);
    }
    throw new Error(`no copy of the job landed on ${target}`);
  } finally {
    for (const id of others) await cluster.request(via, `/v1/jobs/${id}`, { method: 'DELETE' });
  }
}

/** The first line of a node's log with this message (and job), as ms after `sinceWallMs`. */
function logMark(cluster: LocalCluster, node: string, msg: string, jobId: string, epoch: number, sinceWallMs: number): number | null {
  for (const line of readFileSync(cluster.node(node).logFile, 'utf8').split('\n')) {
    if (!line.includes(msg) || !line.includes(jobId)) continue;
    try {
      const l = JSON.parse(line) as { msg?: string; job?: string; epoch?: number; time?: number };
      if (l.msg === msg && l.job === jobId && l.epoch === epoch && typeof l.time === 'number') return l.time - sinceWallMs;
    } catch {
      // a line cut by the kill
    }
  }
  return null;
}

async function oneRun(docker: Docker, victimKind: Victim, run: number): Promise<TakeoverSample> {
  const ids = [1, 2, 3].map((i) => `tk${run}-n${i}`);
  const cluster = await LocalCluster.create(ids);
  for (const n of cluster.nodes.values()) n.args[n.args.indexOf('fake')] = 'docker';
  let failed = true;
  let jobId: string | null = null;
  try {
    cluster.startAll();
    const leader = await cluster.leader(60_000);
    await cluster.allReady(60_000);
    const victim = victimKind === 'leader' ? leader : (ids.find((id) => id !== leader) as string);
    const via = ids.find((id) => id !== victim && id !== leader) ?? (ids.find((id) => id !== victim) as string);
    jobId = await placeOn(cluster, via, victim);
    const job = jobId;
    const before = await waitFor('a committed checkpoint of the filled memory', async () => {
      const j = (await cluster.get<JobView>(via, `/v1/jobs/${job}`)).body;
      if (j.node !== victim) throw new Error(`the job left ${victim} before the fault: ${j.state} on ${j.node}`);
      return j.checkpoints.some((c) => c.bytes >= JOB_BYTES && c.holders.length >= 2) ? j : undefined;
    }, 120_000, 100);
    if ((await cluster.leader()) !== leader) throw new Error('the leader changed before the fault');

    const killedWall = Date.now();
    const killedAt = performance.now();
    await destroyBox(cluster, docker, victim);

    const since = (): number => performance.now() - killedAt;
    const marks: { elected?: number; lost?: number; assigned?: number } = {};
    const after = await waitFor('the job running elsewhere from its checkpoint', async () => {
      const [c, j] = await Promise.all([
        cluster.get<ClusterView>(via, '/v1/cluster?stale=1').then((r) => r.body, () => null),
        cluster.get<JobView>(via, `/v1/jobs/${job}?stale=1`).then((r) => r.body, () => null),
      ]);
      const t = since();
      if (c?.leader != null && c.leader !== victim) marks.elected ??= t;
      if (c?.nodes.find((n) => n.id === victim)?.state === 'lost') marks.lost ??= t;
      if (!j || j.epoch <= before.epoch || j.node === victim) return undefined;
      marks.assigned ??= t;
      const last = j.attempts.at(-1);
      return last?.startedAt != null ? { j, t } : undefined;
    }, 120_000, POLL_MS);
    const last = after.j.attempts.at(-1);
    const node = last?.node ?? via;
    const epoch = last?.epoch ?? 0;
    failed = false;
    return {
      victim: victimKind,
      electedMs: victimKind === 'leader' ? (marks.elected ?? null) : null,
      lostMs: marks.lost ?? null,
      assignedMs: marks.assigned ?? null,
      restoreBeganMs: logMark(cluster, node, 'starting', job, epoch, killedWall),
      resumedMs: logMark(cluster, node, 'resumed from checkpoint', job, epoch, killedWall),
      runningMs: after.t,
      fromCheckpoint: last?.fromCheckpoint != null && last.restoreError == null,
    };
  } finally {
    if (KEEP_LOGS) for (const id of ids) copyFileSync(cluster.node(id).logFile, join(KEEP_LOGS, `${id}.log`));
    await cluster.destroy(failed);
    for (const id of ids) await removeContainers(docker, `workrs.node=${id}`);
    if (jobId !== null) await removeSnapshotImages(docker, jobId);
  }
}

const sec = (ms: number | null): string => (ms === null ? '–' : (ms / 1000).toFixed(2));
const median = (values: ReadonlyArray<number | null>): string => seconds(summarize(values.filter((v): v is number => v !== null)));

export async function takeover(opts: { runs?: number; only?: Victim; log?: (line: string) => void } = {}): Promise<TakeoverResult> {
  const runs = opts.runs ?? 5;
  const log = opts.log ?? ((line: string) => console.error(line));
  const { docker } = await mainEngine();
  if (KEEP_LOGS) mkdirSync(KEEP_LOGS, { recursive: true });
  const started = new Date();
  const loadBefore = loadAverage();
  const samples: TakeoverSample[] = [];
  const failures: string[] = [];
  const kinds: Victim[] = opts.only ? [opts.only] : ['leader', 'follower'];
  let run = 0;
  // The series alternate, so neither always runs on a machine the other just loaded.
  for (let rep = 1; rep <= runs; rep++) {
    for (const kind of kinds) {
      run += 1;
      try {
        const s = await oneRun(docker, kind, run);
        samples.push(s);
        log(`takeover ${kind} ${rep}/${runs}: running elsewhere after ${sec(s.runningMs)} s (elected ${sec(s.electedMs)}, lost ${sec(s.lostMs)}, assigned ${sec(s.assignedMs)}, restore ${sec(s.restoreBeganMs)}–${sec(s.resumedMs)})${s.fromCheckpoint ? '' : ' NOT from the checkpoint'}`);
      } catch (err) {
        const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
        failures.push(`${kind} ${rep}: ${message}`);
        log(`takeover ${kind} ${rep}/${runs} FAILED: ${message}`);
      }
    }
  }
  const of = (kind: Victim): TakeoverSample[] => samples.filter((s) => s.victim === kind);
  const restored = (kind: Victim): number[] => of(kind).filter((s) => s.fromCheckpoint).map((s) => s.runningMs);
  const summary = (kind: Victim): Summary | null => summarize(restored(kind));
  const rows = kinds.map((kind) => {
    const ss = of(kind);
    const m = summary(kind);
    return [
      kind === 'leader' ? "the leader's box" : "a follower's box",
      seconds(m),
      `≤ ${TARGET_MS[kind] / 1000} s: ${m === null ? '–' : m.median <= TARGET_MS[kind] ? 'met' : 'NOT met'}`,
      kind === 'leader' ? median(ss.map((s) => s.electedMs)) : '–',
      median(ss.map((s) => s.lostMs)),
      median(ss.map((s) => s.assignedMs)),
      median(ss.map((s) => s.restoreBeganMs)),
      median(ss.map((s) => s.resumedMs)),
      `${restored(kind).length}/${ss.length}`,
    ];
  });
  const markdown = [
    `### Takeover: a box destroyed → its 10 MB job running elsewhere from its checkpoint`,
    '',
    `${started.toISOString().slice(0, 16).replace('T', ' ')} UTC; load average at the start ${loadBefore}, at the end ${loadAverage()}.`,
    `Three \`workrs start --runtime docker\` processes on this machine's engine, default timings; the job holds ${JOB_BYTES / 1e6} MB of random bytes and checkpoints every ${CHECKPOINT_SECONDS} s. After its first committed (replicated) checkpoint the box running it is destroyed (kill -9, its containers removed, its data folder deleted). Times from the kill; median (range) of ${runs} runs per series, the series alternating. "Running" is the new attempt's start, restored from the checkpoint, applied on a survivor (polled every ${POLL_MS} ms); "restore" is the restoring worker's log, from the start of the attempt to "resumed from checkpoint".`,
    '',
    table(['box destroyed', 'running elsewhere', 'target (median)', 'new leader known', 'box declared lost', 'job reassigned', 'restore began', 'restore done', 'restored from the checkpoint'], rows),
    '',
    'Samples (s, running elsewhere): ' + kinds.map((kind) => `${kind}: ${of(kind).map((s) => sec(s.runningMs)).join(', ')}`).join('; ') + '.',
    ...(failures.length > 0 ? ['', `Failed runs: ${failures.join('; ')}`] : []),
  ].join('\n');
  return { markdown, samples, leader: kinds.includes('leader') ? summary('leader') : null, follower: kinds.includes('follower') ? summary('follower') : null, failures };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, only: { type: 'string' } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number ≥ 1, got ${values.runs}`);
  if (values.only !== undefined && values.only !== 'leader' && values.only !== 'follower') throw new Error(`--only must be leader or follower, got ${values.only}`);
  console.error(`binary under test: ${BINARY}`);
  const r = await takeover({ runs, ...(values.only ? { only: values.only as Victim } : {}) });
  console.log(r.markdown);
  if (r.failures.length > 0) process.exitCode = 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
