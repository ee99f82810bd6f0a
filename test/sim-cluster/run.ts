// The whole-node simulator's command line: many seeds across worker processes, one
// seed replayed twice with its trace, or a mutant hunted until a seed catches it.
//
//   npx tsx test/sim-cluster/run.ts --seeds 200 [--from 1] [--chaos-ms 60000] [--workers 2]
//   npx tsx test/sim-cluster/run.ts --seed 17                  replay: twice, trace to test-results/
//   npx tsx test/sim-cluster/run.ts --mutant ignore-lost-lease --expect-violation --seeds 100
//   npx tsx test/sim-cluster/run.ts --seed 59 --gc-min-age-ms 1000     (blobGcMinAgeMs of every member)
//
// Ends with the line `N seeds, M violations`; exits non-zero when M > 0, except with
// --expect-violation, where it exits 0 iff some seed caught the mutant.
import { fork } from 'node:child_process';
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
  chaosMs: number;
  mutant: Mutant;
  expectViolation: boolean;
  all: boolean;
  workers: number;
  worker: boolean;
  printTrace: boolean;
  gcMinAgeMs: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seeds: 200, from: 1, seed: null, chaosMs: 60_000, mutant: 'none', expectViolation: false, all: false, workers: Math.min(2, availableParallelism()), worker: false, printTrace: false, gcMinAgeMs: undefined };
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
      case '--chaos-ms':
        args.chaosMs = intArg(a, argv[++i]);
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
      case '--gc-min-age-ms':
        args.gcMinAgeMs = intArg(a, argv[++i]);
        break;
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

function replayCommand(r: RunResult): string {
  return `make sim-cluster SEED=${r.seed}${r.mutant === 'none' ? '' : ` MUTANT=${r.mutant}`}`;
}

function formatFailure(r: RunResult): string {
  const v = r.violation;
  if (!v) return '';
  return [
    `seed ${r.seed}: VIOLATION ${v.invariant} at ${v.atMs} ms (${v.phase} phase)${r.mutant === 'none' ? '' : ` [mutant ${r.mutant}]`}`,
    `  ${v.detail.split('\n').join('\n  ')}`,
    `  params: ${r.params}`,
    `  last ${r.traceTail.length} trace events:`,
    ...r.traceTail.map((l) => `    ${l}`),
    `  replay: ${replayCommand(r)}`,
  ].join('\n');
}

function formatStats(r: RunResult): string {
  const s = r.stats;
  return (
    `simulated=${(s.simulatedMs / 1000).toFixed(1)}s steps=${s.steps} commits=${s.committed} leaderChanges=${s.leaderChanges} crashes=${s.crashes} partitions=${s.partitions} joins=${s.joins} ` +
    `submits=${s.submits} acked=${s.jobsAcknowledged} final=${s.jobsFinal} exits=${s.exitsAccepted} cancels=${s.cancels} attempts=${s.attempts} starts=${s.starts} restores=${s.restores} ` +
    `restoreFallbacks=${s.restoreFallbacks} checkpoints=${s.checkpointsCommitted} freezes=${s.freezes} fencedReports=${s.fencedReports} killedByCrash=${s.killedByCrash} ` +
    `snapshotsInstalled=${s.snapshotsInstalled} lostWrites=${s.lostWrites} frames=${s.framesDelivered}/${s.framesSent}`
  );
}

/** `make sim-cluster SEED=n`: the seed twice, compared; the whole trace to a file. */
async function replay(args: Args, seed: number): Promise<number> {
  const first = await runSeed({ seed, mutant: args.mutant, keepTrace: true, chaosMs: args.chaosMs, gcMinAgeMs: args.gcMinAgeMs });
  const second = await runSeed({ seed, mutant: args.mutant, keepTrace: true, chaosMs: args.chaosMs, gcMinAgeMs: args.gcMinAgeMs });
  const dir = join(root, 'test-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `sim-cluster-seed-${seed}${args.mutant === 'none' ? '' : `-${args.mutant}`}.trace`);
  writeFileSync(file, `${(first.fullTrace ?? []).join('\n')}\n`);
  writeFileSync(file.replace(/\.trace$/, '.run2.trace'), `${(second.fullTrace ?? []).join('\n')}\n`);
  if (args.printTrace) {
    for (const [n, run] of [[1, first], [2, second]] as const) process.stdout.write(`seed ${seed}: trace of run ${n}:\n${(run.fullTrace ?? []).join('\n')}\n`);
  }
  process.stdout.write(`seed ${seed}: ${first.params}\n`);
  process.stdout.write(`seed ${seed}: ${formatStats(first)} (${(first.wallMs / 1000).toFixed(1)} s)\n`);
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
  if (first.realTime.length > 0) process.stdout.write(`seed ${seed}: real time used by:\n${first.realTime.map((s) => `    ${s}`).join('\n')}\n`);
  if (first.violation) process.stdout.write(`${formatFailure(first)}\n`);
  else process.stdout.write(`seed ${seed}: last events:\n${first.traceTail.slice(-15).map((l) => `    ${l}`).join('\n')}\n`);
  const violations = first.violation ? 1 : 0;
  process.stdout.write(`1 seeds, ${violations} violations\n`);
  if (args.expectViolation) return violations > 0 && deterministic ? 0 : 1;
  return violations === 0 && deterministic ? 0 : 1;
}

/** A worker process: runs the seeds its parent sends, one at a time, answers each with its result. */
function workerLoop(args: Args): void {
  let queue = Promise.resolve();
  process.on('message', (msg: unknown) => {
    if (typeof msg !== 'object' || msg === null || !('seed' in msg) || typeof msg.seed !== 'number') {
      void queue.then(() => process.exit(0));
      return;
    }
    const seed = msg.seed;
    queue = queue.then(async () => {
      const r = await runSeed({ seed, mutant: args.mutant, keepTrace: false, chaosMs: args.chaosMs, gcMinAgeMs: args.gcMinAgeMs });
      process.send?.(r);
    });
  });
}

/** Seeds from..from+count-1 over `workers` processes, handed out in increasing order. */
async function runMany(args: Args): Promise<number> {
  const started = performance.now();
  const last = args.from + args.seeds - 1;
  let next = args.from;
  let stopAbove = Infinity;
  const results: RunResult[] = [];
  const realTime = new Set<string>();
  const workerArgs = ['--worker', '--chaos-ms', String(args.chaosMs), '--mutant', args.mutant, ...(args.gcMinAgeMs === undefined ? [] : ['--gc-min-age-ms', String(args.gcMinAgeMs)])];
  await Promise.all(
    Array.from({ length: Math.min(args.workers, args.seeds) }, () =>
      new Promise<void>((done, fail) => {
        const child = fork(fileURLToPath(import.meta.url), workerArgs, { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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
          for (const s of r.realTime) realTime.add(s.replace(/ \(\d+×\)$/, ''));
          if (r.violation) {
            if (!args.expectViolation) process.stdout.write(`${formatFailure(r)}\n`);
            else if (catchesMutant(r.mutant, r.violation.invariant)) {
              if (!args.all) stopAbove = Math.min(stopAbove, r.seed);
              else process.stdout.write(`seed ${r.seed}: caught (${r.violation.invariant})\n`);
            } else process.stdout.write(`seed ${r.seed}: ${r.violation.invariant} (not what mutant ${r.mutant} breaks; not counted as caught)\n${formatFailure(r)}\n`);
          }
          feed();
        });
        child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`sim-cluster worker exited with ${code}`))));
        child.on('error', fail);
        feed();
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  results.sort((a, b) => a.seed - b.seed);
  const counted = args.expectViolation ? results.filter((r) => r.seed <= stopAbove) : results;
  const failed = counted.filter((r) => r.violation && (!args.expectViolation || catchesMutant(r.mutant, r.violation.invariant)));
  const simulated = counted.reduce((s, r) => s + r.stats.simulatedMs, 0) / 1000;
  const slowest = counted.reduce<RunResult | null>((a, r) => (a === null || r.wallMs > a.wallMs ? r : a), null);
  process.stdout.write(
    `# ${counted.length} seeds in ${seconds.toFixed(1)} s (${(counted.length / seconds).toFixed(2)} seeds/s, ${(simulated / seconds).toFixed(0)} simulated s per s, ${args.workers} workers, ${args.chaosMs / 1000} s of chaos per seed; slowest seed ${slowest?.seed} ${((slowest?.wallMs ?? 0) / 1000).toFixed(1)} s)\n`,
  );
  if (realTime.size > 0) process.stdout.write(`# real time used by the code under test (routed to simulated time):\n${[...realTime].map((s) => `#   ${s}`).join('\n')}\n`);
  if (args.expectViolation) {
    const caught = failed[0];
    if (caught) {
      process.stdout.write(`${formatFailure(caught)}\n`);
      process.stdout.write(`mutant ${args.mutant}: caught at seed ${caught.seed} (${caught.violation?.invariant})\n`);
      if (args.all) process.stdout.write(`mutant ${args.mutant}: caught by ${failed.length} of ${counted.length} seeds\n`);
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
  process.exitCode = await replay(args, args.seed);
} else {
  process.exitCode = await runMany(args);
}
