// `make fuzz`: every target in test/fuzz/targets/ in turn, in batches at fresh seeds,
// for FUZZ_SECONDS (default 600), then a report of iterations per target.
//
// Three ways to fail, each with the seed that replays it:
// - a crash: a property fails or throws (fast-check shrinks it and prints the input);
// - a hang: a batch that makes no progress for HANG_SECONDS. The work runs in a child
//   process that reports after every batch; the parent kills a silent child;
// - unbounded growth: the child's heap after a forced GC, sampled after every round,
//   may not keep rising. Growth is judged on the second half of the run against the
//   first (after warm-up, caches and JIT settle): more than GROWTH_LIMIT_MIB is a leak.
//
// Replay one batch: FUZZ_TARGET=name FUZZ_SEED=n FUZZ_RUNS=k tsx test/fuzz/run.ts
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { loadTargets } from './target.js';

const BATCH_RUNS = 200;
const HANG_SECONDS = 120;
const GROWTH_LIMIT_MIB = 64;

interface BatchReport {
  kind: 'batch';
  target: string;
  seed: number;
  runs: number;
  ms: number;
  heapMiB: number;
}
interface FailReport {
  kind: 'fail';
  target: string;
  seed: number;
  message: string;
}
type Report = BatchReport | FailReport | { kind: 'done' } | { kind: 'flush' };

function heapAfterGcMiB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  return process.memoryUsage().heapUsed / (1024 * 1024);
}

/** The child: rounds over every target until the deadline, one batch per target per round. */
async function child(deadlineMs: number): Promise<void> {
  const send = (r: Report): void => {
    process.send?.(r);
  };
  const only = process.env.FUZZ_TARGET;
  const targets = (await loadTargets()).filter((t) => !only || t.name === only);
  if (targets.length === 0) throw new Error(`no fuzz target named ${only}`);
  const fixedSeed = process.env.FUZZ_SEED === undefined ? null : Number(process.env.FUZZ_SEED);
  const runs = Number(process.env.FUZZ_RUNS ?? BATCH_RUNS);
  do {
    for (const target of targets) {
      const seed = fixedSeed ?? (Math.random() * 2 ** 31) | 0;
      const started = Date.now();
      try {
        await fc.assert(target.property(), { numRuns: runs, seed, endOnFailure: true });
      } catch (err) {
        send({ kind: 'fail', target: target.name, seed, message: err instanceof Error ? err.message : String(err) });
        return;
      }
      send({ kind: 'batch', target: target.name, seed, runs, ms: Date.now() - started, heapMiB: heapAfterGcMiB() });
    }
  } while (fixedSeed === null && Date.now() < deadlineMs);
  send({ kind: 'done' });
}

interface Tally {
  iterations: number;
  batches: number;
  ms: number;
  slowestBatchMs: number;
}

/** The parent: starts the child, watches it, prints the report; exit status 1 on any failure. */
async function parent(): Promise<number> {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 600);
  const deadlineMs = Date.now() + seconds * 1000;
  const tallies = new Map<string, Tally>();
  const heapSamples: number[] = [];
  const failures: string[] = [];
  const proc: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child', String(deadlineMs)], {
    execArgv: [...process.execArgv, '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let lastProgress = Date.now();
  let lastTarget = '(start)';
  let done = false;
  process.stdout.write(`fuzz: every target for ${seconds} s, ${BATCH_RUNS} runs per batch\n`);
  const watchdog = setInterval(() => {
    if (Date.now() - lastProgress > HANG_SECONDS * 1000) {
      failures.push(`hang: no batch finished for ${HANG_SECONDS} s (after ${lastTarget})`);
      proc.kill('SIGKILL');
    }
  }, 1000);
  let lastPrint = Date.now();
  proc.on('message', (r: Report) => {
    lastProgress = Date.now();
    if (r.kind === 'flush') return;
    if (r.kind === 'done') {
      done = true;
      return;
    }
    if (r.kind === 'fail') {
      failures.push(`crash in ${r.target} at seed ${r.seed} (replay: FUZZ_TARGET=${r.target} FUZZ_SEED=${r.seed} FUZZ_RUNS=${BATCH_RUNS} node_modules/.bin/tsx test/fuzz/run.ts)\n${r.message}`);
      return;
    }
    lastTarget = r.target;
    const t = tallies.get(r.target) ?? { iterations: 0, batches: 0, ms: 0, slowestBatchMs: 0 };
    t.iterations += r.runs;
    t.batches += 1;
    t.ms += r.ms;
    t.slowestBatchMs = Math.max(t.slowestBatchMs, r.ms);
    tallies.set(r.target, t);
    heapSamples.push(r.heapMiB);
    if (Date.now() - lastPrint > 30_000) {
      lastPrint = Date.now();
      const total = [...tallies.values()].reduce((s, x) => s + x.iterations, 0);
      process.stdout.write(`fuzz: ${Math.round((deadlineMs - Date.now()) / 1000)} s left, ${total} iterations, heap ${r.heapMiB.toFixed(1)} MiB\n`);
    }
  });
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  clearInterval(watchdog);
  if (!done && failures.length === 0) failures.push(`the fuzz process ended early (exit status ${code})`);

  process.stdout.write('\n| target | iterations | batches | iterations/s | slowest batch (ms) |\n| --- | --- | --- | --- | --- |\n');
  for (const [name, t] of [...tallies].sort(([a], [b]) => a.localeCompare(b))) {
    process.stdout.write(`| ${name} | ${t.iterations} | ${t.batches} | ${Math.round((t.iterations * 1000) / Math.max(1, t.ms))} | ${t.slowestBatchMs} |\n`);
  }
  const half = Math.floor(heapSamples.length / 2);
  if (half >= 4) {
    const first = Math.max(...heapSamples.slice(0, half));
    const last = heapSamples.slice(half);
    const growth = Math.max(...last) - first;
    process.stdout.write(`\nheap after GC: peak of first half ${first.toFixed(1)} MiB, peak of second half ${Math.max(...last).toFixed(1)} MiB, growth ${growth.toFixed(1)} MiB (limit ${GROWTH_LIMIT_MIB})\n`);
    if (growth > GROWTH_LIMIT_MIB) failures.push(`unbounded growth: heap rose ${growth.toFixed(1)} MiB from the first half of the run to the second`);
  }
  for (const f of failures) process.stdout.write(`\nFAIL ${f}\n`);
  const total = [...tallies.values()].reduce((s, x) => s + x.iterations, 0);
  process.stdout.write(`\nfuzz: ${total} iterations over ${tallies.size} targets; ${failures.length === 0 ? 'no crash, no hang, no unbounded growth' : `${failures.length} failure(s)`}\n`);
  return failures.length === 0 ? 0 : 1;
}

if (process.argv[2] === '--child') {
  await child(Number(process.argv[3]));
  // The IPC channel keeps a forked child alive: close it once the last report is out.
  await new Promise<void>((resolve) => (process.send ? process.send({ kind: 'flush' }, () => resolve()) : resolve()));
  process.disconnect?.();
} else {
  process.exit(await parent());
}
