import type { ManualClock } from '../../src/util/manual-clock.js';

/**
 * Code under test must take time from its injected Clock and randomness from its
 * injected source. Anything that still reads the process's clock, arms a process
 * timer or calls Math.random would make a run depend on the machine, so while a seed
 * runs, Date.now, performance.now, setTimeout and setInterval are routed to the run's
 * simulated clock, Math.random to a stream of the seed, and every call site that used
 * them is recorded:
 * the run stays deterministic and the report lists what is left to convert
 * (`real time used by`, FINDINGS.md). setImmediate stays real (its callbacks keep
 * their order, and the simulator itself uses it to let every pending promise
 * continuation run) but its callers are recorded too: on simulated time it runs
 * "between" instants.
 */

interface SimHandle {
  simTimer: { cancel(): void };
  unref(): SimHandle;
  ref(): SimHandle;
  hasRef(): boolean;
  refresh(): SimHandle;
}

const real = {
  random: Math.random,
  dateNow: Date.now,
  performanceNow: performance.now.bind(performance),
  setTimeout: globalThis.setTimeout,
  setInterval: globalThis.setInterval,
  clearTimeout: globalThis.clearTimeout,
  clearInterval: globalThis.clearInterval,
  setImmediate: globalThis.setImmediate,
};

let current: ManualClock | null = null;
let currentRandom: (() => number) | null = null;
const sites = new Map<string, number>();

/** The first two frames outside this file and node's internals: who asked for real time, and its caller. */
function callSite(): string {
  const lines = (new Error().stack ?? '').split('\n').slice(2);
  const frames = lines.filter((l) => !l.includes('real-time.ts') && !l.includes('node:internal')).slice(0, 2);
  const tidy = (l: string): string => l.trim().replace(/^at /, '').replace(/\(?file:\/\/[^)]*?\/(src|raft|test)\//, '$1/').replace(/\/work\/main\//, '').replace(/\)$/, '');
  return frames.map(tidy).join(' <- ') || '?';
}

function note(kind: string): void {
  const key = `${kind} ${callSite()}`;
  sites.set(key, (sites.get(key) ?? 0) + 1);
}

function handle(timer: { cancel(): void }): SimHandle {
  const h: SimHandle = { simTimer: timer, unref: () => h, ref: () => h, hasRef: () => false, refresh: () => h };
  return h;
}

function isSim(h: unknown): h is SimHandle {
  return typeof h === 'object' && h !== null && 'simTimer' in h;
}

let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  Math.random = () => {
    if (currentRandom === null) return real.random();
    note('Math.random');
    return currentRandom();
  };
  Date.now = () => {
    if (current === null) return real.dateNow();
    note('Date.now');
    return current.now();
  };
  performance.now = () => {
    if (current === null) return real.performanceNow();
    note('performance.now');
    return current.monotonic();
  };
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    if (current === null) return real.setTimeout(fn, ms, ...args);
    note('setTimeout');
    return handle(current.after(Math.max(0, ms ?? 0), () => fn(...args)));
  }) as typeof setTimeout;
  globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    if (current === null) return real.setInterval(fn, ms, ...args);
    note('setInterval');
    return handle(current.every(Math.max(1, ms ?? 1), () => fn(...args)));
  }) as typeof setInterval;
  globalThis.setImmediate = ((fn: (...a: unknown[]) => void, ...args: unknown[]) => {
    if (current !== null) note('setImmediate');
    return real.setImmediate(fn, ...args);
  }) as typeof setImmediate;
  globalThis.clearTimeout = ((h: unknown) => (isSim(h) ? h.simTimer.cancel() : real.clearTimeout(h as NodeJS.Timeout))) as typeof clearTimeout;
  globalThis.clearInterval = ((h: unknown) => (isSim(h) ? h.simTimer.cancel() : real.clearInterval(h as NodeJS.Timeout))) as typeof clearInterval;
}

/** Routes real time to `clock`, and Math.random to `random`, until end() is called; returns the call sites seen. */
export function simulateRealTime(clock: ManualClock, random: () => number): { end(): Map<string, number> } {
  install();
  current = clock;
  currentRandom = random;
  sites.clear();
  return {
    end: () => {
      current = null;
      currentRandom = null;
      return new Map(sites);
    },
  };
}

/** Lets every promise continuation queued so far, and those they queue, run (a real macrotask turn). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => real.setImmediate(resolve));
}
