// workrs plan, run as the built binary: issue 7's acceptance 1 (--json prints one
// object, paper.checkpoints 5 and 348.7 s), the readable table with its one-line
// advice, and bad input as a usage error (exit 2, message on stderr, nothing on stdout).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { BINARY } from '../process/harness.js';

if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run 'make build' (make test does it)`);

function plan(...args: string[]) {
  const r = spawnSync(BINARY, ['plan', ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

interface ModelPlan {
  checkpoints: number;
  intervalSeconds: number;
  expectedSeconds: number | null;
}
interface PlanJson {
  paper: ModelPlan;
  exact: ModelPlan;
  young: { intervalSeconds: number };
  daly: { intervalSeconds: number };
  noCheckpointSeconds: number | null;
}

const ACCEPTANCE = ['--estimate', '300s', '--mtbf', '333.33s', '--checkpoint-cost', '5s'];

t.test('acceptance 1: --json prints exactly one object; paper: 5 checkpoints, 348.7 s', async (t) => {
  const r = plan(...ACCEPTANCE, '--json');
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '', 'nothing on stderr');
  t.equal(r.stdout.trim().split('\n').length, 1, 'one line');
  const p = JSON.parse(r.stdout) as PlanJson;
  t.same(Object.keys(p), ['paper', 'exact', 'young', 'daly', 'noCheckpointSeconds'], "issue 7's keys, in order");
  t.same(Object.keys(p.paper), ['checkpoints', 'intervalSeconds', 'expectedSeconds']);
  t.same(Object.keys(p.exact), ['checkpoints', 'intervalSeconds', 'expectedSeconds']);
  t.equal(p.paper.checkpoints, 5);
  t.ok(Math.abs((p.paper.expectedSeconds ?? NaN) - 348.7) <= 0.1, `paper.expectedSeconds ${p.paper.expectedSeconds}`);
  t.equal(p.paper.intervalSeconds, 50);
  t.equal(p.exact.checkpoints, 4);
  t.equal(p.exact.intervalSeconds, 60);
  t.ok(Math.abs((p.exact.expectedSeconds ?? NaN) - 352.8) <= 0.1, `exact.expectedSeconds ${p.exact.expectedSeconds}`);
  t.ok(Math.abs((p.noCheckpointSeconds ?? NaN) - 486.5) <= 0.1, `noCheckpointSeconds ${p.noCheckpointSeconds}`);
  t.ok(Math.abs(p.young.intervalSeconds - 57.73) < 0.01, `young ${p.young.intervalSeconds}`);
  t.ok(Math.abs(p.daly.intervalSeconds - 54.45) < 0.01, `daly ${p.daly.intervalSeconds}`);
});

t.test('--restore-cost scales the exact model by e^{R/M} and leaves the paper model alone', async (t) => {
  const base = JSON.parse(plan(...ACCEPTANCE, '--json').stdout) as PlanJson;
  const r = plan(...ACCEPTANCE, '--restore-cost', '10s', '--json');
  t.equal(r.status, 0, r.stderr);
  const p = JSON.parse(r.stdout) as PlanJson;
  t.same(p.paper, base.paper);
  t.equal(p.exact.checkpoints, base.exact.checkpoints);
  t.ok(Math.abs((p.exact.expectedSeconds ?? NaN) / (base.exact.expectedSeconds ?? NaN) - Math.exp(10 / 333.33)) < 1e-9);
});

t.test('without --json: the inputs, a table of the models, and one line of advice', async (t) => {
  const r = plan(...ACCEPTANCE);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^W = 300 s, M = 333\.3 s, C = 5 s, R = 0 s\n/);
  t.match(r.stdout, /^MODEL\s+CHECKPOINTS\s+INTERVAL\s+EXPECTED$/m);
  t.match(r.stdout, /^exact\s+4\s+60 s\s+352\.8 s$/m);
  t.match(r.stdout, /^paper\s+5\s+50 s\s+348\.7 s$/m);
  t.match(r.stdout, /^none\s+0\s+-\s+486\.5 s$/m);
  t.match(r.stdout, /^Young \(1974\)\s+-\s+57\.7 s\s+-$/m);
  t.match(r.stdout, /^Daly \(2006\)\s+-\s+54\.4 s\s+-$/m);
  t.match(r.stdout, /\ntake 4 checkpoints, one every 60 s: expected 352\.8 s instead of 486\.5 s without\n$/);
  const reliable = plan('--estimate', '300s', '--mtbf', '10000s', '--checkpoint-cost', '5s');
  t.match(reliable.stdout, /\ntake no checkpoints: they do not pay here \(expected 304\.5 s without\)\n$/);
});

t.test('bad input: exit 2, the flag and the rule on stderr, nothing on stdout', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--estimate', '0s', '--mtbf', '1h', '--checkpoint-cost', '5s'], /--estimate: .*greater than 0/],
    [['--estimate', '5m', '--mtbf', '0', '--checkpoint-cost', '5s'], /--mtbf: .*greater than 0/],
    [['--estimate', '5m', '--mtbf', 'soon', '--checkpoint-cost', '5s'], /--mtbf: 'soon' is not a duration/],
    [['--estimate', '5m', '--mtbf', '1h', '--checkpoint-cost', '-5s'], /--checkpoint-cost: .*not a duration/],
    [['--estimate', '5m', '--mtbf', '1h', '--checkpoint-cost', '5s', '--restore-cost', 'x'], /--restore-cost: 'x' is not a duration/],
    [['--estimate', '5m', '--mtbf', '1h'], /required option '--checkpoint-cost/],
  ];
  for (const [args, message] of cases) {
    const r = plan(...args);
    t.equal(r.status, 2, `${args.join(' ')} exits 2`);
    t.match(r.stderr, message, `${args.join(' ')}: ${r.stderr.trim()}`);
    t.equal(r.stdout, '', 'nothing on stdout');
  }
});
