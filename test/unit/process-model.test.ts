// The experiments' model of their own process (bench/experiments/process-model.ts)
// against what can be worked out by hand.
import t from 'tap';
import { replay, simulateProcess, simulateProcessRun } from '../../bench/experiments/process-model.js';
import { SeededRandom } from '../../src/policy/random.js';

const base = { workSeconds: 30, mtbfSeconds: 10, intervalSeconds: null, freezeSeconds: 1, commitSeconds: 2, restartSeconds: 3 };

t.test('without checkpoints: (e^{W/M} − 1)(M + R), restarts never interrupted', async (t) => {
  const sim = simulateProcess(base, 20_000, 1);
  const closed = (Math.exp(30 / 10) - 1) * (10 + 3);
  t.ok(Math.abs(sim.meanSeconds - closed) < 4 * sim.standardErrorSeconds, `${sim.meanSeconds.toFixed(1)} ± ${sim.standardErrorSeconds.toFixed(1)} vs ${closed.toFixed(1)}`);
});

t.test('no failures: the work plus one freeze per tick that found no checkpoint under way', async (t) => {
  const calm = { ...base, mtbfSeconds: 1e12 };
  t.equal(simulateProcessRun({ ...calm, intervalSeconds: 10 }, new SeededRandom(1)).seconds, 33, 'ticks at 10, 20 and 30 s of wall time (the freezes delay the work): three freezes of 1 s');
  // Ticks every 2 s; each checkpoint is busy for 1 s frozen + 2 s to commit, so every other tick is skipped.
  const run = simulateProcessRun({ ...calm, intervalSeconds: 2 }, new SeededRandom(1)).seconds;
  t.ok(run > 30 + 7 && run < 30 + 12, `about one freeze per 4 s: ${run}`);
});

t.test('a checkpoint lost in its commit window costs as much as none', async (t) => {
  // Failures at most every ~5 s; a 2 s interval with a 100 s commit window never commits anything.
  const neverSafe = simulateProcess({ ...base, mtbfSeconds: 20, intervalSeconds: 2, freezeSeconds: 0, commitSeconds: 1e6 }, 5000, 2);
  const none = simulateProcess({ ...base, mtbfSeconds: 20 }, 5000, 2);
  t.ok(Math.abs(neverSafe.meanSeconds - none.meanSeconds) < 4 * Math.hypot(neverSafe.standardErrorSeconds, none.standardErrorSeconds), `${neverSafe.meanSeconds.toFixed(1)} vs ${none.meanSeconds.toFixed(1)}`);
  const safe = simulateProcess({ ...base, mtbfSeconds: 20, intervalSeconds: 2, freezeSeconds: 0, commitSeconds: 0 }, 5000, 2);
  t.ok(safe.meanSeconds < none.meanSeconds * 0.8, `instant commits pay: ${safe.meanSeconds.toFixed(1)} < ${none.meanSeconds.toFixed(1)}`);
});

t.test('auto: the plan is asked again on the work left after each commit', async (t) => {
  const asked: number[] = [];
  simulateProcessRun({ ...base, mtbfSeconds: 1e12, intervalSeconds: (left) => (asked.push(left), 10) }, new SeededRandom(3));
  t.same(asked, [30, 20, 11], 'at the start, then after the commits of the checkpoints holding 10 and 19 s (the first freeze came in between)');
});

t.test('replay: a run\'s own times to failure and restarts give its completion exactly', async (t) => {
  const run = simulateProcessRun({ ...base, workSeconds: 10, restarts: [2, 7] }, replay([5, 3, 100], new SeededRandom(4)));
  t.same(run, { seconds: 5 + 2 + 3 + 7 + 10, failures: 2 }, 'fails at 5 s, restarts in 2 s, fails at 3 s, restarts in 7 s, then 10 s of work');
  const kept = simulateProcessRun({ ...base, workSeconds: 10, intervalSeconds: 4, freezeSeconds: 1, commitSeconds: 1, restarts: [2] }, replay([6.5, 100], new SeededRandom(4)));
  // Tick at 4 s: frozen to 5 s, committed at 6 s with 4 s of work; the failure at 6.5 s keeps it.
  // Second attempt, 6 s of work left: a tick at 4 s freezes it to 5 s, and the work ends at 7 s.
  t.equal(kept.failures, 1);
  t.equal(kept.seconds, 6.5 + 2 + 7, 'the checkpoint committed before the failure is resumed from');
});
