// `make experiments`: the research prototype's experiment (docs/checkpoint-model.md,
// "The prototype's experiment") on a real local cluster. For each failure rate μ of its grid and each
// plan (no checkpoints, the paper model's count, a fixed 15, Workrs' `auto`), a
// synthetic Python job (job.py: T seconds of work held in memory) runs on a fresh
// 3-node cluster of `workrs start --runtime docker` processes while its box is
// destroyed at exponentially distributed times F = −ln(U)/μ, drawn anew at each
// (re)start of the job; the job's box is the one that fails, and a fresh box joins in
// its place (boxes.ts). `--scale s` shrinks T = 300 s and 1/μ together, so μ·T (what
// decides whether checkpoints pay) is the prototype's. Paired seeds: run r of every
// plan at one μ draws the same sequence of F.
//
// Each finished run is appended to <out>/results.json and the report
// (<out>/REPORT.md with SVG plots, report.ts) is rewritten, so an interrupted run keeps
// what it measured and `--resume` goes on from there. Runs go repetition by
// repetition, the highest μ first: a run cut short still covers every plan.
//
// With `--resume`, after the repetitions asked for, the run goes on adding repetitions
// at the target rates (μ·T 0.9 and 3.93, cell-stats.ts) until every cell there has
// enough runs for the report to conclude (10, or a 95% CI within ±15% of its mean). A
// repetition runs every plan at its rate on the same seed, so the differences stay
// paired. Each invocation starts no run after `--minutes` (so it ends within that plus
// one run, at most the cap); the next `--resume` goes on where it stopped.
//
//   node_modules/.bin/tsx bench/experiments/run.ts [--quick] [--scale 0.1] [--reps 3]
//     [--rates 0.003,0.0131] [--cap 8] [--out docs/experiments] [--resume] [--minutes 45]
//     [--report-only]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { paperOptimum, PROTOTYPE_FAILURE_RATES, PROTOTYPE_FIXED_CHECKPOINTS, PROTOTYPE_WORK_SECONDS, SeededRandom } from '../../src/policy/index.js';
import type { JobView } from '../../src/state/views.js';
import { BINARY } from '../../test/process/harness.js';
import { Boxes, progressLines } from './boxes.js';
import { muTOf, rateNeedsRuns, remaining, TARGET_MU_T, TARGET_RUNS } from './cell-stats.js';
import { writeReport, type Experiment, type Plan, type RunResult } from './report.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const JOB_SCRIPT = readFileSync(join(root, 'bench/experiments/job.py'), 'utf8');
const IMAGE = 'workrs/python:3';
/** C assumed before any measurement, for the paper model's count (bench/RESULTS.md: a small job's checkpoint takes ~1–4 s). */
const ASSUMED_CHECKPOINT_SECONDS = 2;
/** R assumed before any measurement (bench/RESULTS.md: kill → restored container running ≈ 5–7 s); the nodes' restartPriorSeconds. */
const ASSUMED_RESTART_SECONDS = 7;
/** How many losses the nodes' MTBF prior is worth: enough that it stands (see the report's "auto" section). */
const MTBF_PRIOR_WEIGHT = 1000;
const POLL_MS = 100;
/** The job's memory limit, from which `auto` predicts its first checkpoint's cost: python3 with job.py's 4 MiB state stays near 12 MB. */
const JOB_MEMORY_MB = 32;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: process.env.QUICK === '1' },
    scale: { type: 'string' },
    reps: { type: 'string' },
    rates: { type: 'string' },
    cap: { type: 'string', default: '8' },
    out: { type: 'string' },
    resume: { type: 'boolean', default: process.env.RESUME === '1' },
    minutes: { type: 'string' },
    'report-only': { type: 'boolean', default: false },
  },
});
const quick = args.quick === true;
const scale = Number(args.scale ?? process.env.SCALE ?? 0.1);
const reps = Number(args.reps ?? process.env.REPS ?? (quick ? 1 : 3));
const rates = (args.rates ?? process.env.RATES)?.split(',').map(Number) ?? (quick ? [0.0005, 0.003] : [...PROTOTYPE_FAILURE_RATES]);
const capFactor = Number(args.cap);
const minutes = Number(args.minutes ?? process.env.MINUTES ?? 45);
const out = resolve(root, args.out ?? (quick ? 'docs/experiments/quick' : 'docs/experiments'));
if (!(scale > 0 && scale <= 1)) throw new Error(`--scale must be in (0, 1], got ${scale}`);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a whole number ≥ 1, got ${reps}`);
if (rates.some((r) => !(r > 0))) throw new Error(`--rates must be positive numbers, got ${rates.join(',')}`);
if (!(minutes > 0)) throw new Error(`--minutes must be positive, got ${minutes}`);

const workSeconds = PROTOTYPE_WORK_SECONDS * scale;

/** The plans compared at one μ; the paper's count may be 0, and then its runs are those of `off`. */
function plansAt(rate: number): Plan[] {
  const mtbfSeconds = scale / rate;
  const k = paperOptimum({ workSeconds, mtbfSeconds, checkpointSeconds: ASSUMED_CHECKPOINT_SECONDS, restartSeconds: 0 }).segments - 1;
  const interval = (checkpoints: number): number => Math.max(1, workSeconds / (checkpoints + 1));
  return [
    { policy: 'off', checkpoints: 0, checkpoint: { mode: 'off' }, alsoPaper: k === 0 },
    ...(k === 0 ? [] : [{ policy: 'paper' as const, checkpoints: k, checkpoint: { mode: 'interval' as const, intervalSeconds: interval(k) }, alsoPaper: false }]),
    { policy: 'fixed-15', checkpoints: PROTOTYPE_FIXED_CHECKPOINTS, checkpoint: { mode: 'interval', intervalSeconds: interval(PROTOTYPE_FIXED_CHECKPOINTS) }, alsoPaper: false },
    { policy: 'auto', checkpoints: null, checkpoint: { mode: 'auto' }, alsoPaper: false },
  ];
}

// ---- cleanup, also on Ctrl-C ---------------------------------------------------

let current: { boxes: Boxes; jobId: string | null } | null = null;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void (current?.boxes.close(current.jobId, false) ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

// ---- one run ---------------------------------------------------------------------

interface Pending {
  /** Work done when its box was destroyed. */
  progressAtKill: number;
  /** The epoch whose first progress line says where the job resumed. */
  nextEpoch: number;
}

/**
 * Per checkpoint, from the end of its freeze to its commit (export, copy to a second
 * node, Raft): the window in which a failure still loses it. The freeze's end is the
 * attempt's start + the run time the worker reported (ranMs) + its freezes so far; all
 * clocks here are this machine's. Checkpoints without ranMs are left out.
 */
function commitSeconds(job: JobView): number[] {
  const out: number[] = [];
  const frozenBefore = new Map<number, number>();
  for (const c of job.checkpoints) {
    const startedAt = job.attempts[c.epoch - 1]?.startedAt ?? null;
    const frozen = c.frozenMs ?? 0;
    const before = frozenBefore.get(c.epoch) ?? 0;
    frozenBefore.set(c.epoch, before + frozen);
    if (startedAt === null || c.ranMs === null) continue;
    out.push(Math.max(0, (c.at - (startedAt + c.ranMs + before + frozen)) / 1000));
  }
  return out;
}

async function runOnce(rate: number, plan: Plan, rep: number, seed: number): Promise<RunResult> {
  const mtbfSeconds = scale / rate;
  const capSeconds = capFactor * workSeconds;
  const random = new SeededRandom(seed);
  const boxes = await Boxes.start(`x${seed}-${plan.policy.slice(0, 3)}`, { mtbfPriorSeconds: Math.max(1, Math.round(mtbfSeconds)), mtbfPriorWeight: MTBF_PRIOR_WEIGHT, restartPriorSeconds: ASSUMED_RESTART_SECONDS });
  current = { boxes, jobId: null };
  let failed = true;
  try {
    const spec = { image: IMAGE, command: ['python3', '-c', JOB_SCRIPT, String(workSeconds)], estimateSeconds: workSeconds, memoryMB: JOB_MEMORY_MB, checkpoint: plan.checkpoint };
    const sub = await boxes.cluster.post<{ id: string }>(boxes.via(), '/v1/jobs', spec);
    if (sub.status !== 202) throw new Error(`submit answered ${sub.status}: ${JSON.stringify(sub.body)}`);
    const jobId = sub.body.id;
    current.jobId = jobId;
    const submittedAt = Date.now();

    const draws: number[] = [];
    let armed = null as { epoch: number; node: string; killAt: number } | null;
    const killedAt: number[] = [];
    const restartSeconds: number[] = [];
    const workLost: number[] = [];
    let pending: Pending | null = null;
    let healthWaitMs = 0;
    let firstPolicy: JobView['policy'] | null = null;
    let job: JobView | null = null;
    for (;;) {
      await delay(POLL_MS);
      job = await boxes.job(jobId, armed?.node).catch(() => job);
      if (!job) continue;
      await boxes.sample(jobId).catch(() => undefined);
      if (firstPolicy === null && job.policy.reason !== 'not computed yet' && job.spec.checkpoint.mode === 'auto') firstPolicy = job.policy;
      if (job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled') break;
      if ((Date.now() - submittedAt) / 1000 > capSeconds) break;
      const attempt = job.attempts.at(-1);
      if (!attempt || job.state !== 'running' || attempt.startedAt === null || job.node === null) continue;

      // Where the job resumed after the last failure: the first progress line of the new attempt.
      if (pending !== null && attempt.epoch >= pending.nextEpoch) {
        const container = await boxes.container(jobId, attempt.epoch);
        const first = container === null ? undefined : progressLines(await boxes.containerLog(container).catch(() => ''))[0];
        if (first !== undefined) {
          workLost.push(Math.max(0, pending.progressAtKill - (first - 0.1)));
          pending = null;
        }
      }
      if (armed === null || armed.epoch !== attempt.epoch) {
        // A (re)start: a fresh time to failure, from the moment the attempt started.
        const f = random.nextExponential(mtbfSeconds);
        draws.push(f);
        armed = { epoch: attempt.epoch, node: job.node, killAt: attempt.startedAt + f * 1000 };
        if (killedAt.length > 0) restartSeconds.push((attempt.startedAt - (killedAt.at(-1) as number)) / 1000);
      }
      if (Date.now() < armed.killAt) continue;
      // Never two boxes down at once: the quorum must be whole before the next loss.
      if (!(await boxes.healthy())) {
        healthWaitMs += POLL_MS;
        continue;
      }
      const container = await boxes.container(jobId, attempt.epoch);
      const progress = container === null ? [] : progressLines(await boxes.containerLog(container).catch(() => ''));
      const now = Date.now();
      await boxes.destroy(armed.node, jobId);
      killedAt.push(now);
      pending = { progressAtKill: progress.at(-1) ?? 0, nextEpoch: attempt.epoch + 1 };
      console.log(`    failure ${killedAt.length} at ${((now - submittedAt) / 1000).toFixed(1)} s: ${armed.node} destroyed (work done ${progress.at(-1) ?? 0} s)`);
      armed = { ...armed, killAt: Infinity };
    }
    const end = job as JobView;
    const finished = end.state === 'succeeded';
    const finishedAt = end.finishedAt ?? Date.now();
    const startedAt = end.startedAt ?? end.attempts[0]?.startedAt ?? submittedAt;
    const cpu = boxes.cpuSeconds();
    failed = !finished;
    return {
      rate,
      policy: plan.policy,
      alsoPaper: plan.alsoPaper,
      rep,
      seed,
      workSeconds,
      mtbfSeconds,
      intervalSeconds: plan.checkpoint.mode === 'interval' ? (plan.checkpoint.intervalSeconds ?? null) : null,
      plannedCheckpoints: plan.checkpoints,
      state: end.state,
      censored: !finished,
      submitToFinishSeconds: (finishedAt - end.createdAt) / 1000,
      startToFinishSeconds: (finishedAt - startedAt) / 1000,
      failures: killedAt.length,
      draws,
      workLostSeconds: workLost,
      restartSeconds,
      checkpoints: end.checkpoints.length,
      checkpointSeconds: end.checkpoints.map((c) => c.durationMs / 1000),
      checkpointFrozenSeconds: end.checkpoints.map((c) => (c.frozenMs ?? c.durationMs) / 1000),
      checkpointCommitSeconds: commitSeconds(end),
      checkpointBytes: end.checkpoints.reduce((a, c) => a + c.bytes, 0),
      restoredAttempts: end.attempts.filter((a) => a.fromCheckpoint !== null && a.restoreError === null).length,
      resumePoints: end.attempts.slice(1).map((a) => (a.fromCheckpoint === null ? 'none' : a.restoreError === null ? `e${a.fromCheckpoint.epoch}-c${a.fromCheckpoint.seq}` : `failed: ${a.restoreError}`)),
      nodeCpuSeconds: cpu.nodes,
      jobCpuSeconds: cpu.job,
      healthWaitSeconds: healthWaitMs / 1000,
      policy0: firstPolicy,
      policyEnd: end.spec.checkpoint.mode === 'auto' ? end.policy : null,
    };
  } finally {
    await boxes.close(current.jobId, failed);
    current = null;
  }
}

// ---- the grid ----------------------------------------------------------------------

async function main(): Promise<void> {
  const resultsFile = join(out, 'results.json');
  if (args['report-only']) {
    await writeReport(JSON.parse(readFileSync(resultsFile, 'utf8')) as Experiment, out);
    console.log(`rewrote ${join(out, 'REPORT.md')} from ${resultsFile}`);
    return;
  }
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run 'make build' first (make experiments uses a copy of dist/workrs)`);
  mkdirSync(out, { recursive: true });
  const previous: Experiment | null = args.resume && existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Experiment) : null;
  const command = process.env.EXPERIMENTS_COMMAND ?? `node_modules/.bin/tsx bench/experiments/run.ts ${process.argv.slice(2).join(' ')}`.trim();
  if (previous !== null && !previous.command.endsWith(command)) previous.command = `${previous.command}, then ${command}`;
  const experiment: Experiment = previous ?? {
    command,
    startedAt: new Date().toISOString(),
    quick,
    scale,
    reps,
    rates,
    capFactor,
    workSeconds,
    assumedCheckpointSeconds: ASSUMED_CHECKPOINT_SECONDS,
    assumedRestartSeconds: ASSUMED_RESTART_SECONDS,
    mtbfPriorWeight: MTBF_PRIOR_WEIGHT,
    memoryMB: JOB_MEMORY_MB,
    binary: BINARY,
    runs: [],
    wallSeconds: 0,
  };
  const wallStart = performance.now() - experiment.wallSeconds * 1000;
  const save = async (): Promise<void> => {
    experiment.wallSeconds = (performance.now() - wallStart) / 1000;
    writeFileSync(resultsFile, `${JSON.stringify(experiment, null, 1)}\n`);
    await writeReport(experiment, out);
  };
  // A --resume may add repetitions or rates to what an earlier run planned.
  experiment.reps = Math.max(experiment.reps, reps);
  experiment.rates = [...new Set([...experiment.rates, ...rates])];
  const byRate = [...rates].sort((a, b) => b - a);
  const isTarget = (rate: number): boolean => TARGET_MU_T.includes(muTOf(rate, workSeconds, scale));
  const deadline = performance.now() + minutes * 60_000;
  // Past the repetitions asked for, --resume goes on at the target rates whose cells are short;
  // the bound stops a rate whose runs keep failing.
  const lastRep = args.resume ? Math.max(reps, 2 * TARGET_RUNS) : reps;
  grid: for (let rep = 1; rep <= lastRep; rep++) {
    const here = byRate.filter((rate) => rep <= reps || (isTarget(rate) && rateNeedsRuns(experiment, rate)));
    if (here.length === 0) break;
    for (const rate of here) {
      const seed = 1000 * rep + PROTOTYPE_FAILURE_RATES.indexOf(rate as (typeof PROTOTYPE_FAILURE_RATES)[number]) + 1;
      for (const plan of plansAt(rate)) {
        if (experiment.runs.some((r) => r.rate === rate && r.policy === plan.policy && r.rep === rep)) continue;
        if (performance.now() > deadline) {
          console.log(`${minutes} min reached: stopping before rep ${rep}, μ = ${rate}, ${plan.policy}; run again with --resume (make experiments RESUME=1) to go on`);
          break grid;
        }
        experiment.reps = Math.max(experiment.reps, rep);
        console.log(`rep ${rep}/${Math.max(reps, rep)}, μ = ${rate} (μT = ${(rate * PROTOTYPE_WORK_SECONDS).toFixed(2)}), ${plan.policy}: T = ${workSeconds} s, M = ${(scale / rate).toFixed(1)} s, seed ${seed}`);
        try {
          const r = await runOnce(rate, plan, rep, seed);
          experiment.runs.push(r);
          console.log(`  ${r.state} in ${r.submitToFinishSeconds.toFixed(1)} s; ${r.failures} failures, ${r.checkpoints} checkpoints, work lost ${r.workLostSeconds.reduce((a, b) => a + b, 0).toFixed(1)} s`);
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          console.error(`  FAILED: ${message}`);
          experiment.failedRuns = [...(experiment.failedRuns ?? []), `rep ${rep}, μ ${rate}, ${plan.policy}: ${message.split('\n')[0]}`];
        }
        await save();
      }
    }
  }
  for (const left of remaining(experiment)) console.log(`left at μ·T ${left.muT}: ${left.reps} more repetitions, ~${(left.seconds / 60).toFixed(0)} min`);
  await save();
  console.log(`wrote ${join(out, 'REPORT.md')} (${(experiment.wallSeconds / 60).toFixed(1)} min)`);
}

await main();
