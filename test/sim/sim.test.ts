// The simulator on the real core: a short smoke run, determinism, and each mutant
// caught (the full runs are `make sim` and `make sim-mutants`).
import t from 'tap';
import { catchesMutant, MUTANTS, runSeed, type RunResult } from './scenario.js';

const STEPS = 10_000;

function describeFailure(r: RunResult): string {
  const v = r.violation;
  if (!v) return `seed ${r.seed}: ok`;
  return `seed ${r.seed}: ${v.invariant} at step ${v.step} (${v.phase}): ${v.detail}\n  replay: make sim SEED=${r.seed}\n  ${r.traceTail.slice(-15).join('\n  ')}`;
}

t.test('20 seeds of 10,000 steps keep every invariant, and every pending request commits once faults stop', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const r = runSeed({ seed, steps: STEPS, mutant: 'none', keepTrace: false });
    t.equal(r.violation, null, describeFailure(r));
    t.ok(r.stats.steps >= STEPS, `seed ${seed} ran ${r.stats.steps} steps`);
  }
});

t.test('the runs exercise what they claim to: elections, writes, reads, membership, snapshots, faults, strangers refused', async (t) => {
  const total = { leadersElected: 0, acknowledgedWrites: 0, servedReads: 0, confChangesApplied: 0, snapshotsInstalled: 0, compactions: 0, crashes: 0, pauses: 0, partitions: 0, strangersRefused: 0 };
  for (let seed = 1; seed <= 5; seed++) {
    const s = runSeed({ seed, steps: STEPS, mutant: 'none', keepTrace: false }).stats;
    for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += s[k];
  }
  for (const [k, v] of Object.entries(total)) t.ok(v > 0, `${k} over 5 seeds: ${v}`);
});

t.test('a seed replays exactly: same trace hash, same outcome; another seed differs', async (t) => {
  const a = runSeed({ seed: 7, steps: STEPS, mutant: 'none', keepTrace: true });
  const b = runSeed({ seed: 7, steps: STEPS, mutant: 'none', keepTrace: false });
  const c = runSeed({ seed: 8, steps: STEPS, mutant: 'none', keepTrace: false });
  t.equal(a.traceHash, b.traceHash, 'seed 7 twice gives the same trace');
  t.same(a.violation, b.violation);
  t.same(a.stats, b.stats);
  t.not(a.traceHash, c.traceHash, 'seed 8 gives another trace');
  t.ok((a.fullTrace?.length ?? 0) >= STEPS, 'the full trace has an event per step at least');
});

for (const mutant of MUTANTS.filter((m) => m !== 'none')) {
  t.test(`mutant ${mutant} is caught within 400 seeds`, async (t) => {
    for (let seed = 1; seed <= 400; seed++) {
      const r = runSeed({ seed, steps: STEPS, mutant, keepTrace: false });
      if (r.violation && catchesMutant(mutant, r.violation.invariant)) {
        t.pass(`caught at seed ${seed}: ${r.violation.invariant}`);
        return;
      }
    }
    t.fail(`mutant ${mutant} was not caught in seeds 1..400`);
  });
}
