// The checkpoint models of docs/checkpoint-model.md: the paper model's worked table and its
// search, the exact model's example and optimum, Young's and Daly's intervals by hand,
// plan()'s shape, and the edges (free checkpoints, reliable and hopeless boxes, bad input).
import t from 'tap';
import {
  checkModelInput,
  dalyIntervalSeconds,
  exactExpectedSeconds,
  exactOptimalIntervalSeconds,
  exactOptimum,
  InvalidModelInputError,
  MAX_SEGMENTS,
  type ModelInput,
  paperExpectedSeconds,
  paperOptimum,
  plan,
  SeededRandom,
  segmentExpectedSeconds,
  youngIntervalSeconds,
} from '../../src/policy/index.js';

const input = (workSeconds: number, mtbfSeconds: number, checkpointSeconds: number, restartSeconds = 0): ModelInput => ({ workSeconds, mtbfSeconds, checkpointSeconds, restartSeconds });

/** The integer minimum by brute force, for comparison with the searches. */
function bruteForce(f: (n: number) => number, upTo: number): { segments: number; expectedSeconds: number } {
  let best = { segments: 1, expectedSeconds: f(1) };
  for (let n = 2; n <= upTo; n++) {
    const v = f(n);
    if (v < best.expectedSeconds) best = { segments: n, expectedSeconds: v };
  }
  return best;
}

// docs/checkpoint-model.md, the prototype's values with T = 300 s, C = 5 s; `best` is the starred k.
const PAPER_TABLE = [
  { mu: 0.0001, values: { 0: 304.5, 1: 307.3, 5: 325.8, 11: 355.4, 15: 375.3 }, best: 0 },
  { mu: 0.0005, values: { 0: 323.7, 1: 316.5, 5: 328.8, 11: 356.9, 15: 376.4 }, best: 1 },
  { mu: 0.003, values: { 0: 486.5, 1: 383.9, 5: 348.7, 11: 366.5, 15: 383.6 }, best: 5 },
  { mu: 0.0131, values: { 0: 3809.7, 1: 941.6, 5: 448.7, 11: 410.0, 15: 415.1 }, best: 11 },
];

for (const row of PAPER_TABLE) {
  t.test(`paper model, μ = ${row.mu}: every worked value within 0.1 s and the starred minimum k = ${row.best}`, async (t) => {
    const model = input(300, 1 / row.mu, 5);
    for (const [k, expected] of Object.entries(row.values)) {
      const value = paperExpectedSeconds(Number(k) + 1, model);
      t.ok(Math.abs(value - expected) <= 0.1, `E(${Number(k) + 1}) = ${value.toFixed(3)} s, the table says ${expected} (k = ${k})`);
    }
    const best = paperOptimum(model);
    t.equal(best.segments - 1, row.best, 'the search stops at the starred k');
    t.equal(best.expectedSeconds, paperExpectedSeconds(row.best + 1, model));
    t.same(best, bruteForce((n) => paperExpectedSeconds(n, model), 200), 'the same as a brute-force scan of N = 1..200');
  });
}

t.test('acceptance 1: W = 300 s, M = 333.33 s, C = 5 s → paper: 5 checkpoints, 348.7 s', async (t) => {
  const p = plan({ workSeconds: 300, mtbfSeconds: 333.33, checkpointSeconds: 5 });
  t.equal(p.paper.checkpoints, 5);
  t.ok(Math.abs(p.paper.expectedSeconds - 348.7) <= 0.1, `paper.expectedSeconds = ${p.paper.expectedSeconds}`);
  t.equal(p.paper.intervalSeconds, 50, 'six segments of 50 s');
});

t.test('exact model: the worked example W = 300 s, C = 5 s, R = 0, M = 333.3 s → n = 5 (4 checkpoints), T = 352.8 s', async (t) => {
  const model = input(300, 333.3, 5);
  const best = exactOptimum(model);
  t.equal(best.segments, 5);
  t.ok(Math.abs(best.expectedSeconds - 352.8) < 0.05, `T(5) = ${best.expectedSeconds}`);
  t.same(best, bruteForce((n) => exactExpectedSeconds(n, model), 200), 'the same as a brute-force scan');
  const p = plan(model);
  t.same(p.exact, { checkpoints: 4, intervalSeconds: 60, expectedSeconds: best.expectedSeconds });
  t.ok(Math.abs(p.noCheckpointSeconds - 486.56) < 0.01, `no checkpoint: T(1) = ${p.noCheckpointSeconds}`);
});

t.test('exact model by hand: one segment, and the restart factor', async (t) => {
  // M = 100, R = 10, 50 s needed: 100 · e^0.1 · (e^0.5 − 1) = 100 · 1.1051709 · 0.6487213 = 71.6948
  t.ok(Math.abs(segmentExpectedSeconds(50, input(1, 100, 0, 10)) - 71.6948) < 1e-4);
  // No checkpoint, no restart cost, W = M = 100: 100 · (e − 1) = 171.8282
  t.ok(Math.abs(exactExpectedSeconds(1, input(100, 100, 7)) - 171.8282) < 1e-4);
  // Two segments of 30 s, C = 6, M = 60, R = 0: 60(e^0.6 − 1) + 60(e^0.5 − 1) = 49.3271 + 38.9233
  t.ok(Math.abs(exactExpectedSeconds(2, input(60, 60, 6)) - 88.2504) < 1e-4);
  // R multiplies every term by e^{R/M}: the expected time grows, the best n does not move.
  const without = input(300, 333.3, 5, 0);
  const with20 = input(300, 333.3, 5, 20);
  for (const n of [1, 2, 5, 16]) t.ok(Math.abs(exactExpectedSeconds(n, with20) / exactExpectedSeconds(n, without) - Math.exp(20 / 333.3)) < 1e-12);
  t.equal(exactOptimum(with20).segments, exactOptimum(without).segments);
  t.equal(exactExpectedSeconds(1, without), paperExpectedSeconds(1, without), 'with R = 0 and no checkpoint the two models agree');
});

t.test("Young's and Daly's intervals, by hand", async (t) => {
  // C = 8, M = 100: √(2·8·100) = 40; C/(2M) = 0.04, √ = 0.2: 40 · (1 + 0.2/3 + 0.04/9) − 8 = 40 · 241/225 − 8 = 34.8444
  t.equal(youngIntervalSeconds(input(1, 100, 8)), 40);
  t.ok(Math.abs(dalyIntervalSeconds(input(1, 100, 8)) - 34.84444) < 1e-5);
  // C = 20 s, M = 6 h: √864000 = 929.516; C/(2M) = 1/2160: 929.516 · 1.0072236 − 20 = 916.23
  t.ok(Math.abs(youngIntervalSeconds(input(1, 21600, 20)) - 929.516) < 1e-3);
  t.ok(Math.abs(dalyIntervalSeconds(input(1, 21600, 20)) - 916.23) < 1e-2);
  // C ≥ 2M: Daly's interval is M; Young's knows no such limit: √(2·300·100) = 244.949
  t.equal(dalyIntervalSeconds(input(1, 100, 300)), 100);
  t.ok(Math.abs(youngIntervalSeconds(input(1, 100, 300)) - 244.949) < 1e-3);
  t.equal(youngIntervalSeconds(input(1, 100, 0)), 0, 'free checkpoints: interval 0');
  t.equal(dalyIntervalSeconds(input(1, 100, 0)), 0);
});

t.test("the exact model's continuous optimum solves e^{y + C/M}(1 − y) = 1 and lies near Daly's", async (t) => {
  for (const [m, c] of [[100, 8], [333.3, 5], [21600, 20], [10, 50], [1, 5000]] as const) {
    const model = input(1, m, c);
    const y = exactOptimalIntervalSeconds(model) / m;
    t.ok(y > 0 && y < 1, `y = ${y} in (0, 1)`);
    if (c / m < 700) t.ok(Math.abs(Math.exp(y + c / m) * (1 - y) - 1) < 1e-9, `M = ${m}, C = ${c}: the equation holds`);
    if (c < m / 10) t.ok(Math.abs(y * m / dalyIntervalSeconds(model) - 1) < 0.01, `M = ${m}, C = ${c}: within 1% of Daly`);
  }
  t.equal(exactOptimalIntervalSeconds(input(1, 100, 0)), 0);
});

t.test('both searches find the brute-force minimum on 2,000 seeded random inputs', async (t) => {
  const random = new SeededRandom(7);
  const logUniform = (lo: number, hi: number): number => lo * Math.exp(Math.log(hi / lo) * random.nextUnit());
  let checked = 0;
  for (let i = 0; i < 2000; i++) {
    // W up to 2000 M and C up to 10⁴ s reach the concave region (W < 2C) and the overflow (W, C > 709 M).
    const model = input(logUniform(1, 1e5), logUniform(1, 1e5), logUniform(1e-3, 1e4), logUniform(1e-2, 100));
    const limit = 1000;
    const exact = exactOptimum(model, limit);
    const paper = paperOptimum(model, limit);
    const exactScan = bruteForce((n) => exactExpectedSeconds(n, model), limit);
    const paperScan = bruteForce((n) => paperExpectedSeconds(n, model), limit);
    if (exact.segments !== exactScan.segments || paper.segments !== paperScan.segments) {
      t.fail(`W ${model.workSeconds}, M ${model.mtbfSeconds}, C ${model.checkpointSeconds}: exact ${exact.segments} vs ${exactScan.segments}, paper ${paper.segments} vs ${paperScan.segments}`);
    }
    checked++;
  }
  t.equal(checked, 2000);
});

t.test('free checkpoints (C = 0): more is always better, up to the cap', async (t) => {
  const model = input(300, 333.3, 0, 3);
  const p = plan(model);
  t.equal(p.exact.checkpoints, MAX_SEGMENTS - 1);
  t.equal(p.paper.checkpoints, MAX_SEGMENTS - 1);
  // The limit of n · M e^{R/M}(e^{W/(nM)} − 1) is W · e^{R/M}: no work is ever lost.
  t.ok(Math.abs(p.exact.expectedSeconds / (300 * Math.exp(3 / 333.3)) - 1) < 1e-3, `${p.exact.expectedSeconds}`);
  t.ok(p.exact.expectedSeconds < p.noCheckpointSeconds);
  t.equal(exactOptimum(model, 50).segments, 50, 'a lower cap is honoured');
});

t.test('a reliable box (huge M): no checkpoint, expected ≈ W', async (t) => {
  const p = plan({ workSeconds: 300, mtbfSeconds: 1e9, checkpointSeconds: 5, restartSeconds: 10 });
  t.equal(p.exact.checkpoints, 0);
  t.equal(p.paper.checkpoints, 0);
  t.equal(p.exact.intervalSeconds, 300);
  t.ok(Math.abs(p.noCheckpointSeconds - 300) < 1e-3);
  t.equal(p.exact.expectedSeconds, p.noCheckpointSeconds);
  const never = plan({ workSeconds: 300, mtbfSeconds: 1e300, checkpointSeconds: 5 });
  t.equal(never.exact.checkpoints, 0);
  t.equal(never.noCheckpointSeconds, 300);
});

t.test('a failing box (tiny M): many short segments, finite and far better than none', async (t) => {
  const model = input(300, 1, 0.5, 1);
  const p = plan(model);
  t.ok(Number.isFinite(p.exact.expectedSeconds) && p.exact.checkpoints > 100, `${p.exact.checkpoints} checkpoints, ${p.exact.expectedSeconds} s`);
  t.ok(p.exact.expectedSeconds < p.noCheckpointSeconds / 1e100, `none: ${p.noCheckpointSeconds} s`);
  t.same(exactOptimum(model), bruteForce((n) => exactExpectedSeconds(n, model), 2000));
  t.same(paperOptimum(model), bruteForce((n) => paperExpectedSeconds(n, model), 2000));
});

t.test('hopeless inputs overflow to Infinity (null in JSON), never NaN', async (t) => {
  // W = 10⁶ M: e^{W/M} overflows for a plan without checkpoints; C = 1000 M: every checkpoint does.
  const p = plan({ workSeconds: 1e6, mtbfSeconds: 1, checkpointSeconds: 1000, restartSeconds: 1 });
  t.equal(p.noCheckpointSeconds, Infinity);
  t.same(p.exact, { checkpoints: 0, intervalSeconds: 1e6, expectedSeconds: Infinity }, 'no plan finishes: no checkpoint');
  t.ok(Number.isFinite(p.paper.expectedSeconds), 'the paper model, blind to failures during checkpoints, still finds a finite plan');
  const json = JSON.parse(JSON.stringify(p)) as { exact: { expectedSeconds: unknown }; noCheckpointSeconds: unknown };
  t.equal(json.exact.expectedSeconds, null);
  t.equal(json.noCheckpointSeconds, null);
  // The restart alone can overflow too (R > 709 M), and W/M can be past the paper model's cap.
  const restart = plan({ workSeconds: 10, mtbfSeconds: 1, checkpointSeconds: 1, restartSeconds: 800 });
  t.equal(restart.exact.expectedSeconds, Infinity);
  const huge = plan({ workSeconds: 1e300, mtbfSeconds: 1e-300, checkpointSeconds: 1e300, restartSeconds: 1e300 });
  for (const value of [huge.paper.expectedSeconds, huge.exact.expectedSeconds, huge.noCheckpointSeconds, huge.young.intervalSeconds, huge.daly.intervalSeconds]) {
    t.notOk(Number.isNaN(value), `${value} is not NaN`);
  }
  t.equal(huge.paper.checkpoints, 0);
});

t.test("plan() has exactly issue 7's JSON shape", async (t) => {
  const p = plan({ workSeconds: 7200, mtbfSeconds: 21600, checkpointSeconds: 20, restartSeconds: 10 });
  t.same(Object.keys(p), ['paper', 'exact', 'young', 'daly', 'noCheckpointSeconds']);
  for (const model of [p.paper, p.exact]) {
    t.same(Object.keys(model), ['checkpoints', 'intervalSeconds', 'expectedSeconds']);
    t.equal(model.intervalSeconds * (model.checkpoints + 1), 7200, 'interval = W / segments');
  }
  t.same(Object.keys(p.young), ['intervalSeconds']);
  t.same(Object.keys(p.daly), ['intervalSeconds']);
  t.ok(p.exact.expectedSeconds < p.noCheckpointSeconds);
});

t.test('bad input is refused with the field and the rule', async (t) => {
  const ok = { workSeconds: 300, mtbfSeconds: 333, checkpointSeconds: 5 };
  t.same(checkModelInput(ok), { ...ok, restartSeconds: 0 }, 'R defaults to 0');
  const cases: Array<[Partial<ModelInput>, keyof ModelInput, RegExp]> = [
    [{ workSeconds: 0 }, 'workSeconds', /W .*greater than 0/],
    [{ mtbfSeconds: -1 }, 'mtbfSeconds', /M .*greater than 0/],
    [{ checkpointSeconds: -0.5 }, 'checkpointSeconds', /C .*0 or more/],
    [{ restartSeconds: -1 }, 'restartSeconds', /R .*0 or more/],
    [{ workSeconds: Infinity }, 'workSeconds', /finite/],
    [{ mtbfSeconds: Number.NaN }, 'mtbfSeconds', /finite/],
  ];
  for (const [change, field, message] of cases) {
    try {
      plan({ ...ok, ...change });
      t.fail(`${JSON.stringify(change)} was accepted`);
    } catch (err) {
      t.ok(err instanceof InvalidModelInputError, `${JSON.stringify(change)}: an InvalidModelInputError`);
      t.match(err, { field, code: 'INVALID_MODEL_INPUT', message }, `${JSON.stringify(change)} names ${field}`);
    }
  }
  t.ok(Number.isFinite(plan({ ...ok, checkpointSeconds: 0, restartSeconds: 0 }).exact.expectedSeconds), 'C = 0 and R = 0 are allowed');
});
