// The experiments' report: from the measured runs (run.ts) to <out>/REPORT.md, with
// the exact model's prediction for every cell (using C and R as measured in the same
// runs), a Monte Carlo of the same grid (src/policy simulateCompletion, 10,000 runs
// per cell), and two SVG plots rendered headless by vega-lite + vega (View.toSVG).
// Rewritten after every run, so it always shows what has been measured so far.
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { exactExpectedSeconds, simulateCompletion, type ModelInput } from '../../src/policy/index.js';
import { onlinePolicy } from '../../src/policy/online.js';
import { replay, simulateProcess, simulateProcessRun, type ProcessInput } from './process-model.js';
import { SeededRandom } from '../../src/policy/random.js';
import { table } from '../stats.js';

export type PolicyName = 'off' | 'paper' | 'fixed-15' | 'auto';

export interface Plan {
  policy: PolicyName;
  /** Checkpoints the plan asks for; null for auto (the leader decides). */
  checkpoints: number | null;
  checkpoint: { mode: 'off' | 'interval' | 'auto'; intervalSeconds?: number };
  /** The paper model chose no checkpoint at this μ: these runs are its runs too. */
  alsoPaper: boolean;
}

interface PolicyView {
  mode: string;
  intervalSeconds: number | null;
  reason: string;
}

export interface RunResult {
  rate: number;
  policy: PolicyName;
  alsoPaper: boolean;
  rep: number;
  seed: number;
  workSeconds: number;
  mtbfSeconds: number;
  intervalSeconds: number | null;
  plannedCheckpoints: number | null;
  state: string;
  /** Stopped at the cap before it finished: its times are lower bounds. */
  censored: boolean;
  submitToFinishSeconds: number;
  startToFinishSeconds: number;
  failures: number;
  draws: number[];
  workLostSeconds: number[];
  /** Per failure: box destroyed → the job's next attempt started. */
  restartSeconds: number[];
  checkpoints: number;
  checkpointSeconds: number[];
  /** Per checkpoint, how long the job was frozen (runs recorded before this field existed lack it). */
  checkpointFrozenSeconds?: number[];
  /** Per checkpoint, freeze's end → committed (runs recorded before this field existed lack it). */
  checkpointCommitSeconds?: number[];
  checkpointBytes: number;
  restoredAttempts: number;
  /** Per restart: the checkpoint it resumed from, 'none', or why its restore failed. */
  resumePoints?: string[];
  nodeCpuSeconds: number;
  jobCpuSeconds: number;
  healthWaitSeconds: number;
  policy0: PolicyView | null;
  policyEnd: PolicyView | null;
}

export interface Experiment {
  command: string;
  startedAt: string;
  quick: boolean;
  scale: number;
  reps: number;
  rates: number[];
  capFactor: number;
  workSeconds: number;
  assumedCheckpointSeconds: number;
  assumedRestartSeconds: number;
  mtbfPriorWeight: number;
  /** The job's memoryMB; 64 in runs from before it was recorded. */
  memoryMB?: number;
  binary: string;
  runs: RunResult[];
  failedRuns?: string[];
  wallSeconds: number;
}

const MONTE_CARLO_RUNS = 10_000;
const POLICIES: PolicyName[] = ['off', 'paper', 'fixed-15', 'auto'];

const mean = (xs: readonly number[]): number => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Two-sided 95% quantile of Student's t with `df` degrees of freedom. */
function t95(df: number): number {
  const table95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];
  return table95[df - 1] ?? 1.96 + 2.5 / df;
}

/** Half-width of the 95% confidence interval of the mean; NaN with fewer than 2 values. */
function halfWidth(xs: readonly number[]): number {
  if (xs.length < 2) return Number.NaN;
  const m = mean(xs);
  const variance = sum(xs.map((x) => (x - m) ** 2)) / (xs.length - 1);
  return t95(xs.length - 1) * Math.sqrt(variance / xs.length);
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
const pct = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%` : '–');

/** The runs of one cell: `off` runs count for `paper` too where the paper model chose no checkpoint. */
function runsOf(e: Experiment, rate: number, policy: PolicyName): RunResult[] {
  return e.runs.filter((r) => r.rate === rate && (r.policy === policy || (policy === 'paper' && r.policy === 'off' && r.alsoPaper)));
}

/** Segments (checkpoints + 1) the model is given for a cell: the plan's, or for auto the leader's first plan (most common over the runs). */
function segmentsOf(runs: readonly RunResult[], policy: PolicyName, workSeconds: number): number | null {
  if (policy === 'off') return 1;
  if (policy !== 'auto') return (runs[0]?.plannedCheckpoints ?? 0) + 1;
  const counts = new Map<number, number>();
  for (const r of runs) {
    const p = r.policy0;
    if (p === null) continue;
    const n = p.mode === 'off' || p.intervalSeconds === null ? 1 : Math.max(1, Math.round(workSeconds / p.intervalSeconds));
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
}

interface Cell {
  rate: number;
  muT: number;
  policy: PolicyName;
  runs: RunResult[];
  segments: number | null;
  measured: number;
  ci: number;
  censored: number;
  exact: number;
  injector: number;
  monteCarlo: number;
  monteCarloSe: number;
  /** The Monte Carlo of this experiment's own process (process-model.ts). */
  process: number;
  processSe: number;
  /** Per run: this process's model fed the run's own times to failure, cut at the cap like the run. */
  replayed: number[];
}

/** What the cells' models are given, all measured in these runs. */
interface Costs {
  /** C: the freeze. */
  c: number;
  /** Freeze's end → commit: the window in which a failure still loses the checkpoint. */
  commit: number;
  r: number;
}

/** The checkpoint interval the worker followed: the plan's, or for auto the online policy re-planned on the measured costs. */
function intervalOf(runs: readonly RunResult[], policy: PolicyName, mtbf: number, k: Costs, workSeconds: number, first?: RunResult['policy0']): ProcessInput['intervalSeconds'] {
  if (policy === 'off') return null;
  if (policy !== 'auto') return runs[0]?.intervalSeconds ?? null;
  return (remaining: number) =>
    // Replaying a run: its leader's first plan (made before anything was measured) until the job keeps some work.
    first && remaining >= workSeconds ? (first.mode === 'off' ? null : first.intervalSeconds) : onlinePolicy({
      remainingSeconds: remaining,
      checkpoint: { seconds: k.c, samples: 20, from: 'measured' },
      restart: { seconds: k.r, samples: 20 },
      failure: { mtbfSeconds: mtbf, losses: 0, exposureSeconds: 0 },
    }).intervalSeconds;
}

function cells(e: Experiment, k: Costs): Cell[] {
  const { c, r } = k;
  const out: Cell[] = [];
  for (const rate of [...e.rates].sort((a, b) => a - b)) {
    for (const policy of POLICIES) {
      const runs = runsOf(e, rate, policy);
      if (runs.length === 0) continue;
      const mtbf = runs[0]?.mtbfSeconds ?? 1;
      const segments = segmentsOf(runs, policy, e.workSeconds);
      const input: ModelInput = { workSeconds: e.workSeconds, mtbfSeconds: mtbf, checkpointSeconds: c, restartSeconds: r };
      const exact = segments === null ? Number.NaN : exactExpectedSeconds(segments, input);
      const mc = segments === null ? null : simulateCompletion(input, segments, MONTE_CARLO_RUNS, 7000 + out.length);
      const times = runs.map((x) => x.startToFinishSeconds);
      const pin: ProcessInput = { workSeconds: e.workSeconds, mtbfSeconds: mtbf, intervalSeconds: intervalOf(runs, policy, mtbf, k, e.workSeconds), freezeSeconds: c, commitSeconds: k.commit, restartSeconds: r };
      const proc = simulateProcess(pin, MONTE_CARLO_RUNS, 9000 + out.length);
      const cap = e.capFactor * e.workSeconds;
      // Each run replayed with its own times to failure and restarts, and its own mean freeze and commit window.
      const own = (xs: readonly number[] | undefined, fallback: number): number => (xs !== undefined && xs.length > 0 ? mean(xs) : fallback);
      const replayed = runs.map((x) => {
        const mine: ProcessInput = { ...pin, intervalSeconds: intervalOf(runs, policy, mtbf, k, e.workSeconds, x.policy0), freezeSeconds: own(x.checkpointFrozenSeconds, c), commitSeconds: own(x.checkpointCommitSeconds, k.commit), restarts: x.restartSeconds };
        return Math.min(cap, simulateProcessRun(mine, replay(x.draws, new SeededRandom(x.seed))).seconds);
      });
      out.push({
        rate,
        muT: rate * 300,
        policy,
        runs,
        segments,
        measured: mean(times),
        ci: halfWidth(times),
        censored: runs.filter((x) => x.censored).length,
        exact,
        // Failures are drawn from each (re)start, so none strikes during a restart: a
        // failure costs exactly R, and M·e^{R/M} becomes M + R in every term of T(n).
        injector: (exact * (1 + r / mtbf)) / Math.exp(r / mtbf),
        monteCarlo: mc?.meanSeconds ?? Number.NaN,
        monteCarloSe: mc?.standardErrorSeconds ?? Number.NaN,
        process: proc.meanSeconds,
        processSe: proc.standardErrorSeconds,
        replayed,
      });
    }
  }
  return out;
}

async function svg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const text = await view.toSVG();
  view.finalize();
  return `${text}\n`;
}

async function plots(all: Cell[], out: string): Promise<void> {
  const points = all.map((c) => ({ muT: c.muT, policy: c.policy, measured: c.measured, low: c.measured - (Number.isFinite(c.ci) ? c.ci : 0), high: c.measured + (Number.isFinite(c.ci) ? c.ci : 0), exact: c.exact, process: c.process }));
  const x = { field: 'muT', type: 'quantitative', scale: { type: 'log' }, title: 'μ·T (expected failures in a failure-free run)' } as const;
  const color = { field: 'policy', type: 'nominal', title: 'plan', sort: POLICIES } as const;
  const completion: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Completion time (first start → finished) vs μ·T', subtitle: 'measured mean ± 95% CI (solid); exact model (dashed) and this process (dotted), measured C and R' },
    width: 560,
    height: 340,
    data: { values: points },
    layer: [
      { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'measured', type: 'quantitative', scale: { type: 'log' }, title: 'seconds (log)' }, color } },
      { mark: { type: 'errorbar' }, encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color } },
      { mark: { type: 'line', strokeDash: [4, 3], opacity: 0.7 }, encoding: { x, y: { field: 'exact', type: 'quantitative' }, color } },
      { mark: { type: 'line', strokeDash: [1, 3], opacity: 0.9 }, encoding: { x, y: { field: 'process', type: 'quantitative' }, color } },
    ],
  };
  const finite = points.filter((p) => Number.isFinite(p.exact) && Number.isFinite(p.measured));
  const top = Math.max(1, ...finite.flatMap((p) => [p.exact, p.measured, Number.isFinite(p.process) ? p.process : 1]));
  const scatter: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Measured mean vs predicted', subtitle: 'exact model (filled) and this process (hollow), measured C and R; grey lines: equal and ±15%' },
    width: 420,
    height: 420,
    layer: [
      {
        data: { values: [0.85, 1, 1.15].flatMap((k) => [{ k: String(k), p: 1, m: k }, { k: String(k), p: top, m: top * k }]) },
        mark: { type: 'line', color: 'grey', opacity: 0.6 },
        encoding: { x: { field: 'p', type: 'quantitative', scale: { type: 'log' } }, y: { field: 'm', type: 'quantitative', scale: { type: 'log' } }, detail: { field: 'k' }, strokeDash: { field: 'k', legend: null } },
      },
      {
        data: { values: finite },
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          x: { field: 'exact', type: 'quantitative', scale: { type: 'log' }, title: 'predicted (s)' },
          y: { field: 'measured', type: 'quantitative', scale: { type: 'log' }, title: 'measured mean (s)' },
          color,
          shape: { field: 'muT', type: 'nominal', title: 'μ·T' },
        },
      },
      {
        data: { values: finite.filter((p) => Number.isFinite(p.process)) },
        mark: { type: 'point', filled: false, size: 70 },
        encoding: {
          x: { field: 'process', type: 'quantitative', scale: { type: 'log' } },
          y: { field: 'measured', type: 'quantitative', scale: { type: 'log' } },
          color,
          shape: { field: 'muT', type: 'nominal', title: 'μ·T' },
        },
      },
    ],
  };
  await writeFile(join(out, 'completion-vs-muT.svg'), await svg(completion));
  await writeFile(join(out, 'measured-vs-predicted.svg'), await svg(scatter));
}

/**
 * The acceptance comparison (auto and paper vs off at the two higher rates) and every
 * cell more than 15% from the exact model, each with the causes its own numbers show.
 */
function inCi(cell: Cell, x: number): string {
  if (cell.censored > 0) return 'cut';
  if (!Number.isFinite(cell.ci) || !Number.isFinite(x)) return '–';
  return Math.abs(cell.measured - x) <= cell.ci ? 'yes' : 'no';
}

function disagreements(all: Cell[], k: Costs, e: Experiment): string[] {
  const { c, r } = k;
  const lines: string[] = [];
  const higher = [...new Set(all.map((x) => x.rate))].sort((a, b) => b - a).slice(0, 2);
  for (const rate of higher) {
    const off = all.find((x) => x.rate === rate && x.policy === 'off');
    for (const policy of ['auto', 'paper'] as const) {
      const cell = all.find((x) => x.rate === rate && x.policy === policy);
      if (!off || !cell) continue;
      const beats = cell.measured < off.measured;
      // Paired: run r of every plan at one μ drew the same times to failure.
      const pairs = cell.runs.flatMap((x) => {
        const o = off.runs.find((y) => y.rep === x.rep);
        return o ? [x.startToFinishSeconds < o.startToFinishSeconds] : [];
      });
      const paired = pairs.length > 0 ? `; faster than \`off\` on the same draws in ${pairs.filter(Boolean).length} of ${pairs.length} paired runs` : '';
      lines.push(`- μ = ${rate}: \`${policy}\` ${f1(cell.measured)} s vs \`off\` ${off.censored > 0 ? '≥ ' : ''}${f1(off.measured)} s: ${beats ? 'beats no-checkpointing' : '**does not beat no-checkpointing**'}${cell.runs.length < 3 ? ` (only ${cell.runs.length} run${cell.runs.length === 1 ? '' : 's'})` : ''}${paired}.`);
    }
  }
  for (const cell of all) {
    const off = cell.measured / cell.exact - 1;
    if (!(Math.abs(off) > 0.15)) continue;
    const why: string[] = [];
    if (cell.censored > 0) why.push(`${cell.censored} of its runs were cut at ${e.capFactor}·T, so the measured mean is a lower bound of a mean the model puts at ${f1(cell.exact)} s`);
    if (Number.isFinite(cell.ci) && cell.ci / cell.measured > 0.15) why.push(`its 95% CI (± ${f1(cell.ci)} s) is itself wider than 15%: ${cell.runs.length} runs cannot pin the mean down`);
    if (cell.runs.length < 2) why.push('a single run: one draw of a random completion time, not a mean');
    const mtbf = cell.runs[0]?.mtbfSeconds ?? 1;
    const injectorGap = cell.injector / cell.exact - 1;
    if (Math.abs(injectorGap) > 0.05) why.push(`with R = ${f1(r)} s against M = ${f1(mtbf)} s the exact model's assumption that failures also strike restarts adds ${pct(-injectorGap)}, which this injector never does (the injector column is ${pct(cell.measured / cell.injector - 1)} off)`);
    const interval = cell.runs[0]?.intervalSeconds ?? null;
    if (interval !== null && interval < (c + k.commit) * 1.2) why.push(`its interval (${interval.toFixed(2)} s) is close to or below a whole checkpoint (${f1(c)} s frozen + ${f1(k.commit)} s to commit): the worker skips a tick while the previous checkpoint is unfinished, so fewer are taken than planned (${mean(cell.runs.map((x) => x.checkpoints)).toFixed(1)} per run vs ${cell.segments === null ? '?' : cell.segments - 1})`);
    const processGap = cell.process / cell.exact - 1;
    if (Math.abs(processGap) > 0.05) why.push(`the exact model's checkpoint is safe once its C ends; here it becomes a resume point ${f1(k.commit)} s later, ticks run on wall time, and failures spare restarts: this process's model predicts ${f1(cell.process)} s (${pct(processGap)} vs exact), and the measurement is ${pct(cell.measured / cell.process - 1)} from it${inCi(cell, cell.process) === 'yes' ? ', inside its 95% CI' : ''}`);
    const replayed = mean(cell.replayed);
    if (Number.isFinite(replayed)) {
      const gap = cell.measured / replayed - 1;
      why.push(`fed these runs' own times to failure and restarts, this process's model gives ${f1(replayed)} s (${pct(replayed / cell.exact - 1)} vs exact), and the measurement is ${pct(gap)} from that${cell.censored > 0 ? ' (both cut at the cap)' : Math.abs(gap) <= 0.15 ? ': the draws, not the system, make the gap' : ': see the runs where model and measurement part in the last table (a failure just before or after a commit decides whether a checkpoint survives; the model uses mean costs)'}`);
    }
    const failures = mean(cell.runs.map((x) => x.failures));
    const expected = cell.muT * (cell.measured / e.workSeconds);
    if (failures < expected * 0.6 || failures > expected * 1.6) why.push(`its runs met ${failures.toFixed(1)} failures on average where the rate predicts ~${expected.toFixed(1)} over that time: the few draws were ${failures < expected ? 'kind' : 'unkind'}`);
    if (why.length === 0) why.push('no cause visible in its numbers');
    lines.push(`- μ = ${cell.rate}, \`${cell.policy}\`: measured ${f1(cell.measured)} s vs exact ${f1(cell.exact)} s (${pct(off)}): ${why.join('; ')}.`);
  }
  if (lines.length === 0) lines.push('- Every cell is within 15% of the exact model.');
  return lines;
}

export async function writeReport(e: Experiment, out: string): Promise<void> {
  // C is what a checkpoint costs the job: its freeze where recorded, else the whole call.
  const allCheckpoints = e.runs.flatMap((r) => r.checkpointFrozenSeconds ?? r.checkpointSeconds);
  const frozenRecorded = e.runs.every((r) => r.checkpointFrozenSeconds !== undefined);
  const allRestarts = e.runs.flatMap((r) => r.restartSeconds);
  const c = allCheckpoints.length > 0 ? mean(allCheckpoints) : e.assumedCheckpointSeconds;
  const r = allRestarts.length > 0 ? mean(allRestarts) : e.assumedRestartSeconds;
  // The commit window where measured; else the export part of the call (the copy and the commit come on top).
  const commits = e.runs.flatMap((x) => x.checkpointCommitSeconds ?? []);
  const exports = e.runs.flatMap((x) => x.checkpointSeconds.map((d, i) => Math.max(0, d - (x.checkpointFrozenSeconds?.[i] ?? d))));
  const commitMeasured = commits.length > 0;
  const commit = commitMeasured ? mean(commits) : exports.length > 0 ? mean(exports) : 0;
  const measuredCosts: Costs = { c, commit, r };
  const all = cells(e, measuredCosts);
  if (all.length > 0) await plots(all, out);

  const label = (cell: Cell): string => (cell.policy === 'paper' && cell.runs.every((x) => x.policy === 'off') ? 'paper (= off: k = 0)' : cell.policy);
  const main = all.map((cell) => [
    String(cell.rate),
    cell.muT.toFixed(2),
    label(cell),
    cell.segments === null ? '?' : String(cell.segments - 1),
    `${cell.runs.length}${cell.censored > 0 ? ` (${cell.censored} cut at the cap)` : ''}`,
    `${cell.censored > 0 ? '≥ ' : ''}${f1(cell.measured)} ± ${f1(cell.ci)}`,
    f1(cell.exact),
    pct(cell.measured / cell.exact - 1),
    inCi(cell, cell.exact),
    `${f1(cell.monteCarlo)} ± ${f1(1.96 * cell.monteCarloSe)}`,
    `${f1(cell.process)} ± ${f1(1.96 * cell.processSe)}`,
    inCi(cell, cell.process),
    f1(mean(cell.replayed)),
    pct(cell.measured / mean(cell.replayed) - 1),
  ]);
  const costs = all.map((cell) => {
    const runs = cell.runs;
    return [
      String(cell.rate),
      label(cell),
      f1(mean(runs.map((x) => x.submitToFinishSeconds))),
      mean(runs.map((x) => x.failures)).toFixed(2),
      f1(mean(runs.map((x) => sum(x.workLostSeconds)))),
      mean(runs.map((x) => x.checkpoints)).toFixed(1),
      (mean(runs.map((x) => x.checkpointBytes)) / 1e6).toFixed(1),
      `${sum(runs.map((x) => x.restoredAttempts))}/${sum(runs.map((x) => x.failures))}`,
      f1(mean(runs.map((x) => x.jobCpuSeconds))),
      f1(mean(runs.map((x) => x.nodeCpuSeconds))),
    ];
  });
  const autoRows = e.runs
    .filter((x) => x.policy === 'auto')
    .map((x) => [String(x.rate), String(x.rep), x.policy0 ? `${x.policy0.mode} ${x.policy0.intervalSeconds === null ? '' : `${x.policy0.intervalSeconds.toFixed(1)} s`}` : '–', x.policyEnd ? `${x.policyEnd.mode} ${x.policyEnd.intervalSeconds === null ? '' : `${x.policyEnd.intervalSeconds.toFixed(1)} s`}: ${x.policyEnd.reason}` : '–']);
  const replayedOf = new Map<RunResult, number>();
  for (const cell of all) cell.runs.forEach((x, i) => x.policy === cell.policy && replayedOf.set(x, cell.replayed[i] ?? Number.NaN));
  const perRun = e.runs.map((x) => [String(x.rate), x.policy, String(x.rep), String(x.seed), x.state, f1(x.submitToFinishSeconds), f1(x.startToFinishSeconds), f1(replayedOf.get(x) ?? Number.NaN), String(x.failures), x.draws.map((d) => d.toFixed(1)).join(' '), x.restartSeconds.map((d) => d.toFixed(1)).join(' '), x.workLostSeconds.map((d) => d.toFixed(1)).join(' '), String(x.checkpoints)]);

  const text = [
    `# Checkpointing on a real cluster: the prototype's experiment${e.quick ? ' (QUICK smoke run)' : ''}`,
    '',
    'Written by `bench/experiments/run.ts` (`make experiments`); rewritten after every run; never edited by hand. The raw measurements are in `results.json` next to this file.',
    '',
    '## What ran',
    '',
    `- Command: \`${e.command}\`; started ${e.startedAt.slice(0, 16).replace('T', ' ')} UTC; ${(e.wallSeconds / 60).toFixed(1)} min so far; ${e.runs.length} runs${e.failedRuns?.length ? `, ${e.failedRuns.length} failed (listed at the end)` : ''}.`,
    `- Machine: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}; load average now ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}. Shared with other work.`,
    `- Binary: \`${e.binary}\` (a copy of dist/workrs).`,
    `- Scale ${e.scale}: T = ${e.workSeconds} s of work (the prototype's 300 s × ${e.scale}) and 1/μ × ${e.scale}, so μ·T is the prototype's. Rates μ (prototype, per s): ${e.rates.join(', ')}; ${e.reps} repetition${e.reps === 1 ? '' : 's'} per cell, paired seeds (seed 1000·rep + rate index: run r of every plan at one μ draws the same times to failure).`,
    `- Job: \`bench/experiments/job.py\` in \`workrs/python:3\` (python3 -c): ${e.workSeconds / 0.1} steps of 0.1 s (a SHA-256 over 4 KiB of a 4 MiB random state, then sleep out the step), progress only in memory; \`estimateSeconds\` = T, \`memoryMB\` ${e.memoryMB ?? 64}.`,
    '- Cluster: for every run a fresh 3-node cluster of `workrs start --runtime docker` processes on loopback (test/process/harness.ts), default timings (lease 2 s, node timeout 3 s).',
    '- Faults: at each (re)start of the job (its attempt\'s `startedAt`) a time to failure F = −ln(U)/μ (scaled) is drawn; when it expires while that attempt runs, the box running the job is destroyed: `kill -9` of its workrs process, its containers removed (labels `workrs.cluster` + `workrs.node`), its data folder deleted; a fresh node (new id, empty data folder) joins through a live node. A loss is only injected when the cluster has 3 live voters (no two boxes down at once); the wait is recorded (`healthWaitSeconds` in results.json).',
    `- Plans: \`off\`; \`paper\`: interval T/(k+1) with k from the paper model (paperOptimum) with an assumed C = ${e.assumedCheckpointSeconds} s, fixed before any measurement (where k = 0 the paper runs are the \`off\` runs); \`fixed-15\`: interval T/16 (at least 1 s, the API's minimum); \`auto\`: Workrs' online policy (src/scheduler/policy.ts).`,
    `- \`auto\`'s priors (node --config): mtbfPriorSeconds = the scaled 1/μ, mtbfPriorWeight = ${e.mtbfPriorWeight}, restartPriorSeconds = ${e.assumedRestartSeconds}. The weight keeps M at the injector's rate: the leader estimates a per-box rate from the losses over the up-time of all boxes, but the injector only ever destroys the job's box, so the cluster-wide rate is μ/3 and learning it would mislead the job's plan. The prior plays the part of the μ the prototype's model was given. C is measured by the leader from the job's own checkpoints (first one predicted from memoryMB), R from the cluster's restores.`,
    `- Runs are cut at ${e.capFactor}·T = ${e.capFactor * e.workSeconds} s (then reported as "≥", a lower bound).`,
    '- Measured: completion from submit and from first start to finished (API timestamps); failures; work lost per failure (the job\'s last progress line before the kill minus where the next attempt resumed, from the containers\' own logs); checkpoints committed and their bytes (the sum of committed bundle sizes: each is stored once and copied to one more node); CPU-seconds of the job\'s containers (cgroup v1 `cpuacct.usage`, last reading before each container went) and of the three-plus workrs node processes (`/proc/<pid>/stat` utime + stime). CRIU, dockerd and containerd are not counted.',
    '',
    '## Measured costs',
    '',
    `- C (one checkpoint: ${frozenRecorded ? "the job's freeze, the checkpoint record's \`frozenMs\` (with the CRIU capture hook: the dump's freeze, read from the job's freezer cgroup; without it: pause → CRIU dump → commit → unpause; the export runs while the job does)" : "the checkpoint record's \`durationMs\`, the whole call (pause → CRIU dump → commit → unpause → bundle export): these runs did not record \`frozenMs\`, so C is overestimated"}): mean ${f1(c)} s over ${allCheckpoints.length} checkpoints${allCheckpoints.length > 0 ? ` (min ${Math.min(...allCheckpoints).toFixed(2)}, max ${Math.max(...allCheckpoints).toFixed(2)})` : ' (none measured: the assumed value)'}.`,
    `- R (box destroyed → the job's next attempt started, as the cluster recorded it): mean ${f1(r)} s over ${allRestarts.length} failures${allRestarts.length > 0 ? ` (min ${Math.min(...allRestarts).toFixed(1)}, max ${Math.max(...allRestarts).toFixed(1)})` : ' (none measured: the assumed value)'}.`,
    '',
    '## Completion time: measured vs predicted',
    '',
    `Measured: mean of first start → finished ± the 95% CI half-width (Student t; – with one run). Exact: T(n) of docs/checkpoint-model.md with W = T, M = the scaled 1/μ, C = ${f1(c)} s and R = ${f1(r)} s as measured above, n = the plan's segments (auto: the leader's first plan). Injector: the same model with restarts that no failure interrupts (this experiment's injector draws F only once the job runs again, so a failure costs exactly R: M·e^{R/M} → M + R). Monte Carlo (exact): simulateCompletion, ${MONTE_CARLO_RUNS} runs of the exact model's process, mean ± 1.96 SE. "In the CI": whether the prediction lies inside the measured mean's 95% CI (– with one run, "cut" when runs hit the cap).`,
    '',
    `This process: a Monte Carlo (${MONTE_CARLO_RUNS} runs, bench/experiments/process-model.ts) of what the cluster does, with the same measured numbers plus one more: checkpoints start on the worker's wall-clock timer and a tick is skipped while the previous checkpoint is unfinished; a checkpoint freezes the job for C = ${f1(c)} s but becomes a resume point only ${f1(commit)} s later (${commitMeasured ? 'measured: freeze end → commit, from ranMs and the commit time' : 'the export part of the call; the copy and the commit were not measured in these runs'}), and a failure in that window loses it; failures strike only running attempts (the injector's rule), each costing R; \`auto\` re-plans with the online policy at every start and commit on the remaining work (with the measured C and R and M = 1/μ). The exact model has none of these: its checkpoint is safe the moment its C ends. "On the runs' draws": the same model fed each run's own times to failure and restarts (the F and R columns of the last table) and its own mean freeze and commit window, cut at the cap like the run: what the model says these very runs should have taken, free of the luck of the draws that a handful of runs cannot average out.`,
    '',
    table(['μ (1/s)', 'μ·T', 'plan', 'checkpoints', 'runs', 'measured s', 'exact s', 'vs exact', 'exact in the CI', 'Monte Carlo (exact) s', 'this process s', 'process in the CI', 'this process on the runs\' draws s', 'vs draws'], main),
    '',
    '![completion time vs μT](completion-vs-muT.svg)',
    '',
    '![measured vs predicted](measured-vs-predicted.svg)',
    '',
    '## What each plan cost',
    '',
    'Means per run. Submit → finished includes placing the job and starting its first container.',
    '',
    table(['μ (1/s)', 'plan', 'submit → finished s', 'failures', 'work lost s', 'checkpoints', 'checkpoint MB', 'resumed from a checkpoint / failures', 'job CPU s', 'node processes CPU s'], costs),
    '',
    ...(autoRows.length > 0 ? ['## What `auto` decided', '', 'The leader\'s first plan and its last (with the numbers it used).', '', table(['μ', 'rep', 'first plan', 'last plan'], autoRows), ''] : []),
    '## Where the measurements and the model disagree, and why',
    '',
    ...disagreements(all, measuredCosts, e),
    '',
    '## Every run',
    '',
    table(['μ', 'plan', 'rep', 'seed', 'state', 'submit → end s', 'start → end s', 'model on its draws s', 'failures', 'draws F s', 'R per failure s', 'work lost per failure s', 'checkpoints'], perRun),
    ...(e.failedRuns?.length ? ['', 'Runs that failed (not in the figures):', '', ...e.failedRuns.map((x) => `- ${x}`)] : []),
    '',
  ].join('\n');
  await writeFile(join(out, 'REPORT.md'), text);
}
