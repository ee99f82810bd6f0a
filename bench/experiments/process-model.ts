// A Monte Carlo model of what this experiment actually runs, next to the exact model's
// idealised process (src/policy/simulate.ts), to tell which gaps between measurement and
// model are the system's mechanics and which are noise. What it adds:
//  - checkpoints start on the worker's wall-clock timer (setInterval from the attempt's
//    start), not after fixed amounts of work, and a tick is skipped while the previous
//    checkpoint is still in progress;
//  - a checkpoint freezes the job for `freezeSeconds` (the measured frozenMs), but only
//    becomes a resume point `commitSeconds` later (bundle export, copy to a second node,
//    the Raft commit): a failure in that window loses the segment as if it had no
//    checkpoint;
//  - failures strike only a running attempt: the injector draws F at every (re)start,
//    and a restart costs exactly R (no failure interrupts it);
//  - `auto` re-plans at every attempt's start and every commit on the work that remains,
//    and the worker re-arms its timer when the interval moves by more than 10%.
import { SeededRandom } from '../../src/policy/random.js';

export interface ProcessInput {
  workSeconds: number;
  mtbfSeconds: number;
  /** The worker's checkpoint interval (null: no checkpoints), or a plan made from the work that remains (`auto`). */
  intervalSeconds: number | null | ((remainingSeconds: number) => number | null);
  freezeSeconds: number;
  commitSeconds: number;
  restartSeconds: number;
  /** Replay: the restart each failure took in the real run, in order (restartSeconds after them). */
  restarts?: readonly number[];
}

/** Where the times to failure come from: a seeded stream, or a run's recorded draws (replay). */
export interface FailureTimes {
  nextExponential(mean: number): number;
}

/**
 * The times to failure a real run drew, in order (one per attempt), then fresh ones
 * from `rest` if the model needs more attempts than the run had.
 */
export function replay(draws: readonly number[], rest: FailureTimes): FailureTimes {
  let i = 0;
  return { nextExponential: (mean) => (i < draws.length ? (draws[i++] as number) : rest.nextExponential(mean)) };
}

/** The restart after failure number `i` (from 0). */
function restartAfter(p: ProcessInput, i: number): number {
  return p.restarts?.[i] ?? p.restartSeconds;
}

/** One run: seconds from the first start to the end, and failures met. */
export function simulateProcessRun(p: ProcessInput, random: FailureTimes): { seconds: number; failures: number } {
  let total = 0;
  let failures = 0;
  let kept = 0; // work the newest committed checkpoint holds
  for (;;) {
    const failAt = random.nextExponential(p.mtbfSeconds);
    let t = 0;
    let work = kept;
    let committed = kept;
    let pending: { work: number; at: number } | null = null;
    const planned = p.intervalSeconds;
    const plan = (): number | null => (typeof planned === 'function' ? planned(p.workSeconds - committed) : planned);
    let interval = plan();
    let tick = interval ?? Number.POSITIVE_INFINITY;
    let failed = false;
    for (;;) {
      const finishAt = t + (p.workSeconds - work);
      const commitAt = pending?.at ?? Number.POSITIVE_INFINITY;
      const next = Math.min(finishAt, tick, commitAt);
      if (failAt < next) {
        failed = true;
        total += failAt + restartAfter(p, failures);
        break;
      }
      work += next - t;
      t = next;
      if (next === finishAt) return { seconds: total + t, failures };
      if (next === commitAt && pending !== null) {
        committed = pending.work;
        pending = null;
        const replanned = plan();
        if (replanned === null) tick = Number.POSITIVE_INFINITY;
        else if (interval === null || Math.abs(replanned - interval) > 0.1 * interval) tick = t + replanned;
        if (replanned === null || interval === null || Math.abs(replanned - interval) > 0.1 * interval) interval = replanned;
        continue;
      }
      // A timer tick: skipped while the previous checkpoint is not committed yet.
      tick += interval ?? 0;
      if (pending !== null) continue;
      if (failAt < t + p.freezeSeconds) {
        failed = true;
        total += failAt + restartAfter(p, failures);
        break;
      }
      t += p.freezeSeconds;
      while (interval !== null && tick <= t) tick += interval;
      pending = { work, at: t + p.commitSeconds };
    }
    if (failed) {
      failures += 1;
      kept = committed;
    }
  }
}

export function simulateProcess(p: ProcessInput, runs: number, seed: number): { meanSeconds: number; standardErrorSeconds: number } {
  const random = new SeededRandom(seed);
  let mean = 0;
  let squares = 0;
  for (let i = 1; i <= runs; i++) {
    const x = simulateProcessRun(p, random).seconds;
    const delta = x - mean;
    mean += delta / i;
    squares += delta * (x - mean);
  }
  return { meanSeconds: mean, standardErrorSeconds: Math.sqrt(squares / (runs - 1) / runs) };
}
