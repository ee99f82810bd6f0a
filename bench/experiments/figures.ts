// The experiment report's figures: one per question the prototype's paper asks, as
// vega-lite specs rendered headless to SVG by vega (View.toSVG, renderer 'none'), and
// the check that a rendered figure shows data (figureProblems), which the report runs on
// every figure it writes and test/unit/experiment-figures.test.ts runs on a fixture.
//
// Every scale's domain is chosen here from the values drawn, and whatever would fall
// outside it (an error bar's end below 0 on a log scale, a CI wider than the figure) is
// clipped to it: on a shared log scale a single value ≤ 0 makes the domain invalid and
// every layer collapses onto one edge.
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { exactExpectedSeconds, exactOptimum, paperOptimum, type ModelInput } from '../../src/policy/index.js';

export interface FigureCell {
  muT: number;
  plan: string;
  measured: number;
  /** 95% CI half-width of the measured mean; NaN with one run. */
  ci: number;
  /** Some of its runs were cut at the cap: the mean is a lower bound. */
  cut: boolean;
  exact: number;
  process: number;
}

export interface FigureDifference {
  muT: number;
  plan: string;
  /** (plan − off) / off over the seeds both ran, and its paired 95% CI's ends. */
  relative: number;
  low: number;
  high: number;
  cut: boolean;
}

export interface FigureInput {
  /** Plans in the order of the legends; the first is no checkpointing. */
  plans: readonly string[];
  cells: readonly FigureCell[];
  differences: readonly FigureDifference[];
  model: {
    workSeconds: number;
    checkpointSeconds: number;
    restartSeconds: number;
    /** The C the paper plan's count was chosen with, before anything was measured. */
    assumedCheckpointSeconds: number;
    /** The fixed plan's checkpoints. */
    fixedCheckpoints: number;
  };
}

export interface Figure {
  file: string;
  alt: string;
  spec: vl.TopLevelSpec;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const CURVE_POINTS = 120;
const CUT = 'lower bound (cut at the cap)';
const MEAN = 'mean';
/** One colour per plan in every figure. */
const PLAN_COLOURS: Readonly<Record<string, string>> = { off: '#4c78a8', paper: '#f58518', 'fixed-15': '#e45756', auto: '#54a24b' };

function planColour(plans: readonly string[]) {
  return { field: 'plan', type: 'nominal' as const, title: 'plan', sort: [...plans], scale: { domain: [...plans], range: plans.map((p) => PLAN_COLOURS[p] ?? 'black') } };
}

/** The model's segments for a plan at μ·T (M = T/(μ·T)), or null for a plan it has no curve for. */
function segmentsFor(plan: string, input: ModelInput, m: FigureInput['model']): number | null {
  if (plan === 'off') return 1;
  if (plan === 'fixed-15') return m.fixedCheckpoints + 1;
  if (plan === 'paper') return paperOptimum({ ...input, checkpointSeconds: m.assumedCheckpointSeconds, restartSeconds: 0 }).segments;
  // auto plans with the measured costs: the exact model's best count.
  if (plan === 'auto') return exactOptimum(input).segments;
  return null;
}

const modelInput = (m: FigureInput['model'], muT: number): ModelInput => ({ workSeconds: m.workSeconds, mtbfSeconds: m.workSeconds / muT, checkpointSeconds: m.checkpointSeconds, restartSeconds: m.restartSeconds });

/** The exact model's expected completion of a plan at μ·T, with the measured C and R. */
export function modelSeconds(plan: string, muT: number, m: FigureInput['model']): number {
  const input = modelInput(m, muT);
  const segments = segmentsFor(plan, input, m);
  return segments === null ? Number.NaN : exactExpectedSeconds(segments, input);
}

/** Log-spaced μ·T from lo to hi. */
function grid(lo: number, hi: number, points = CURVE_POINTS): number[] {
  return Array.from({ length: points }, (_, i) => lo * (hi / lo) ** (i / (points - 1)));
}

/**
 * Where the model says a plan starts to beat no checkpointing: the smallest μ·T in
 * [lo, hi] from which it is faster everywhere up to hi; null if it never is.
 */
export function modelCrossover(plan: string, m: FigureInput['model'], lo = 0.005, hi = 20): number | null {
  const xs = grid(lo, hi, 800);
  let from: number | null = null;
  for (const x of xs) {
    const pays = modelSeconds(plan, x, m) < modelSeconds('off', x, m) * (1 - 1e-9);
    if (pays && from === null) from = x;
    if (!pays) from = null;
  }
  return from;
}

function muTRange(input: FigureInput): [number, number] {
  const xs = input.cells.map((c) => c.muT);
  return [Math.min(...xs) / 1.5, Math.max(...xs) * 1.5];
}

const finite = (xs: readonly number[]): number[] => xs.filter((x) => Number.isFinite(x));

/** A log domain around positive values, a little wider so no point sits on an edge. */
function logDomain(values: readonly number[]): [number, number] {
  const xs = finite(values).filter((x) => x > 0);
  if (xs.length === 0) return [1, 10];
  return [Math.min(...xs) / 1.15, Math.max(...xs) * 1.15];
}

/** The μ·T axis: log, ticks at the rates run, printed as the report prints them. */
function muTAxis(lo: number, hi: number, ticks: readonly number[]) {
  return { field: 'muT', type: 'quantitative' as const, scale: { type: 'log' as const, domain: [lo, hi], nice: false }, axis: { format: '.2~f', values: [...new Set(ticks)] }, title: 'μ·T (expected failures in a failure-free run)' };
}

const clip = (x: number, [lo, hi]: readonly [number, number]): number => Math.min(hi, Math.max(lo, x));
const label = (muT: number): string => muT.toFixed(2);

interface Channels {
  x: ReturnType<typeof muTAxis>;
  y: { type: 'quantitative'; scale: { type?: 'log'; domain: number[]; nice: boolean }; axis: { format: string }; title: string };
  color: ReturnType<typeof planColour>;
}

/**
 * The measured points (at `field`) and their CIs as bars from `low` to `high`, already
 * clipped to the plot; a lower bound (runs cut at the cap) drawn as `boundShape`.
 */
function measuredLayers(points: readonly object[], { x, y, color }: Channels, field: string, boundShape: 'triangle-up' | 'triangle-down') {
  return [
    { data: { values: [...points] }, mark: { type: 'rule' as const, clip: true }, encoding: { x, y: { ...y, field: 'low' }, y2: { field: 'high' }, color } },
    {
      data: { values: [...points] },
      mark: { type: 'point' as const, filled: true, size: 60, clip: true },
      encoding: { x, y: { ...y, field }, color, shape: { field: 'kind', type: 'nominal' as const, title: 'measured', legend: { labelLimit: 300 }, scale: { domain: [MEAN, CUT], range: ['circle', boundShape] } } },
    },
  ];
}

/** Completion time against μ·T: each plan's measured mean ± 95% CI, and the exact model's curve. */
function completionFigure(input: FigureInput): Figure {
  const [lo, hi] = muTRange(input);
  const curves = input.plans.flatMap((plan) => grid(lo, hi).map((muT) => ({ muT, plan, seconds: modelSeconds(plan, muT, input.model) })).filter((p) => Number.isFinite(p.seconds)));
  const measured = input.cells.filter((c) => Number.isFinite(c.measured));
  const domain = logDomain([...measured.map((c) => c.measured), ...curves.map((p) => p.seconds)]);
  const ci = (c: FigureCell): number => (Number.isFinite(c.ci) ? c.ci : 0);
  const points = measured.map((c) => ({
    muT: c.muT,
    plan: c.plan,
    measured: c.measured,
    low: clip(c.measured - ci(c), domain),
    high: clip(c.measured + ci(c), domain),
    kind: c.cut ? CUT : MEAN,
  }));
  const x = muTAxis(lo, hi, measured.map((c) => c.muT));
  const y = { type: 'quantitative' as const, scale: { type: 'log' as const, domain: [...domain], nice: false }, axis: { format: '~s' }, title: 'completion, first start → finished (s, log)' };
  const color = planColour(input.plans);
  return {
    file: 'completion-vs-muT.svg',
    alt: 'completion time vs μ·T per plan, measured and the model',
    spec: {
      $schema: SCHEMA,
      title: { text: 'Completion time against μ·T, per plan', subtitle: ['points: measured mean ± 95% CI (bars clipped to the plot); triangles: lower bounds (runs cut at the cap)', `lines: the exact model with the measured C = ${input.model.checkpointSeconds.toFixed(1)} s and R = ${input.model.restartSeconds.toFixed(1)} s (auto: its best count)`] },
      width: 560,
      height: 340,
      layer: [
        { data: { values: curves }, mark: { type: 'line', clip: true, opacity: 0.8 }, encoding: { x, y: { ...y, field: 'seconds' }, color } },
        ...measuredLayers(points, { x, y, color }, 'measured', 'triangle-up'),
      ],
    },
  };
}

/** Where checkpointing starts to pay: each plan's time relative to no checkpointing, paired by seed, and the model's. */
function crossoverFigure(input: FigureInput): Figure {
  const [lo, hi] = muTRange(input);
  const plans = input.plans.slice(1);
  const curves = plans.flatMap((plan) => grid(lo, hi).map((muT) => ({ muT, plan, relative: modelSeconds(plan, muT, input.model) / modelSeconds('off', muT, input.model) - 1 })).filter((p) => Number.isFinite(p.relative)));
  const shown = input.differences.filter((d) => Number.isFinite(d.relative));
  const values = [...shown.map((d) => d.relative), ...curves.map((p) => p.relative), 0];
  const domain: [number, number] = [Math.max(-1, Math.min(...values) - 0.1), Math.min(3, Math.max(...values) + 0.1)];
  const points = shown.map((d) => ({ muT: d.muT, plan: d.plan, relative: clip(d.relative, domain), low: clip(Number.isFinite(d.low) ? d.low : d.relative, domain), high: clip(Number.isFinite(d.high) ? d.high : d.relative, domain), kind: d.cut ? CUT : MEAN }));
  const crossings = plans.flatMap((plan) => {
    const at = modelCrossover(plan, input.model);
    return at !== null && at >= lo && at <= hi ? [{ plan, muT: at, text: `${plan}: ${at.toFixed(2)}` }] : [];
  });
  const x = muTAxis(lo, hi, input.cells.map((c) => c.muT));
  const y = { type: 'quantitative' as const, scale: { domain: [...domain], nice: false }, axis: { format: '+.0%' }, title: 'completion vs no checkpointing (plan − off) / off' };
  const color = planColour(plans);
  return {
    file: 'crossover.svg',
    alt: 'where checkpointing starts to pay: each plan against no checkpointing, measured (paired by seed) and the model',
    spec: {
      $schema: SCHEMA,
      title: { text: 'Where checkpointing starts to pay', subtitle: ['points: mean of (plan − off) on the same seeds ± paired 95% CI, relative to off; below 0 the plan is faster', 'lines: the exact model; vertical rules: where the model says each plan starts to beat off'] },
      width: 560,
      height: 340,
      layer: [
        { data: { values: [{ zero: 0 }] }, mark: { type: 'rule', color: 'grey' }, encoding: { y: { ...y, field: 'zero' } } },
        { data: { values: crossings }, mark: { type: 'rule', strokeDash: [4, 3], clip: true }, encoding: { x, color } },
        { data: { values: crossings }, mark: { type: 'text', angle: 270, align: 'right', baseline: 'bottom', dx: -4, dy: -2, clip: true }, encoding: { x, y: { datum: domain[1], type: 'quantitative', scale: y.scale }, text: { field: 'text' }, color } },
        { data: { values: curves }, mark: { type: 'line', clip: true, opacity: 0.8 }, encoding: { x, y: { ...y, field: 'relative' }, color } },
        ...measuredLayers(points, { x, y, color }, 'relative', 'triangle-down'),
      ],
    },
  };
}

/** Measured mean against predicted, per cell: the exact model (filled) and this process's model (hollow). */
function measuredVsPredictedFigure(input: FigureInput): Figure {
  const cells = input.cells.filter((c) => !c.cut && Number.isFinite(c.measured) && Number.isFinite(c.exact));
  const domain = logDomain(cells.flatMap((c) => [c.measured, c.exact, c.process]));
  const ci = (c: FigureCell): number => (Number.isFinite(c.ci) ? c.ci : 0);
  const points = cells.flatMap((c) => [
    { model: 'exact model', predicted: c.exact, plan: c.plan, muT: label(c.muT), measured: c.measured, low: clip(c.measured - ci(c), domain), high: clip(c.measured + ci(c), domain) },
    ...(Number.isFinite(c.process) ? [{ model: 'this process', predicted: c.process, plan: c.plan, muT: label(c.muT), measured: c.measured, low: clip(c.measured - ci(c), domain), high: clip(c.measured + ci(c), domain) }] : []),
  ]);
  const scale = { type: 'log' as const, domain: [...domain], nice: false };
  const x = { field: 'predicted', type: 'quantitative' as const, scale, axis: { format: '~s' }, title: 'predicted (s)' };
  const y = { type: 'quantitative' as const, scale, axis: { format: '~s' }, title: 'measured mean (s)' };
  const color = planColour(input.plans);
  const muTs = [...new Set(cells.map((c) => c.muT))].sort((a, b) => a - b).map(label);
  const diagonal = [0.85, 1, 1.15].flatMap((k) => [{ k: String(k), p: domain[0], m: domain[0] * k }, { k: String(k), p: domain[1], m: domain[1] * k }]);
  return {
    file: 'measured-vs-predicted.svg',
    alt: 'measured mean vs predicted, per cell',
    spec: {
      $schema: SCHEMA,
      title: { text: 'Measured mean against predicted', subtitle: ['filled: the exact model; hollow: this process\'s model (both with the measured C and R); bars: 95% CI, clipped', 'grey lines: equal and ±15%; cells with runs cut at the cap are left out (their means are lower bounds)'] },
      width: 420,
      height: 420,
      layer: [
        { data: { values: diagonal }, mark: { type: 'line', color: 'grey', opacity: 0.6, clip: true }, encoding: { x: { field: 'p', type: 'quantitative', scale }, y: { ...y, field: 'm' }, detail: { field: 'k' }, strokeDash: { field: 'k', legend: null, scale: { domain: ['1', '0.85', '1.15'], range: [[1, 0], [4, 3], [4, 3]] } } } },
        { data: { values: points }, mark: { type: 'rule', opacity: 0.5, clip: true }, encoding: { x, y: { ...y, field: 'low' }, y2: { field: 'high' }, color } },
        {
          data: { values: points },
          mark: { type: 'point', size: 70, clip: true },
          encoding: { x, y: { ...y, field: 'measured' }, color, shape: { field: 'muT', type: 'nominal', title: 'μ·T', sort: muTs }, fill: { condition: { test: "datum.model === 'exact model'", ...color, legend: null }, value: 'transparent' } },
        },
      ],
    },
  };
}

/** Every figure the report shows, in its order. */
export function figures(input: FigureInput): Figure[] {
  if (input.cells.length === 0) return [];
  return [completionFigure(input), crossoverFigure(input), measuredVsPredictedFigure(input)];
}

/** What vega drew, as far as the checks need it (vega's own scenegraph items). */
interface SceneNode {
  marktype?: string;
  role?: string;
  items?: SceneNode[];
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  text?: unknown;
}

export interface Rendered {
  svg: string;
  /** Why the figure is empty or wrong; none for a good one. */
  problems: string[];
}

/** Renders a vega-lite spec headless and checks the result (figureProblems). */
export async function render(spec: vl.TopLevelSpec): Promise<Rendered> {
  const warnings: string[] = [];
  const logger = vega.logger(vega.Warn, 'warn', (_method, level, args) => {
    warnings.push(`${level} ${args.map(String).join(' ')}`);
  });
  const compiled = vl.compile(spec, { logger });
  const view = new vega.View(vega.parse(compiled.spec), { renderer: 'none', logger });
  try {
    await view.runAsync();
    const svg = `${await view.toSVG()}\n`;
    const root = (view.scenegraph() as unknown as { root: SceneNode }).root;
    return { svg, problems: [...warnings.map((w) => `vega: ${w}`), ...figureProblems(root, svg)] };
  } finally {
    view.finalize();
  }
}

/** Every mark under a node with its role, depth first. */
function marks(node: SceneNode, out: SceneNode[] = []): SceneNode[] {
  if (node.marktype !== undefined) out.push(node);
  for (const item of node.items ?? []) marks(item, out);
  return out;
}

/**
 * Why a rendered figure shows nothing (or nonsense): an axis without ticks or labels, no
 * data drawn, every data point on one edge of the plot or at one spot, or NaN anywhere.
 */
export function figureProblems(root: SceneNode, svg: string): string[] {
  const problems: string[] = [];
  if (svg.includes('NaN')) problems.push('NaN in the SVG (a path or position computed from an invalid scale)');
  const all = marks(root);
  const ticks = all.filter((m) => m.role === 'axis-tick');
  if (ticks.length < 2) problems.push(`${ticks.length} axes with ticks: expected an x and a y axis`);
  for (const [i, t] of ticks.entries()) if ((t.items?.length ?? 0) < 2) problems.push(`axis ${i + 1} has ${t.items?.length ?? 0} ticks`);
  const labels = all.filter((m) => m.role === 'axis-label');
  for (const [i, l] of labels.entries()) if ((l.items ?? []).filter((x) => String(x.text ?? '') !== '').length < 2) problems.push(`axis ${i + 1} has fewer than 2 labels`);
  // The plot's size: the group that holds the data marks (vega-lite's top-level cell).
  const plot = (root.items ?? [])[0];
  const width = plot?.width ?? 0;
  const height = plot?.height ?? 0;
  if (!(width > 0 && height > 0)) problems.push(`the plot has no area (${width} × ${height})`);
  const data = all.filter((m) => m.role === 'mark' && (m.marktype === 'symbol' || m.marktype === 'line') && (m.items?.length ?? 0) > 0);
  const points = data.flatMap((m) => m.items ?? []).map((p) => ({ x: p.x ?? Number.NaN, y: p.y ?? Number.NaN }));
  if (points.length === 0) problems.push('no data drawn (no point or line has an item)');
  if (points.some((p) => !Number.isFinite(p.x) || !Number.isFinite(p.y))) problems.push('a data point at a non-finite position');
  const on = (v: number, edge: number): boolean => Math.abs(v - edge) < 0.5;
  if (points.length > 1) {
    if (points.every((p) => on(p.y, 0))) problems.push('every data point on the top edge');
    if (points.every((p) => on(p.y, height))) problems.push('every data point on the bottom edge');
    if (points.every((p) => on(p.x, 0))) problems.push('every data point on the left edge');
    if (points.every((p) => on(p.x, width))) problems.push('every data point on the right edge');
    const first = points[0];
    if (first !== undefined && points.every((p) => on(p.x, first.x) && on(p.y, first.y))) problems.push('every data point at one spot');
  }
  return problems;
}
