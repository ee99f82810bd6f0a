// The exact checkpoint model against a Monte Carlo simulation of its process, on the
// prototype's grid (src/policy/prototype-grid.ts), 10,000 runs per cell: a markdown
// table of T(n), the simulated mean, its standard error, the relative error and the
// time per cell. With --seeds K it repeats the grid with K seeds per cell (the first
// being the unit test's) and reports, per cell, the largest error seen and how many
// seeds stayed within 2%: how much the unit test's single seed can be trusted.
//
//   node_modules/.bin/tsx bench/policy-monte-carlo.ts [--runs 10000] [--restart 3] [--seeds 1]
import { exactExpectedSeconds, paperExpectedSeconds, prototypeGrid, simulateCompletion } from '../src/policy/index.js';
import { table } from './stats.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} takes a positive number`);
  return value;
}

const runs = flag('runs', 10_000);
const restartSeconds = flag('restart', 3);
const seeds = flag('seeds', 1);
/** Seed k of cell i; k = 0 is test/unit/policy-simulation.test.ts's seed. */
const seedOf = (cellIndex: number, k: number): number => 1000 + cellIndex + 100 * k;

const cells = prototypeGrid(restartSeconds);
const rows: string[][] = [];
let worst = 0;
const started = performance.now();
cells.forEach((cell, i) => {
  const predicted = exactExpectedSeconds(cell.segments, cell.input);
  let largest = 0;
  let within = 0;
  let first = '';
  for (let k = 0; k < seeds; k++) {
    const t0 = performance.now();
    const sim = simulateCompletion(cell.input, cell.segments, runs, seedOf(i, k));
    const ms = performance.now() - t0;
    const error = sim.meanSeconds / predicted - 1;
    largest = Math.max(largest, Math.abs(error));
    if (Math.abs(error) <= 0.02) within++;
    if (k === 0) {
      const z = (sim.meanSeconds - predicted) / sim.standardErrorSeconds;
      first = [sim.meanSeconds.toFixed(1), sim.standardErrorSeconds.toFixed(2), `${(100 * error).toFixed(2)}%`, z.toFixed(2), sim.meanFailures.toFixed(2), `${ms.toFixed(0)} ms`].join('\t');
    }
  }
  worst = Math.max(worst, largest);
  const paper = paperExpectedSeconds(cell.segments, cell.input);
  rows.push([String(cell.failureRate), String(cell.segments - 1), cell.policies.join(', '), predicted.toFixed(1), paper.toFixed(1), ...first.split('\t'), ...(seeds > 1 ? [`${(100 * largest).toFixed(2)}%`, `${within}/${seeds}`] : [])]);
});

const head = ['μ (1/s)', 'checkpoints', 'plans', 'exact T(n) s', 'paper E(n) s', 'simulated mean s', 'std. error s', 'error', 'z', 'failures/run', 'time'];
if (seeds > 1) head.push(`largest error (${seeds} seeds)`, 'seeds within 2%');
process.stdout.write(`W = 300 s, C = 5 s, R = ${restartSeconds} s; ${runs} runs per cell, seed ${seedOf(0, 0)} + cell index\n\n`);
process.stdout.write(`${table(head, rows)}\n\n`);
process.stdout.write(`largest |error| over every cell${seeds > 1 ? ' and seed' : ''}: ${(100 * worst).toFixed(2)}%; ${cells.length} cells × ${seeds} seed(s) × ${runs} runs in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
