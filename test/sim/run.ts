// The simulator's command line: many seeds across worker processes, one seed replayed
// twice with its trace, or a mutant hunted until a seed catches it.
//
//   npx tsx test/sim/run.ts --seeds 500 [--from 1] [--steps 10000] [--workers 2]
//   npx tsx test/sim/run.ts --seed 17                     replay: twice, trace to test-results/
//   npx tsx test/sim/run.ts --mutant no-figure8 --expect-violation --seeds 2000
//   npx tsx test/sim/run.ts --mutant no-figure8 --expect-violation --all --seeds 500   (how often it is caught)
//
// Ends with the line `N seeds, M violations`; exits non-zero when M > 0, except with
// --expect-violation, where it exits 0 iff some seed caught the mutant.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { catchesMutant, isMutant, MUTANTS, runSeed, type Mutant, type RunResult } from './scenario.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Args {
  seeds: number;
  from: number;
  seed: number | null;
  steps: number;
  mutant: Mutant;
  expectViolation: boolean;
  /** With --expect-violation: run every seed instead of stopping at the first catch. */
  all: boolean;
  workers: number;
  worker: boolean;
  /** With --seed: print both runs' whole traces, one after the other. */
  printTrace: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seeds: 100, from: 1, seed: null, steps: 10_000, mutant: 'none', expectViolation: false, all: false, workers: Math.min(2, availableParallelism()), worker: false, printTrace: false };
  const intArg = (name: string, value: string | undefined): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} needs a non-negative integer, got ${value}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--seeds':
        args.seeds = intArg(a, argv[++i]);
        break;
      case '--from':
        args.from = intArg(a, argv[++i]);
        break;
      case '--seed':
        args.seed = intArg(a, argv[++i]);
        break;
      case '--steps':
        args.steps = intArg(a, argv[++i]);
        break;
      case '--workers':
        args.workers = Math.max(1, intArg(a, argv[++i]));
        break;
      case '--mutant': {
        const m = argv[++i] ?? '';
        if (!isMutant(m)) throw new Error(`--mutant must be one of ${MUTANTS.join(', ')}, got ${m}`);
        args.mutant = m;
        break;
      }
      case '--print-trace':
        args.printTrace = true;
        break;
      case '--expect-violation':
        args.expectViolation = true;
        break;
      case '--all':
        args.all = true;
        break;
      case '--worker':
        args.worker = true;
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  return args;
}

function formatFailure(r: RunResult): string {
  const v = r.violation;
  if (!v) return '';
  const lines = [
    `seed ${r.seed}: VIOLATION ${v.invariant} at step ${v.step} (${v.phase} phase)${r.mutant === 'none' ? '' : ` [mutant ${r.mutant}]`}`,
    `  ${v.detail.split('\n').join('\n  ')}`,
    `  params: ${r.params}`,
    `  last ${r.traceTail.length} trace events:`,
    ...r.traceTail.map((l) => `    ${l}`),
    `  replay: make sim SEED=${r.seed}${r.mutant === 'none' ? '' : ` MUTANT=${r.mutant}`}`,
  ];
  return lines.join('\n');
}

function formatStats(r: RunResult): string {
  const s = r.stats;
  return (
    `steps=${s.steps} ticks=${s.ticks} delivered=${s.delivered} leaders=${s.leadersElected} maxTerm=${s.maxTerm} ` +
    `acked=${s.acknowledgedWrites} reads=${s.servedReads} confChanges=${s.confChangesApplied} snapshotsInstalled=${s.snapshotsInstalled} ` +
    `compactions=${s.compactions} crashes=${s.crashes} pauses=${s.pauses} partitions=${s.partitions} transfers=${s.transfers} strangersRefused=${s.strangersRefused}`
  );
}

/** `make sim SEED=n`: the seed twice, compared; the whole trace to a file. */
function replay(args: Args, seed: number): number {
  const first = runSeed({ seed, steps: args.steps, mutant: args.mutant, keepTrace: true });
  const second = runSeed({ seed, steps: args.steps, mutant: args.mutant, keepTrace: true });
  const dir = join(root, 'test-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `sim-seed-${seed}${args.mutant === 'none' ? '' : `-${args.mutant}`}.trace`);
  writeFileSync(file, `${(first.fullTrace ?? []).join('\n')}\n`);
  writeFileSync(file.replace(/\.trace$/, '.run2.trace'), `${(second.fullTrace ?? []).join('\n')}\n`);
  if (args.printTrace) {
    for (const [n, run] of [[1, first], [2, second]] as const) {
      process.stdout.write(`seed ${seed}: trace of run ${n}:\n${(run.fullTrace ?? []).join('\n')}\n`);
    }
  }
  process.stdout.write(`seed ${seed}: ${first.params}\n`);
  process.stdout.write(`seed ${seed}: ${formatStats(first)}\n`);
  process.stdout.write(`seed ${seed}: trace ${first.traceHash} (${first.fullTrace?.length ?? 0} events) written to ${file}\n`);
  const deterministic = first.traceHash === second.traceHash && JSON.stringify(first.violation) === JSON.stringify(second.violation);
  if (!deterministic) {
    process.stdout.write(`seed ${seed}: NOT DETERMINISTIC: second run's trace is ${second.traceHash}\n`);
    const a = first.fullTrace ?? [];
    const b = second.fullTrace ?? [];
    const at = a.findIndex((line, i) => line !== b[i]);
    process.stdout.write(`  first difference at event ${at}:\n    run 1: ${a[at]}\n    run 2: ${b[at]}\n`);
  } else {
    process.stdout.write(`seed ${seed}: second run identical (${second.traceHash})\n`);
  }
  if (first.violation) process.stdout.write(`${formatFailure(first)}\n`);
  else process.stdout.write(`seed ${seed}: last events:\n${first.traceTail.slice(-15).map((l) => `    ${l}`).join('\n')}\n`);
  const violations = first.violation ? 1 : 0;
  process.stdout.write(`1 seeds, ${violations} violations\n`);
  if (args.expectViolation) return violations > 0 && deterministic ? 0 : 1;
  return violations === 0 && deterministic ? 0 : 1;
}

/** A worker process: runs the seeds its parent sends, answers each with its result. */
function workerLoop(args: Args): void {
  process.on('message', (msg: unknown) => {
    if (typeof msg !== 'object' || msg === null || !('seed' in msg) || typeof msg.seed !== 'number') {
      process.exit(0);
    }
    const r = runSeed({ seed: msg.seed, steps: args.steps, mutant: args.mutant, keepTrace: false });
    process.send?.(r);
  });
}

/** Seeds from..from+count-1 over `workers` processes, handed out in increasing order. */
async function runMany(args: Args): Promise<number> {
  const started = performance.now();
  const last = args.from + args.seeds - 1;
  let next = args.from;
  /** With --expect-violation: no seed above the lowest caught one is handed out. */
  let stopAbove = Infinity;
  const results: RunResult[] = [];
  let steps = 0;
  const workerArgs = ['--worker', '--steps', String(args.steps), '--mutant', args.mutant];
  const children: ChildProcess[] = [];
  await Promise.all(
    Array.from({ length: Math.min(args.workers, args.seeds) }, () =>
      new Promise<void>((done, fail) => {
        const child = fork(fileURLToPath(import.meta.url), workerArgs, { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        const feed = (): void => {
          if (next > last || next > stopAbove) {
            child.send({ stop: true });
            return;
          }
          child.send({ seed: next++ });
        };
        child.on('message', (msg) => {
          const r = msg as RunResult;
          results.push(r);
          steps += r.stats.steps;
          if (r.violation) {
            if (!args.expectViolation) process.stdout.write(`${formatFailure(r)}\n`);
            else if (catchesMutant(r.mutant, r.violation.invariant)) {
              if (!args.all) stopAbove = Math.min(stopAbove, r.seed);
              else process.stdout.write(`seed ${r.seed}: caught (${r.violation.invariant}) ${r.params}\n`);
            }
            else process.stdout.write(`seed ${r.seed}: ${r.violation.invariant} (not what mutant ${r.mutant} breaks; not counted as caught)\n`);
          }
          feed();
        });
        child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`sim worker exited with ${code}`))));
        child.on('error', fail);
        feed();
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  results.sort((a, b) => a.seed - b.seed);
  const counted = args.expectViolation ? results.filter((r) => r.seed <= stopAbove) : results;
  const failed = counted.filter((r) => r.violation && (!args.expectViolation || catchesMutant(r.mutant, r.violation.invariant)));
  process.stdout.write(
    `# ${counted.length} seeds in ${seconds.toFixed(1)} s (${(counted.length / seconds).toFixed(2)} seeds/s, ${Math.round(steps / seconds)} steps/s, ${args.workers} workers, ${args.steps} safety steps per seed)\n`,
  );
  if (args.expectViolation) {
    const caught = failed[0];
    if (caught) {
      process.stdout.write(`${formatFailure(caught)}\n`);
      process.stdout.write(`mutant ${args.mutant}: caught at seed ${caught.seed} (${caught.violation?.invariant})\n`);
      if (args.all) {
        const byInvariant = new Map<string, number>();
        for (const r of failed) byInvariant.set(r.violation?.invariant ?? '', (byInvariant.get(r.violation?.invariant ?? '') ?? 0) + 1);
        const kinds = [...byInvariant].map(([k, n]) => `${k} ${n}`).join(', ');
        process.stdout.write(`mutant ${args.mutant}: caught by ${failed.length} of ${counted.length} seeds (${kinds})\n`);
      }
    } else {
      process.stdout.write(`mutant ${args.mutant}: NOT caught in seeds ${args.from}..${last}\n`);
    }
  }
  process.stdout.write(`${counted.length} seeds, ${failed.length} violations\n`);
  if (args.expectViolation) return failed.length > 0 ? 0 : 1;
  return failed.length === 0 ? 0 : 1;
}

const args = parseArgs(process.argv.slice(2));
if (args.worker) {
  workerLoop(args);
} else if (args.seed !== null) {
  process.exitCode = replay(args, args.seed);
} else {
  process.exitCode = await runMany(args);
}
