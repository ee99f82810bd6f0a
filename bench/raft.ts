// `make bench-raft`: Workrs against etcd on this machine, side by side (issue 15).
// - Write path: the same Node HTTP/1.1 keep-alive client (bench/raft-load.ts), closed
//   loop, always to the leader: etcd POST /v3/kv/put (100-byte values), Workrs POST
//   /v1/jobs (a ~150-byte spec). For each client count, --reps repetitions; in each,
//   a fresh 3-member cluster of each system, the systems alternating (which goes first
//   alternates too); --warmup s, then --seconds counted. ops/s, p50/p99, server CPU
//   ms per op (utime + stime of the 3 members summed, over the counted window), idle
//   RSS (1 s after the cluster is ready) and peak RSS (VmHWM at the end) per member.
// - Leader failover: kill -9 of the leader, a write probe every 10 ms to the
//   survivors until one succeeds, the member restarted and caught up; --kills per system.
// - Placement (Workrs only): N jobs (16 clients) into a cluster with N slots per node,
//   then the time from the last acknowledgement until none is pending (all assigned:
//   state running) and until every one has started (startedAt set).
// - Takeover (Workrs only, real Docker and CRIU): bench/takeover.ts, the leader's and a
//   follower's box destroyed under a checkpointed 10 MB job, --takeover runs each.
// - The floor (bench/raft-floor.ts): the least a replicated write costs in this stack,
//   next to etcd, --floor-reps repetitions at the same client counts.
// Results: a table on stdout and a section of bench/RESULTS.md (replaced when present).
// Options: --clients 1,16,256 --seconds 8 --warmup 1 --reps 3 --kills 10
// --placement 1000,10000 --placement-timeout 120 --takeover 5 --floor-reps 1 --quick
// (1 rep, 2 s, 16 clients, 2 kills, 1,000 jobs, 1 takeover each, no floor) --no-write
// (stdout only).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BINARY } from '../test/process/harness.js';
import { loadAverage } from './machine.js';
import { closedLoop, firstWriteAfter, memoryMiB, type LoadRun } from './raft-load.js';
import { placement, type PlacementRun } from './raft-placement.js';
import { copyOfBinary, idleCpu, idleRss, idleSection, nodeFloorRss } from './idle.js';
import { floorSection } from './raft-floor.js';
import { takeover } from './takeover.js';
import { EtcdCluster, WorkrsCluster, ensureEtcd, live, type System, type SystemName } from './raft-systems.js';
import { summarize, table, type Summary } from './stats.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(root, 'bench', 'RESULTS.md');

const { values: flags } = parseArgs({
  options: {
    clients: { type: 'string' },
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    reps: { type: 'string' },
    kills: { type: 'string' },
    placement: { type: 'string' },
    'placement-timeout': { type: 'string' },
    takeover: { type: 'string' },
    'floor-reps': { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
  },
});
const QUICK = flags.quick === true;
const list = (s: string): number[] => s.split(',').filter(Boolean).map(Number);
const opts = {
  clients: list(flags.clients ?? (QUICK ? '16' : '1,16,256')),
  seconds: Number(flags.seconds ?? (QUICK ? 2 : 8)),
  warmup: Number(flags.warmup ?? 1),
  reps: Number(flags.reps ?? (QUICK ? 1 : 3)),
  kills: Number(flags.kills ?? (QUICK ? 2 : 10)),
  placement: list(flags.placement ?? (QUICK ? '1000' : '1000,10000')),
  placementTimeoutS: Number(flags['placement-timeout'] ?? 120),
  takeoverRuns: Number(flags.takeover ?? (QUICK ? 1 : 5)),
  floorReps: Number(flags['floor-reps'] ?? (QUICK ? 0 : 1)),
};

interface ThroughputRun extends LoadRun {
  /** Per member, MiB. */
  idleRss: number[];
  peakRss: number[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let etcdBin = '';

async function startSystem(name: SystemName): Promise<System> {
  return name === 'etcd' ? EtcdCluster.start(etcdBin) : WorkrsCluster.start();
}

function pids(sys: System): number[] {
  return sys.ids.map((id) => sys.pid(id)).filter((p): p is number => p !== null);
}

async function throughput(name: SystemName, clients: number): Promise<ThroughputRun> {
  const sys = await startSystem(name);
  try {
    await sleep(1000);
    const idleRss = pids(sys).map((p) => memoryMiB(p).rss);
    const leader = await sys.leader();
    const run = await closedLoop(sys.write(leader), pids(sys), clients, opts.warmup, opts.seconds);
    const peakRss = pids(sys).map((p) => memoryMiB(p).hwm);
    return { ...run, idleRss, peakRss };
  } finally {
    await sys.destroy();
  }
}

interface FailoverRun {
  /** ms from kill -9 to the first successful write; null: none within 30 s. */
  times: Array<number | null>;
}

async function failover(name: SystemName, kills: number): Promise<FailoverRun> {
  const sys = await startSystem(name);
  const times: Array<number | null> = [];
  try {
    for (let k = 0; k < kills; k++) {
      const leader = await sys.leader(30_000);
      const survivors = sys.ids.filter((id) => id !== leader);
      const write = sys.write(leader);
      const urls = survivors.map((id) => sys.write(id).url);
      const killedAt = performance.now();
      await sys.kill(leader);
      const ms = await firstWriteAfter(killedAt, urls, write);
      times.push(ms);
      console.log(`${name.padEnd(6)} kill ${k + 1}/${kills} of leader ${leader}: first write after ${ms === null ? '> 30 s' : `${ms.toFixed(0)} ms`}`);
      await sys.restart(leader);
      await sleep(500);
    }
  } finally {
    await sys.destroy();
  }
  return { times };
}

// ---------------------------------------------------------------- report

const f = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : '–');
function cell(s: Summary | null, digits = 0): string {
  if (s === null) return '–';
  return s.n === 1 ? f(s.median, digits) : `${f(s.median, digits)} (${f(s.min, digits)}–${f(s.max, digits)})`;
}
const ratioOf = (a: Summary | null, b: Summary | null, digits = 2): string => (a && b && b.median !== 0 ? (a.median / b.median).toFixed(digits) : '–');
/** Nearest rank: the value at or above fraction q of the sorted values. */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function report(runs: Map<string, ThroughputRun[]>, fail: Map<SystemName, FailoverRun>, place: PlacementRun[], extra: string[], started: Date): string {
  const get = (name: SystemName, c: number): ThroughputRun[] => runs.get(`${name}:${c}`) ?? [];
  const s = (rs: ThroughputRun[], k: 'opsPerSecond' | 'p50Ms' | 'p99Ms' | 'cpuMsPerOp'): Summary | null => summarize(rs.map((r) => r[k]).filter(Number.isFinite));
  const peak = (rs: ThroughputRun[]): Summary | null => summarize(rs.flatMap((r) => r.peakRss).filter(Number.isFinite));
  const writeRows = opts.clients.map((c) => {
    const e = get('etcd', c);
    const w = get('workrs', c);
    return [
      String(c), cell(s(e, 'opsPerSecond')), cell(s(w, 'opsPerSecond')), ratioOf(s(w, 'opsPerSecond'), s(e, 'opsPerSecond')),
      `${cell(s(e, 'p50Ms'), 1)} / ${cell(s(w, 'p50Ms'), 1)}`, `${cell(s(e, 'p99Ms'), 1)} / ${cell(s(w, 'p99Ms'), 1)}`, ratioOf(s(w, 'p99Ms'), s(e, 'p99Ms')),
      `${cell(s(e, 'cpuMsPerOp'), 2)} / ${cell(s(w, 'cpuMsPerOp'), 2)}`, ratioOf(s(w, 'cpuMsPerOp'), s(e, 'cpuMsPerOp')),
      `${cell(peak(e))} / ${cell(peak(w))}`, `${e.reduce((n, r) => n + r.errors, 0)} / ${w.reduce((n, r) => n + r.errors, 0)}`,
    ];
  });
  const all = (name: SystemName): ThroughputRun[] => opts.clients.flatMap((c) => get(name, c));
  const idle = (name: SystemName): Summary | null => summarize(all(name).flatMap((r) => r.idleRss).filter(Number.isFinite));
  const memRows = (['etcd', 'workrs'] as const).map((n) => [n, cell(idle(n), 1), cell(peak(all(n)), 1)]);
  const memRatio = ratioOf(idle('workrs'), idle('etcd'));
  const failRows = (['etcd', 'workrs'] as const).map((n) => {
    const ts = fail.get(n)?.times ?? [];
    const ok = ts.filter((t): t is number => t !== null).sort((a, b) => a - b);
    return [n, String(ts.length), f(summarize(ok)?.median ?? NaN, 0), f(quantile(ok, 0.9), 0), ok.length > 0 ? `${f(ok[0] as number, 0)}–${f(ok[ok.length - 1] as number, 0)}` : '–', String(ts.length - ok.length)];
  });
  const failMed = (n: SystemName): number => summarize((fail.get(n)?.times ?? []).filter((t): t is number => t !== null))?.median ?? NaN;
  const placeRows = place.map((p) => {
    const since = (t: number | null): string => (t === null ? `> ${opts.placementTimeoutS} s (timeout)` : `${(t / 1000).toFixed(2)} s`);
    return [p.jobs.toLocaleString('en-US'), `${(p.ackMs / 1000).toFixed(2)} s`, String(p.errors), since(p.assignedMs), since(p.startedMs)];
  });
  const command = process.env.BENCH_COMMAND ?? `node_modules/.bin/tsx bench/raft.ts ${process.argv.slice(2).join(' ')}`.trim();
  let head = '?';
  try {
    head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
  } catch {
    // Not a git checkout.
  }
  let etcdVersion = '?';
  try {
    etcdVersion = execFileSync(etcdBin, ['--version']).toString().split('\n')[0]?.trim() ?? '?';
  } catch {
    // Reported as '?'.
  }
  return [
    `## bench-raft: Workrs vs etcd, write path, failover, placement${QUICK ? ' (quick)' : ''}`,
    '',
    `Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC. Command: \`${command}\`. Source at ${head}; binary ${BINARY}; ${etcdVersion}.`,
    `Machine: nproc ${os.availableParallelism()}, load average at the end ${loadAverage()}. Numbers are CPU-bound on this machine: compare the ratios, measured side by side in one run.`,
    `Write path: ${opts.reps} repetition(s) per client count of ${opts.seconds} s after ${opts.warmup} s of warm-up, a fresh 3-member cluster of each system per run, the systems alternating. Closed loop, HTTP/1.1 keep-alive, to the leader. etcd: \`--heartbeat-interval 100 --election-timeout 1000\`, POST /v3/kv/put of 100-byte values. Workrs: dev mode, \`--runtime fake\`, POST /v1/jobs of a 150-byte spec. Cells: median (min–max).`,
    '',
    table(['clients', 'etcd ops/s', 'Workrs ops/s', 'Workrs / etcd ops/s', 'p50 ms etcd / Workrs', 'p99 ms etcd / Workrs', 'Workrs / etcd p99', 'server CPU ms per op, 3 members summed: etcd / Workrs', 'Workrs / etcd CPU', 'peak RSS MiB per member etcd / Workrs', 'failed writes etcd / Workrs'], writeRows),
    '',
    `Memory per member (MiB; idle: VmRSS 1 s after the cluster is ready; peak: VmHWM after the run). Workrs / etcd idle: ${memRatio}.`,
    '',
    table(['system', 'idle RSS', 'peak RSS'], memRows),
    '',
    `Leader failover: kill -9 of the leader, a write every 10 ms to the survivors in turn until one succeeds; the member restarted and caught up before the next kill. Workrs / etcd median: ${Number.isFinite(failMed('workrs')) && Number.isFinite(failMed('etcd')) ? (failMed('workrs') / failMed('etcd')).toFixed(2) : '–'}.`,
    '',
    table(['system', 'kills', 'median ms to a write', 'p90 ms', 'range ms', 'no write within 30 s'], failRows),
    '',
    `Placement (Workrs only): N jobs (FAKE_SECONDS 3600) from 16 clients into a fresh 3-node cluster with slots for all of them (--slots N per node, at most 4,096); times from the last acknowledgement.`,
    '',
    table(['jobs', 'all acknowledged after', 'failed submissions (retried)', 'none pending (all assigned)', 'all started'], placeRows),
    '',
    ...extra.flatMap((section) => [section, '']),
  ].join('\n');
}

/** Replaces the section with the same heading in bench/RESULTS.md (up to the next `## `), or appends it. */
function writeSection(section: string): void {
  const heading = section.split('\n')[0] as string;
  const text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  const lines = text.split('\n');
  const from = lines.findIndex((l) => l === heading);
  if (from === -1) {
    writeFileSync(RESULTS, `${text}${text === '' || text.endsWith('\n\n') ? '' : text.endsWith('\n') ? '\n' : '\n\n'}${section}`);
    return;
  }
  let to = lines.findIndex((l, i) => i > from && l.startsWith('## '));
  if (to === -1) to = lines.length;
  const rest = lines.slice(to);
  writeFileSync(RESULTS, [...lines.slice(0, from), ...section.split('\n'), ...rest].join('\n').replace(/\n*$/, '\n'));
}

// ---------------------------------------------------------------- main

async function cleanup(): Promise<void> {
  for (const sys of [...live]) await sys.destroy().catch(() => undefined);
}

async function main(): Promise<void> {
  const started = new Date();
  if (!existsSync(BINARY)) {
    if (process.env.WORKRS_BINARY !== undefined) throw new Error(`${BINARY} (WORKRS_BINARY) is missing`);
    console.log(`${BINARY} is missing: make build`);
    execFileSync('make', ['--no-print-directory', 'build'], { cwd: root, stdio: 'inherit' });
  }
  etcdBin = ensureEtcd();
  console.log(`bench-raft: clients ${opts.clients.join(',')}, ${opts.reps} rep(s) of ${opts.seconds} s (+${opts.warmup} s warm-up), ${opts.kills} kills per system, placement ${opts.placement.join(',') || 'none'}`);

  const runs = new Map<string, ThroughputRun[]>();
  for (let rep = 0; rep < opts.reps; rep++) {
    for (const [i, clients] of opts.clients.entries()) {
      const order: SystemName[] = (rep + i) % 2 === 0 ? ['etcd', 'workrs'] : ['workrs', 'etcd'];
      for (const name of order) {
        const r = await throughput(name, clients);
        runs.set(`${name}:${clients}`, [...(runs.get(`${name}:${clients}`) ?? []), r]);
        console.log(`${name.padEnd(6)} clients ${String(clients).padStart(3)} rep ${rep + 1}: ${r.opsPerSecond.toFixed(0)} ops/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, CPU ${r.cpuMsPerOp.toFixed(2)} ms/op, idle RSS ${r.idleRss.map((m) => m.toFixed(0)).join('/')} MiB, peak ${r.peakRss.map((m) => m.toFixed(0)).join('/')} MiB, failed ${r.errors}`);
      }
    }
  }

  const fail = new Map<SystemName, FailoverRun>();
  if (opts.kills > 0) for (const name of ['etcd', 'workrs'] as const) fail.set(name, await failover(name, opts.kills));

  const place: PlacementRun[] = [];
  for (const n of opts.placement) {
    const p = await placement(n, opts.placementTimeoutS * 1000);
    place.push(p);
    console.log(`workrs placement of ${n}: acknowledged in ${(p.ackMs / 1000).toFixed(2)} s; after the last ack: none pending ${p.assignedMs === null ? 'timeout' : `${(p.assignedMs / 1000).toFixed(2)} s`}, all started ${p.startedMs === null ? 'timeout' : `${(p.startedMs / 1000).toFixed(2)} s`}`);
  }

  const extra: string[] = [];
  {
    // Idle: RSS of 3 nodes, and CPU per node of a 20-node cluster (bench/idle.ts).
    const copy = copyOfBinary();
    try {
      const rss = await idleRss(copy.path);
      const cpu = await idleCpu({ binary: copy.path, nodes: 20, seconds: QUICK ? 10 : 20 });
      extra.push(`### Idle\n\n${idleSection(rss, await nodeFloorRss(), cpu)}`);
      console.log(`idle: RSS ${rss.map((m) => m.toFixed(1)).join('/')} MiB; 20 nodes CPU % ${[...cpu.percent.values()].map((v) => v.toFixed(2)).join(' ')} (leader ${cpu.leader})`);
    } finally {
      copy.remove();
    }
  }
  if (opts.takeoverRuns > 0) {
    const t = await takeover({ runs: opts.takeoverRuns, log: (line) => console.log(line) });
    extra.push(t.markdown);
  }

  if (opts.floorReps > 0) {
    extra.push(await floorSection({ clients: opts.clients, reps: opts.floorReps, seconds: opts.seconds, warmup: opts.warmup, log: (line) => console.log(line) }));
  }

  const section = report(runs, fail, place, extra, started);
  console.log(`\n${section}`);
  if (flags['no-write'] !== true) {
    writeSection(section);
    console.log(`written to ${RESULTS}`);
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the clusters`);
    void cleanup().finally(() => process.exit(130));
  });
}
try {
  await main();
} catch (err) {
  await cleanup();
  throw err;
}
