// The statistics the experiment's report and its run loop share: a cell's runs, the 95%
// CI of its mean, differences between plans paired by seed (run r of every plan at one
// μ draws the same times to failure, so a difference on the same seed cancels the luck
// of the draws), and how far the cells the report must conclude on are from enough runs.
import type { Experiment, PolicyName, RunResult } from './report.js';

export const POLICIES: readonly PolicyName[] = ['off', 'paper', 'fixed-15', 'auto'];

/** The rates (as μ·T) where the plans differ and the report must say which is faster. */
export const TARGET_MU_T: readonly number[] = [0.9, 3.93];
/** A target cell has enough runs at this many, or once its CI half-width is at most… */
export const TARGET_RUNS = 10;
/** …this fraction of its mean. */
export const TARGET_RELATIVE_HALF_WIDTH = 0.15;

export const mean = (xs: readonly number[]): number => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** μ·T of a rate, rounded as the report prints it (the floating product would print 0.030000000000000002). */
export const muTOf = (rate: number, workSeconds: number, scale: number): number => Math.round((rate * workSeconds) / scale * 100) / 100;

/** Two-sided 95% quantile of Student's t with `df` degrees of freedom. */
export function t95(df: number): number {
  const table95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];
  return table95[df - 1] ?? 1.96 + 2.5 / df;
}

/** Half-width of the 95% confidence interval of the mean; NaN with fewer than 2 values. */
export function halfWidth(xs: readonly number[]): number {
  if (xs.length < 2) return Number.NaN;
  const m = mean(xs);
  const variance = sum(xs.map((x) => (x - m) ** 2)) / (xs.length - 1);
  return t95(xs.length - 1) * Math.sqrt(variance / xs.length);
}

/** The runs of one cell: `off` runs count for `paper` too where the paper model chose no checkpoint. */
export function runsOf(e: Experiment, rate: number, policy: PolicyName): RunResult[] {
  return e.runs.filter((r) => r.rate === rate && (r.policy === policy || (policy === 'paper' && r.policy === 'off' && r.alsoPaper)));
}

/** `paper` where the paper model chose no checkpoint: its runs are `off`'s, not a plan of its own. */
export const isOffAgain = (policy: PolicyName, runs: readonly RunResult[]): boolean => policy === 'paper' && runs.length > 0 && runs.every((x) => x.policy === 'off');

export interface Difference {
  rate: number;
  a: PolicyName;
  b: PolicyName;
  /** Seeds both plans ran. */
  pairs: number;
  /** Mean of a − b over the pairs (completion, first start → finished), seconds. */
  meanSeconds: number;
  /** 95% CI half-width of that mean (paired t); NaN with one pair. */
  ciSeconds: number;
  /** b's mean over the same pairs: what the difference is relative to. */
  baseSeconds: number;
  /** Runs cut at the cap: a's cut → the difference is a lower bound; b's → an upper one; both → neither. */
  cut: 'none' | 'a' | 'b' | 'both';
}

/** a − b at one rate over the seeds both ran; null where they share no seed. */
export function pairedDifference(e: Experiment, rate: number, a: PolicyName, b: PolicyName): Difference | null {
  const bySeed = (runs: readonly RunResult[]): Map<number, RunResult> => new Map(runs.map((x) => [x.seed, x]));
  const ra = bySeed(runsOf(e, rate, a));
  const rb = bySeed(runsOf(e, rate, b));
  const pairs = [...ra.entries()].flatMap(([seed, x]) => {
    const y = rb.get(seed);
    return y === undefined ? [] : [[x, y] as const];
  });
  if (pairs.length === 0) return null;
  const cutA = pairs.some(([x]) => x.censored);
  const cutB = pairs.some(([, y]) => y.censored);
  const diffs = pairs.map(([x, y]) => x.startToFinishSeconds - y.startToFinishSeconds);
  return {
    rate,
    a,
    b,
    pairs: pairs.length,
    meanSeconds: mean(diffs),
    ciSeconds: halfWidth(diffs),
    baseSeconds: mean(pairs.map(([, y]) => y.startToFinishSeconds)),
    cut: cutA && cutB ? 'both' : cutA ? 'a' : cutB ? 'b' : 'none',
  };
}

/** What a paired difference says: a faster, b faster, or the CI holds 0 (or there is no CI). */
export function verdict(d: Difference): 'a' | 'b' | 'open' {
  if (!Number.isFinite(d.ciSeconds) || d.cut === 'both') return 'open';
  // A cut run's time is a lower bound: a − b only moves down when b's is, up when a's is.
  if (d.meanSeconds + d.ciSeconds < 0 && d.cut !== 'a') return 'a';
  if (d.meanSeconds - d.ciSeconds > 0 && d.cut !== 'b') return 'b';
  return 'open';
}

export interface TargetCell {
  rate: number;
  muT: number;
  policy: PolicyName;
  runs: number;
  /** CI half-width / mean; NaN with fewer than 2 runs. */
  relativeHalfWidth: number;
  enough: boolean;
  /** Mean wall time one more run of this cell takes: its runs' submit → end plus a cluster's start and stop. */
  runWallSeconds: number;
}

/** The cells at the target rates of this experiment, with whether each has enough runs yet. */
export function targetCells(e: Experiment): TargetCell[] {
  const overhead = clusterOverheadSeconds(e);
  const out: TargetCell[] = [];
  for (const rate of e.rates) {
    const muT = muTOf(rate, e.workSeconds, e.scale);
    if (!TARGET_MU_T.includes(muT)) continue;
    for (const policy of POLICIES) {
      const runs = runsOf(e, rate, policy);
      if (runs.length === 0 || isOffAgain(policy, runs)) continue;
      const times = runs.map((x) => x.startToFinishSeconds);
      const relativeHalfWidth = halfWidth(times) / mean(times);
      out.push({
        rate,
        muT,
        policy,
        runs: runs.length,
        relativeHalfWidth,
        enough: runs.length >= TARGET_RUNS || relativeHalfWidth <= TARGET_RELATIVE_HALF_WIDTH,
        runWallSeconds: mean(runs.map((x) => x.submitToFinishSeconds)) + overhead,
      });
    }
  }
  return out;
}

/**
 * What one run costs beyond its job: starting and stopping its cluster, as this
 * experiment measured it (its wall time minus the jobs' own submit → end); 20 s before
 * anything ran.
 */
export function clusterOverheadSeconds(e: Experiment): number {
  if (e.runs.length === 0) return 20;
  return Math.max(0, (e.wallSeconds - sum(e.runs.map((x) => x.submitToFinishSeconds))) / e.runs.length);
}

/** Whether a rate still needs runs: one of its target cells is short. */
export const rateNeedsRuns = (e: Experiment, rate: number): boolean => targetCells(e).some((c) => c.rate === rate && !c.enough);

/**
 * What is left: repetitions per target rate until every cell there has TARGET_RUNS
 * (a cell may get there sooner, by its CI) and their wall time, at the runs' mean.
 */
export function remaining(e: Experiment): { rate: number; muT: number; reps: number; seconds: number }[] {
  const byRate = new Map<number, TargetCell[]>();
  for (const c of targetCells(e)) byRate.set(c.rate, [...(byRate.get(c.rate) ?? []), c]);
  return [...byRate.entries()].flatMap(([rate, cells]) => {
    if (cells.every((c) => c.enough)) return [];
    const reps = Math.max(...cells.map((c) => (c.enough ? 0 : TARGET_RUNS - c.runs)));
    // A repetition runs every plan at the rate (the pairs need the same seed), `off` once for `paper` where k = 0.
    return [{ rate, muT: cells[0]?.muT ?? Number.NaN, reps, seconds: reps * sum(cells.map((c) => c.runWallSeconds)) }];
  });
}
