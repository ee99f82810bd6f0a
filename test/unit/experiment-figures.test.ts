// The experiment report's figures (bench/experiments/figures.ts) render with data:
// every figure the report (docs/experiments/REPORT.md) references is rendered by vega's
// own headless renderer from a fixed results.json (experiment-results.json: repetitions
// 1–2 of docs/experiments/results.json, whose CIs are as wide as their means, so an error
// bar's end falls at or below 0), and figureProblems finds no axis without ticks, no data
// on one edge, no NaN and no vega warning. The second half shows that the check catches
// each kind of empty or invalid figure.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type * as vl from 'vega-lite';
import { render } from '../../bench/experiments/figures.js';
import { reportFigures, writeReport, type Experiment } from '../../bench/experiments/report.js';

const here = dirname(fileURLToPath(import.meta.url));
const experiment = JSON.parse(await readFile(join(here, 'experiment-results.json'), 'utf8')) as Experiment;

t.test('every figure the report references renders with data and without a warning', async (t) => {
  const out = await mkdtemp(join(os.tmpdir(), 'workrs-figures-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  await writeReport(experiment, out);
  const report = await readFile(join(out, 'REPORT.md'), 'utf8');
  const referenced = [...report.matchAll(/!\[[^\]]*\]\(([^)]+\.svg)\)/g)].map((m) => m[1] as string).sort();
  const figures = reportFigures(experiment);
  t.same(referenced, figures.map((f) => f.file).sort(), 'the report shows exactly the figures it renders');
  t.ok(referenced.length >= 3, `one figure per question: completion vs μ·T, the crossover, measured vs predicted (${referenced.join(', ')})`);
  for (const figure of figures) {
    const { svg, problems } = await render(figure.spec);
    t.same(problems, [], `${figure.file} renders with data`);
    // Vega numbers clip paths from a counter of its own: the same figure rendered twice differs only there.
    const clipIds = (x: string): string => x.replace(/clip\d+/g, 'clip');
    t.equal(clipIds(await readFile(join(out, figure.file), 'utf8')), clipIds(svg), `${figure.file} as written is the rendered figure`);
  }
  const legend = await readFile(join(out, 'measured-vs-predicted.svg'), 'utf8');
  t.notMatch(legend, /0\.0\d{6,}/, 'μ·T in the legends is printed rounded, not as 0.0300000000000000…');
  t.match(legend, />0\.03</, 'μ·T 0.03 as a legend label');
});

/** A layered chart on a shared log y scale, as the blank completion figure was. */
function sharedLogScale(points: { x: number; y: number; low: number; high: number }[]): vl.TopLevelSpec {
  const x = { field: 'x', type: 'quantitative', scale: { type: 'log' } } as const;
  return {
    data: { values: points },
    width: 300,
    height: 200,
    layer: [
      { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'y', type: 'quantitative', scale: { type: 'log' } } } },
      { mark: 'errorbar', encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
    ],
  };
}

t.test('the check catches a figure that draws nothing', async (t) => {
  const good = [
    { x: 0.03, y: 30, low: 25, high: 35 },
    { x: 0.9, y: 60, low: 50, high: 70 },
    { x: 3.93, y: 80, low: 70, high: 90 },
  ];
  t.same((await render(sharedLogScale(good))).problems, [], 'the same chart with every error bar above 0 renders');

  // An error bar's end at or below 0 on the shared log scale: the domain is invalid and every layer collapses.
  const blank = await render(sharedLogScale(good.map((p, i) => (i === 1 ? { ...p, low: -10 } : p))));
  t.ok(blank.problems.length > 0, `an error bar below 0 on a log scale is caught: ${blank.problems.join('; ')}`);

  const noTicks: vl.TopLevelSpec = { data: { values: good }, mark: 'point', encoding: { x: { field: 'x', type: 'quantitative', axis: { ticks: false } }, y: { field: 'y', type: 'quantitative' } } };
  t.match((await render(noTicks)).problems.join('\n'), /ticks/, 'an axis without ticks');

  const onTheEdge: vl.TopLevelSpec = { data: { values: good.map((p) => ({ ...p, y: 100 })) }, mark: 'point', encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative', scale: { domain: [0, 100] } } } };
  t.match((await render(onTheEdge)).problems.join('\n'), /top edge/, 'every point on the top edge');

  const warned: vl.TopLevelSpec = { data: { values: good }, mark: 'line', encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, size: { field: 'x', type: 'nominal' } } };
  t.match((await render(warned)).problems.join('\n'), /^vega: /m, 'a warning from vega-lite or vega');

  const nothing: vl.TopLevelSpec = { data: { values: [] }, mark: 'point', encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } } };
  t.match((await render(nothing)).problems.join('\n'), /no data drawn/, 'no data at all');
});

t.test('the check catches NaN in a path', async (t) => {
  const { figureProblems } = await import('../../bench/experiments/figures.js');
  const root = { items: [{ width: 10, height: 10, items: [] }] };
  t.match(figureProblems(root, '<path d="M0,NaNL10,10"/>').join('\n'), /NaN/, 'a path through NaN');
});

t.test("the committed report's figures (docs/experiments) render with data from its own results", async (t) => {
  const docs = join(here, '../../docs/experiments');
  const committed = JSON.parse(await readFile(join(docs, 'results.json'), 'utf8')) as Experiment;
  const report = await readFile(join(docs, 'REPORT.md'), 'utf8');
  for (const figure of reportFigures(committed)) {
    t.ok(report.includes(`(${figure.file})`), `REPORT.md shows ${figure.file}`);
    const { problems } = await render(figure.spec);
    t.same(problems, [], `${figure.file} renders with data`);
  }
});
