// What an idle Workrs node costs (issue 15), measured as `make bench-raft` measures it:
// - Memory: VmRSS of each `workrs start --runtime fake` process of a fresh 3-node
//   dev-mode cluster, 1 s after it is ready (every node answers /readyz and they agree
//   on a leader); beside it the floor, a bare `node` process that only keeps a timer.
// - CPU: a fresh 20-node dev-mode cluster left alone for --settle s once ready, then
//   utime + stime of each node over --seconds s, as % of one core: the median and the
//   max per node, and the leader's own figure (the per-node bound holds for it too).
// Both run a fresh copy of the binary (`cp`, as make bench-raft does): how the file got
// into the page cache changes how much of it each process maps (docs/development.md).
// bench/raft.ts can import idleRss, idleCpu and idleSection; run alone:
//   node_modules/.bin/tsx bench/idle.ts [--reps 3] [--nodes 20] [--seconds 20]
//     [--settle 10] [--bootstrap N (initial voters; the rest join)] [--no-rss] [--no-cpu]
//     [--config FILE (passed to every node)]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BINARY, LocalCluster } from '../test/process/harness.js';
import { cpuMs, memoryMiB } from './raft-load.js';
import { summarize, table, type Summary } from './stats.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A fresh `cp` of `binary` in a folder of its own, removed by the returned cleanup. */
export function copyOfBinary(binary = BINARY): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-bench-idle-'));
  const path = join(dir, 'workrs');
  execFileSync('cp', [binary, path]);
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Nodes n01, n02, … of a fresh dev-mode cluster of `binary`, started, ready and
 * agreeing on a leader: the first `bootstrap` are the initial voters (default all, as
 * LocalCluster makes them), the others join through n01 (learners, promoted only when
 * voters are missing).
 */
async function readyCluster(nodes: number, extraArgs: string[], binary: string, bootstrap = nodes): Promise<{ cluster: LocalCluster; ids: string[] }> {
  const ids = Array.from({ length: nodes }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
  const cluster = await LocalCluster.create(ids.slice(0, bootstrap), extraArgs, { mode: 'dev', binary });
  for (const id of ids.slice(bootstrap)) await cluster.addJoiner(id, 'n01', extraArgs);
  cluster.startAll();
  try {
    await cluster.allReady(nodes * 10_000);
    await cluster.leader(60_000);
    // allReady counts live nodes only: a node that exited at start would pass it.
    const gone = ids.filter((id) => cluster.node(id).proc === null);
    if (gone.length > 0) throw new Error(`workrs ${gone.join(', ')} exited at start`);
  } catch (err) {
    await cluster.destroy(true);
    throw err;
  }
  return { cluster, ids };
}

/** VmRSS (MiB) of each node of a fresh 3-node cluster (the write bench's options), 1 s after it is ready. */
export async function idleRss(binary: string): Promise<number[]> {
  const { cluster, ids } = await readyCluster(3, ['--max-pending-jobs', '1000000'], binary);
  try {
    await sleep(1000);
    return ids.map((id) => cluster.node(id).proc?.pid).filter((p): p is number => p !== undefined).map((p) => memoryMiB(p).rss);
  } finally {
    await cluster.destroy(false);
  }
}

/** VmRSS (MiB) of a bare `node` that only keeps a timer, 1 s after it started: the floor. */
export async function nodeFloorRss(): Promise<number> {
  const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(1000);
    return proc.pid === undefined ? NaN : memoryMiB(proc.pid).rss;
  } finally {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }
}

export interface IdleCpuOptions {
  binary: string;
  nodes?: number;
  /** Initial voters; the other nodes join as learners (default: all bootstrap as voters). */
  bootstrap?: number;
  seconds?: number;
  settleS?: number;
  /** Arguments for every node (e.g. --config FILE). */
  extraArgs?: string[];
}

export interface IdleCpuRun {
  nodes: number;
  bootstrap: number;
  seconds: number;
  /** Per node, % of one core over the window. */
  percent: Map<string, number>;
  /** The leader after the window (a change during it shows in the numbers). */
  leader: string;
}

/** CPU of each node of a fresh cluster over `seconds` of idle, `settleS` after it is ready. */
export async function idleCpu(opts: IdleCpuOptions): Promise<IdleCpuRun> {
  const { nodes = 20, seconds = 20, settleS = 10, extraArgs = [] } = opts;
  const bootstrap = opts.bootstrap ?? nodes;
  const { cluster, ids } = await readyCluster(nodes, extraArgs, opts.binary, bootstrap);
  let failed = true;
  try {
    await sleep(settleS * 1000);
    const pids = new Map(ids.map((id) => [id, cluster.node(id).proc?.pid ?? 0]));
    const before = new Map(ids.map((id) => [id, cpuMs(pids.get(id) ?? 0)]));
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const elapsedMs = performance.now() - t0;
    const percent = new Map(ids.map((id) => [id, (100 * (cpuMs(pids.get(id) ?? 0) - (before.get(id) ?? NaN))) / elapsedMs]));
    const leader = await cluster.leader(10_000);
    failed = false;
    return { nodes, bootstrap, seconds, percent, leader };
  } finally {
    await cluster.destroy(failed);
  }
}

const f = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : '–');
const cell = (s: Summary | null, digits: number): string => (s === null ? '–' : s.n === 1 ? f(s.median, digits) : `${f(s.median, digits)} (${f(s.min, digits)}–${f(s.max, digits)})`);

/** Markdown for bench/RESULTS.md (no heading: the caller places it). */
export function idleSection(rss: number[], floorMiB: number, cpu: IdleCpuRun | null): string {
  const lines = [
    `Idle memory: VmRSS per node of a fresh 3-node cluster (dev mode, \`--runtime fake\`, a fresh copy of the binary), 1 s after it is ready. Floor: a bare \`node -e 'setInterval(() => {}, 1000)'\`, ${f(floorMiB, 1)} MiB.`,
    '',
    table(['nodes measured', 'idle RSS MiB per node, median (min–max)'], [[String(rss.length), cell(summarize(rss.filter(Number.isFinite)), 1)]]),
  ];
  if (cpu !== null) {
    const s = summarize([...cpu.percent.values()].filter(Number.isFinite));
    lines.push(
      '',
      `Idle CPU: a fresh ${cpu.nodes}-node cluster (dev mode, \`--runtime fake\`; ${cpu.bootstrap === cpu.nodes ? 'all bootstrapped as voters' : `${cpu.bootstrap} bootstrapped as voters, the others joined as learners`}), utime + stime per node over ${cpu.seconds} s of idle after it settled, % of one core.`,
      '',
      table(['nodes', 'median per node', 'max per node', 'leader'], [[String(cpu.nodes), f(s?.median ?? NaN, 2), f(s?.max ?? NaN, 2), f(cpu.percent.get(cpu.leader) ?? NaN, 2)]]),
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      reps: { type: 'string' },
      nodes: { type: 'string' },
      seconds: { type: 'string' },
      settle: { type: 'string' },
      'no-rss': { type: 'boolean', default: false },
      'no-cpu': { type: 'boolean', default: false },
      config: { type: 'string' },
      bootstrap: { type: 'string' },
    },
  });
  const copy = copyOfBinary();
  try {
    const floor = await nodeFloorRss();
    const rss: number[] = [];
    const reps = flags['no-rss'] === true ? 0 : Number(flags.reps ?? 1);
    for (let r = 0; r < reps; r++) {
      const run = await idleRss(copy.path);
      console.log(`idle RSS rep ${r + 1}: ${run.map((m) => m.toFixed(1)).join(' / ')} MiB`);
      rss.push(...run);
    }
    let cpu: IdleCpuRun | null = null;
    if (flags['no-cpu'] !== true) {
      cpu = await idleCpu({
        binary: copy.path,
        nodes: Number(flags.nodes ?? 20),
        ...(flags.bootstrap === undefined ? {} : { bootstrap: Number(flags.bootstrap) }),
        seconds: Number(flags.seconds ?? 20),
        settleS: Number(flags.settle ?? 10),
        extraArgs: flags.config === undefined ? [] : ['--config', flags.config],
      });
      const sorted = [...cpu.percent].sort((a, b) => b[1] - a[1]);
      console.log(`idle CPU % of a core per node (leader ${cpu.leader}): ${sorted.map(([id, p]) => `${id} ${p.toFixed(2)}`).join(', ')}`);
    }
    console.log(`\n${idleSection(rss, floor, cpu)}`);
  } finally {
    copy.remove();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
