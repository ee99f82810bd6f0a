// The experiments' report: from the measured runs (run.ts) to <out>/REPORT.md, with
// the exact model's prediction for every cell (using C and R as measured in the same
// runs), a Monte Carlo of the same grid (src/policy simulateCompletion, 10,000 runs
// per cell), the differences between plans paired by seed with their CIs, conclusions
// where those allow them, and the figures (figures.ts). Rewritten after every run, so it
// always shows what has been measured so far.
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { exactExpectedSeconds, PROTOTYPE_FIXED_CHECKPOINTS, simulateCompletion, type ModelInput } from '../../src/policy/index.js';
import { onlinePolicy } from '../../src/policy/online.js';
import { replay, simulateProcess, simulateProcessRun, type ProcessInput } from './process-model.js';
import { SeededRandom } from '../../src/policy/random.js';
import { table } from '../stats.js';
import { halfWidth, isOffAgain, mean, muTOf, pairedDifference, POLICIES, remaining, runsOf, sum, targetCells, TARGET_MU_T, TARGET_RELATIVE_HALF_WIDTH, TARGET_RUNS, verdict, type Difference } from './cell-stats.js';
import { figures, modelCrossover, render, type Figure, type FigureInput } from './figures.js';

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

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
const pct = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%` : '–');

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
        muT: muTOf(rate, e.workSeconds, e.scale),
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

/** What the figures draw: the cells (paper's k = 0 cells are `off`'s runs, drawn once), each plan against `off` paired by seed, the model's inputs. */
function figureInput(all: readonly Cell[], e: Experiment, k: Costs): FigureInput {
  const shown = all.filter((cell) => !isOffAgain(cell.policy, cell.runs));
  const differences = shown.flatMap((cell) => {
    const d = cell.policy === 'off' ? null : pairedDifference(e, cell.rate, cell.policy, 'off');
    if (d === null) return [];
    const ci = Number.isFinite(d.ciSeconds) ? d.ciSeconds : 0;
    return [{ muT: cell.muT, plan: cell.policy, relative: d.meanSeconds / d.baseSeconds, low: (d.meanSeconds - ci) / d.baseSeconds, high: (d.meanSeconds + ci) / d.baseSeconds, cut: d.cut !== 'none' }];
  });
  return {
    plans: POLICIES,
    cells: shown.map((cell) => ({ muT: cell.muT, plan: cell.policy, measured: cell.measured, ci: cell.ci, cut: cell.censored > 0, exact: cell.exact, process: cell.process })),
    differences,
    model: { workSeconds: e.workSeconds, checkpointSeconds: k.c, restartSeconds: k.r, assumedCheckpointSeconds: e.assumedCheckpointSeconds, fixedCheckpoints: PROTOTYPE_FIXED_CHECKPOINTS },
  };
}

/** Renders and writes every figure; a figure that fails its checks is written all the same, and said so on stderr. */
async function writeFigures(all: readonly Figure[], out: string): Promise<void> {
  for (const f of all) {
    const { svg, problems } = await render(f.spec);
    await writeFile(join(out, f.file), svg);
    for (const p of problems) console.error(`report: ${f.file}: ${p}`);
  }
}

/** Every pair of distinct plans at every rate (off first as the base), paired by seed. */
function differences(e: Experiment, all: readonly Cell[]): Difference[] {
  const out: Difference[] = [];
  for (const rate of [...new Set(all.map((x) => x.rate))]) {
    const plans = all.filter((x) => x.rate === rate && !isOffAgain(x.policy, x.runs)).map((x) => x.policy);
    for (const [i, b] of plans.entries()) {
      for (const a of plans.slice(i + 1)) {
        const d = pairedDifference(e, rate, a, b);
        if (d !== null) out.push(d);
      }
    }
  }
  return out;
}

const bound = (d: Difference): string => (d.cut === 'a' ? '≥ ' : d.cut === 'b' ? '≤ ' : d.cut === 'both' ? '? ' : '');

function saying(d: Difference): string {
  const v = verdict(d);
  const by = `${f1(Math.abs(d.meanSeconds))} s (${pct(Math.abs(d.meanSeconds) / d.baseSeconds).slice(1)} of \`${d.b}\`)`;
  if (v === 'a') return `\`${d.a}\` faster by ${d.cut === 'b' ? 'at least ' : ''}${by}`;
  if (v === 'b') return `\`${d.b}\` faster by ${d.cut === 'a' ? 'at least ' : ''}${by}`;
  if (d.pairs < 2) return 'one pair: no CI';
  if (d.cut === 'both') return 'both cut at the cap';
  return 'the CI holds 0: not told apart';
}

function differenceRows(ds: readonly Difference[], e: Experiment): string[][] {
  return ds.map((d) => [muTOf(d.rate, e.workSeconds, e.scale).toFixed(2), `\`${d.a}\` − \`${d.b}\``, String(d.pairs), `${bound(d)}${f1(d.meanSeconds)} ± ${f1(d.ciSeconds)}`, pct(d.meanSeconds / d.baseSeconds), saying(d)]);
}

/** The paragraph per rate and the crossover, in plain words, from the paired CIs only. */
function conclusions(all: readonly Cell[], ds: readonly Difference[], e: Experiment, k: Costs): string[] {
  const lines: string[] = [];
  const rates = [...new Set(all.map((x) => x.rate))].sort((a, b) => a - b);
  const model = { workSeconds: e.workSeconds, checkpointSeconds: k.c, restartSeconds: k.r, assumedCheckpointSeconds: e.assumedCheckpointSeconds, fixedCheckpoints: PROTOTYPE_FIXED_CHECKPOINTS };
  const find = (rate: number, a: PolicyName, b: PolicyName): { d: Difference; flipped: boolean } | null => {
    const d = ds.find((x) => x.rate === rate && ((x.a === a && x.b === b) || (x.a === b && x.b === a)));
    return d === undefined ? null : { d, flipped: d.a !== a };
  };
  for (const rate of rates) {
    const here = all.filter((x) => x.rate === rate && !isOffAgain(x.policy, x.runs) && Number.isFinite(x.measured));
    const best = [...here].sort((a, b) => a.measured - b.measured)[0];
    if (best === undefined) continue;
    const muT = muTOf(rate, e.workSeconds, e.scale).toFixed(2);
    const beaten: string[] = [];
    const tied: string[] = [];
    for (const other of here) {
      if (other === best) continue;
      const found = find(rate, best.policy, other.policy);
      if (found === null) continue;
      const v = verdict(found.d);
      const wins = (v === 'a' && !found.flipped) || (v === 'b' && found.flipped);
      const gap = `${f1(Math.abs(found.d.meanSeconds))} s ± ${f1(found.d.ciSeconds)}`;
      // d = a − b over the pairs, base = b's mean there: the other plan's mean is b's unless flipped.
      const otherMean = found.flipped ? found.d.baseSeconds + found.d.meanSeconds : found.d.baseSeconds;
      const atLeast = found.d.cut !== 'none' ? 'at least ' : '';
      if (wins) beaten.push(`\`${other.policy}\` by ${atLeast}${gap} (${pct(Math.abs(found.d.meanSeconds) / otherMean).slice(1)} of its time)`);
      else tied.push(`\`${other.policy}\` (${gap}, ${found.d.pairs} pairs)`);
    }
    const runs = Math.min(...here.map((x) => x.runs.length));
    const head = `- μ·T ${muT} (${runs}${Math.max(...here.map((x) => x.runs.length)) > runs ? '+' : ''} runs per plan): \`${best.policy}\` has the lowest mean, ${best.censored > 0 ? '≥ ' : ''}${f1(best.measured)} s.`;
    const won = beaten.length > 0 ? ` It is faster than ${beaten.join(', ')}, paired 95% CI clear of 0.` : '';
    const open = tied.length > 0 ? ` The CIs do not tell it apart from ${tied.join(', ')}${beaten.length === 0 ? ': no plan is shown fastest here' : ''}.` : '';
    lines.push(head + won + open);
  }
  // Where checkpointing starts to pay: per plan, the rates where its paired CI against off is below 0.
  lines.push('');
  for (const plan of POLICIES.filter((p) => p !== 'off')) {
    const per = rates.flatMap((rate) => {
      const cell = all.find((x) => x.rate === rate && x.policy === plan);
      if (cell === undefined || isOffAgain(plan, cell.runs)) return [];
      const found = find(rate, plan, 'off');
      if (found === null) return [];
      const v = verdict(found.d);
      const pays = (v === 'a' && !found.flipped) || (v === 'b' && found.flipped);
      const costs = (v === 'b' && !found.flipped) || (v === 'a' && found.flipped);
      return [{ muT: muTOf(rate, e.workSeconds, e.scale), pays, costs }];
    });
    if (per.length === 0) continue;
    const firstPaying = per.findIndex((x, i) => per.slice(i).every((y) => y.pays));
    const lastNot = firstPaying > 0 ? per[firstPaying - 1] : undefined;
    const atModel = modelCrossover(plan, model);
    const modelText = atModel === null ? 'the model says it never beats `off` in μ·T ≤ 20' : `the model puts the crossover at μ·T ≈ ${atModel.toFixed(2)}`;
    let measured: string;
    if (firstPaying === -1) measured = `measured, it pays at no rate with a paired CI clear of 0${per.some((x) => x.costs) ? ` and costs at μ·T ${per.filter((x) => x.costs).map((x) => x.muT.toFixed(2)).join(', ')}` : ''}`;
    else if (lastNot === undefined) measured = `measured, it pays from the lowest rate run (μ·T ${per[0]?.muT.toFixed(2)}) on`;
    else measured = `measured, it pays from μ·T ${per[firstPaying]?.muT.toFixed(2)} on and not at ${lastNot.muT.toFixed(2)} (${lastNot.costs ? 'where it costs' : 'not told apart there'}): the crossover lies between ${lastNot.muT.toFixed(2)} and ${per[firstPaying]?.muT.toFixed(2)}`;
    lines.push(`- Checkpointing with \`${plan}\`: ${measured}; ${modelText} (exact model, measured C and R${plan === 'auto' ? ', the best count' : plan === 'paper' ? ', the paper\'s count from the assumed C' : ''}).`);
  }
  return lines;
}

/** How many runs each target cell has, against the target, and what is left to run. */
function runsSection(e: Experiment): string[] {
  const cells = targetCells(e);
  if (cells.length === 0) return [`No cell at μ·T ${TARGET_MU_T.join(' or ')} in these runs.`];
  const left = remaining(e);
  const rows = cells.map((c) => [c.muT.toFixed(2), c.policy, String(c.runs), pct(c.relativeHalfWidth).replace('+', '± '), c.enough ? 'yes' : 'no', f1(c.runWallSeconds)]);
  const todo = left.length === 0 ? ['Every target cell has enough runs.'] : [`Left to run: ${left.map((x) => `${x.reps} more repetition${x.reps === 1 ? '' : 's'} at μ·T ${x.muT.toFixed(2)} (~${(x.seconds / 60).toFixed(0)} min)`).join(', ')}; about ${(sum(left.map((x) => x.seconds)) / 60).toFixed(0)} min in all, at these runs' mean wall times. \`make experiments RESUME=1 RATES=${left.map((x) => x.rate).join(',')}\` does it in invocations that start no run after MINUTES (default 45), so each ends within that plus one run; repeat it until this section says every cell has enough.`];
  return [
    `The plans differ at μ·T ${TARGET_MU_T.join(' and ')}: each cell there needs ${TARGET_RUNS} runs, or fewer once its 95% CI half-width is at most ${(TARGET_RELATIVE_HALF_WIDTH * 100).toFixed(0)}% of its mean. (The CI of a cell with runs cut at the cap is that of a lower bound.)`,
    '',
    table(['μ·T', 'plan', 'runs', 'CI half-width / mean', 'enough', 'wall s per run'], rows),
    '',
    ...todo,
  ];
}

function inCi(cell: Cell, x: number): string {
  if (cell.censored > 0) return 'cut';
  if (!Number.isFinite(cell.ci) || !Number.isFinite(x)) return '–';
  return Math.abs(cell.measured - x) <= cell.ci ? 'yes' : 'no';
}

/** Every cell more than 15% from the exact model, each with the causes its own numbers show. */
function disagreements(all: Cell[], k: Costs, e: Experiment): string[] {
  const { c, r } = k;
  const lines: string[] = [];
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

/** C, the commit window and R as these runs measured them (the assumed values before any was). */
function measuredCostsOf(e: Experiment): Costs & { checkpoints: number[]; restarts: number[]; frozenRecorded: boolean; commitMeasured: boolean } {
  // C is what a checkpoint costs the job: its freeze where recorded, else the whole call.
  const checkpoints = e.runs.flatMap((r) => r.checkpointFrozenSeconds ?? r.checkpointSeconds);
  const restarts = e.runs.flatMap((r) => r.restartSeconds);
  // The commit window where measured; else the export part of the call (the copy and the commit come on top).
  const commits = e.runs.flatMap((x) => x.checkpointCommitSeconds ?? []);
  const exports = e.runs.flatMap((x) => x.checkpointSeconds.map((d, i) => Math.max(0, d - (x.checkpointFrozenSeconds?.[i] ?? d))));
  return {
    c: checkpoints.length > 0 ? mean(checkpoints) : e.assumedCheckpointSeconds,
    r: restarts.length > 0 ? mean(restarts) : e.assumedRestartSeconds,
    commit: commits.length > 0 ? mean(commits) : exports.length > 0 ? mean(exports) : 0,
    checkpoints,
    restarts,
    frozenRecorded: e.runs.every((r) => r.checkpointFrozenSeconds !== undefined),
    commitMeasured: commits.length > 0,
  };
}

/** The figures the report of these runs shows (what writeReport renders into its folder). */
export function reportFigures(e: Experiment): Figure[] {
  const costs = measuredCostsOf(e);
  const all = cells(e, costs);
  return all.length > 0 ? figures(figureInput(all, e, costs)) : [];
}

export async function writeReport(e: Experiment, out: string): Promise<void> {
  const measuredCosts = measuredCostsOf(e);
  const { c, r, commit, frozenRecorded, commitMeasured, checkpoints: allCheckpoints, restarts: allRestarts } = measuredCosts;
  const all = cells(e, measuredCosts);
  const shownFigures = all.length > 0 ? figures(figureInput(all, e, measuredCosts)) : [];
  await writeFigures(shownFigures, out);
  const paired = differences(e, all);

  const label = (cell: Cell): string => (isOffAgain(cell.policy, cell.runs) ? 'paper (= off: k = 0)' : cell.policy);
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
    'Written by `bench/experiments/run.ts` (`make experiments`); rewritten after every run, or from `results.json` alone with `--report-only`; never edited by hand. The raw measurements are in `results.json` next to this file.',
    '',
    '## What ran',
    '',
    `- Command: \`${e.command}\`; started ${e.startedAt.slice(0, 16).replace('T', ' ')} UTC; ${(e.wallSeconds / 60).toFixed(1)} min so far; ${e.runs.length} runs${e.failedRuns?.length ? `, ${e.failedRuns.length} failed (listed at the end)` : ''}.`,
    `- Machine: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}; load average when this report was written ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}. Shared with other work.`,
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
    ...shownFigures.flatMap((f) => [`![${f.alt}](${f.file})`, '']),
    '## Runs per cell',
    '',
    ...runsSection(e),
    '',
    '## Differences between plans, paired by seed',
    '',
    'Run r of every plan at one μ draws the same times to failure (the same seed), so each difference is taken run by run on the same draws: mean of a − b over the seeds both ran ± the 95% CI half-width of that mean (paired Student t; – with one pair). Negative: `a` is faster. "≤" where `b` had runs cut at the cap (the difference is at most this), "≥" where `a` had.',
    '',
    table(['μ·T', 'a − b', 'pairs', 'a − b s', 'relative to b', 'what the CI says'], differenceRows(paired, e)),
    '',
    '## Conclusions',
    '',
    'From the paired CIs above only: a plan is called faster where the 95% CI of its paired difference lies clear of 0.',
    '',
    ...conclusions(all, paired, e, measuredCosts),
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
