// The short fuzz run inside `make test`: every target for FUZZ_RUNS runs (default 300)
// at a fixed seed per target. `make fuzz` runs them for minutes at fresh seeds.
import t from 'tap';
import fc from 'fast-check';
import { loadTargets, seedOf } from './target.js';

const runs = Number(process.env.FUZZ_RUNS ?? 300);
const targets = await loadTargets();

t.ok(targets.length >= 5, `fuzz targets found: ${targets.map((x) => x.name).join(', ')}`);
for (const target of targets) {
  t.test(`fuzz ${target.name}: ${runs} runs without a crash or a wrong answer`, async (t) => {
    const seed = seedOf(target.name);
    await fc.assert(target.property(), { numRuns: runs, seed, endOnFailure: true });
    t.pass(`seed ${seed}`);
  });
}
