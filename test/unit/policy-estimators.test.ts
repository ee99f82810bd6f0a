// The online policy's estimators: the prior with no observations, the truth with many.
import t from 'tap';
import { estimateCost, estimateMtbf } from '../../src/policy/estimators.js';
import { prng as rng } from './state-fixtures.js';

t.test('with no observations the estimates are the priors', async (t) => {
  t.equal(estimateMtbf({ mtbfSeconds: 86_400, weight: 2 }, 0, 0).mtbfSeconds, 86_400);
  t.same(estimateCost([], 7), { seconds: 7, samples: 0 });
});

t.test('with many observed losses the failure estimate converges to the true rate', async (t) => {
  const trueMtbf = 600;
  const random = rng(42);
  // Boxes fail after exponential up-times; each loss is followed by a fresh box.
  let exposure = 0;
  let losses = 0;
  const errors: number[] = [];
  for (const target of [10, 100, 1000, 10_000]) {
    while (losses < target) {
      exposure += -Math.log(1 - random()) * trueMtbf;
      losses += 1;
    }
    const est = estimateMtbf({ mtbfSeconds: 86_400, weight: 1 }, losses, exposure).mtbfSeconds;
    errors.push(Math.abs(est - trueMtbf) / trueMtbf);
    t.comment(`${losses} losses: estimate ${est.toFixed(1)} s (true ${trueMtbf} s)`);
  }
  t.ok(errors[3]! < 0.03, `within 3% after 10,000 losses (${(100 * errors[3]!).toFixed(2)}%)`);
  t.ok(errors[3]! < errors[0]!, 'closer with more observations');
  // A stronger prior far from the truth is overcome too, only later.
  const stubborn = estimateMtbf({ mtbfSeconds: 100_000, weight: 5 }, losses, exposure).mtbfSeconds;
  t.ok(Math.abs(stubborn - trueMtbf) / trueMtbf < 0.1, `a prior of 100,000 s worth 5 losses ends at ${stubborn.toFixed(1)} s`);
});

t.test('cost estimates follow the newest measurements', async (t) => {
  const random = rng(7);
  const samples = Array.from({ length: 200 }, () => 4 + (random() - 0.5));
  const est = estimateCost(samples, 30);
  t.ok(Math.abs(est.seconds - 4) < 1.5, `a 30 s prior worth one sample gives way: ${est.seconds.toFixed(2)} s`);
  t.equal(est.samples, 20, 'only the newest window counts');
  t.equal(estimateCost([2, Number.NaN, -1, 4], 3, 1).seconds, 3, 'invalid samples are ignored: (2 + 4 + 3) / 3');
  t.throws(() => estimateMtbf({ mtbfSeconds: 0, weight: 1 }, 0, 0), RangeError);
});
