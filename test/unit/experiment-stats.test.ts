// The experiment report's statistics (bench/experiments/cell-stats.ts): differences
// between plans paired by seed, what a cut run lets the report conclude, and when a
// target cell has enough runs (what `--resume` runs towards).
import t from 'tap';
import { pairedDifference, remaining, targetCells, TARGET_RUNS, verdict } from '../../bench/experiments/cell-stats.js';
import type { Experiment, PolicyName, RunResult } from '../../bench/experiments/report.js';

const RATE = 0.0131; // μ·T 3.93 at scale 0.1

function run(policy: PolicyName, rep: number, seconds: number, censored = false): RunResult {
  return {
    rate: RATE, policy, alsoPaper: false, rep, seed: 1000 * rep + 4, workSeconds: 30, mtbfSeconds: 7.6, intervalSeconds: null, plannedCheckpoints: null,
    state: censored ? 'running' : 'succeeded', censored, submitToFinishSeconds: seconds + 0.5, startToFinishSeconds: seconds, failures: 0, draws: [], workLostSeconds: [],
    restartSeconds: [], checkpoints: 0, checkpointSeconds: [], checkpointBytes: 0, restoredAttempts: 0, nodeCpuSeconds: 0, jobCpuSeconds: 0, healthWaitSeconds: 0, policy0: null, policyEnd: null,
  };
}

function experiment(runs: RunResult[]): Experiment {
  return {
    command: 'test', startedAt: '2026-01-01T00:00:00Z', quick: false, scale: 0.1, reps: 4, rates: [RATE], capFactor: 8, workSeconds: 30,
    assumedCheckpointSeconds: 2, assumedRestartSeconds: 7, mtbfPriorWeight: 1000, binary: 'x', runs, wallSeconds: runs.reduce((a, r) => a + r.submitToFinishSeconds + 10, 0),
  };
}

t.test('a paired difference is taken seed by seed, over the seeds both plans ran', async (t) => {
  // Noisy draws, the same on both plans: each pair differs by exactly 10 s.
  const e = experiment([run('off', 1, 50), run('off', 2, 200), run('off', 3, 90), run('auto', 1, 40), run('auto', 2, 190), run('auto', 3, 80), run('auto', 4, 1)]);
  const d = pairedDifference(e, RATE, 'auto', 'off');
  t.equal(d?.pairs, 3, 'rep 4 has no off run to pair with');
  t.equal(d?.meanSeconds, -10);
  t.equal(d?.ciSeconds, 0, 'the draws cancel: no spread left');
  t.equal(d === null ? null : verdict(d), 'a', 'auto is faster');
});

t.test('a run cut at the cap only supports the conclusion its bound allows', async (t) => {
  const offCut = experiment([run('off', 1, 240, true), run('off', 2, 240, true), run('paper', 1, 70), run('paper', 2, 80)]);
  const d = pairedDifference(offCut, RATE, 'paper', 'off');
  t.equal(d?.cut, 'b');
  t.equal(d === null ? null : verdict(d), 'a', 'paper faster than a lower bound of off: faster still');
  const reversed = pairedDifference(offCut, RATE, 'off', 'paper');
  t.equal(reversed === null ? null : verdict(reversed), 'b', 'the same pairs read the other way round');
  const aCut = experiment([run('off', 1, 60), run('off', 2, 70), run('paper', 1, 240, true), run('paper', 2, 240, true)]);
  const slow = pairedDifference(aCut, RATE, 'off', 'paper');
  t.equal(slow === null ? null : verdict(slow), 'a', 'off faster than a plan whose runs never finished');
});

t.test('a target cell has enough runs at TARGET_RUNS or once its CI is within 15% of its mean', async (t) => {
  const tight = [1, 2, 3].map((rep) => run('off', rep, 100 + rep));
  const wide = [1, 2, 3].map((rep) => run('auto', rep, rep === 2 ? 300 : 50));
  const e = experiment([...tight, ...wide]);
  const cells = targetCells(e);
  t.same(cells.map((c) => [c.policy, c.runs, c.enough]), [['off', 3, true], ['auto', 3, false]]);
  const left = remaining(e);
  t.equal(left.length, 1);
  t.equal(left[0]?.reps, TARGET_RUNS - 3, 'repetitions until auto has TARGET_RUNS');
  const ten = experiment([...tight, ...Array.from({ length: TARGET_RUNS }, (_, i) => run('auto', i + 1, i % 2 === 0 ? 300 : 50))]);
  t.ok(targetCells(ten).every((c) => c.enough), 'ten runs are enough, however wide');
  t.same(remaining(ten), []);
});
