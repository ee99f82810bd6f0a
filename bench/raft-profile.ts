// `make profile-raft`: where a submission's CPU goes (issue 15). A 3-node Workrs
// cluster (dev mode, --runtime fake) run as `node --cpu-prof dist/workrs.cjs`, the
// bench's closed loop (16 clients by default) against the leader for --seconds, then
// SIGTERM so that every node writes its profile. Prints the top self-time functions of
// the leader and of a follower, and keeps the .cpuprofile files (open them in Chrome
// DevTools) in the folder it names.
// Options: --clients 16 --seconds 8 --top 15 --out DIR --cjs FILE (another build's
// workrs.cjs, e.g. of an older commit, to compare with) --no-prof (the same run without
// the profiler, e.g. to count system calls with strace; --node-args "--flag ..." for
// node's own flags: the profiler's signals and
// threads would be counted too) --perf (no profiler, node --perf-basic-prof: attach
// `perf record -e cpu-clock -g -p PID` for CPU time, kernel included, where the
// profiler's samples are wall time, e.g. a write preempted by the process it woke)
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalCluster } from '../test/process/harness.js';
import { closedLoop } from './raft-load.js';
import { jobSpec } from './raft-systems.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags } = parseArgs({
  options: { clients: { type: 'string' }, seconds: { type: 'string' }, top: { type: 'string' }, out: { type: 'string' }, cjs: { type: 'string' }, 'no-prof': { type: 'boolean' }, perf: { type: 'boolean' }, 'node-args': { type: 'string' } },
});
const clients = Number(flags.clients ?? 16);
const seconds = Number(flags.seconds ?? 8);
const top = Number(flags.top ?? 15);
const out = flags.out ?? mkdtempSync(join(tmpdir(), 'workrs-profile-'));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (name, file, line), ms, largest first, and the total. */
export function selfTimes(profile: CpuProfile): { total: number; rows: { name: string; ms: number }[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const f = byId.get(id)?.callFrame;
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    if (!f) return;
    const file = f.url.replace(/^.*\//, '');
    const name = `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
    ms.set(name, (ms.get(name) ?? 0) + dt);
  });
  const rows = [...ms].map(([name, v]) => ({ name, ms: v })).sort((a, b) => b.ms - a.ms);
  return { total, rows };
}

async function main(): Promise<void> {
  const ids = ['w1', 'w2', 'w3'];
  const cjs = flags.cjs ?? join(root, 'dist', 'workrs.cjs');
  const cluster = await LocalCluster.create(ids, ['--max-pending-jobs', '1000000'], {
    mode: 'dev',
    prefix: (id) => {
      const dir = join(out, id);
      mkdirSync(dir, { recursive: true });
      // --perf-basic-prof also writes V8's log: into the node's folder, not the working one.
      if (flags.perf) return ['node', '--perf-basic-prof', '--no-logfile-per-isolate', `--logfile=${join(dir, 'v8.log')}`];
      const nodeArgs = (flags['node-args'] ?? '').split(' ').filter(Boolean);
      return flags['no-prof'] ? ['node', ...nodeArgs] : ['node', ...nodeArgs, '--cpu-prof', `--cpu-prof-dir=${dir}`];
    },
    binary: cjs,
  });
  cluster.startAll();
  let leader = '';
  try {
    await cluster.allReady(60_000);
    leader = await cluster.leader(30_000);
    const pids = ids.map((id) => cluster.node(id).proc?.pid ?? 0);
    const spec = jobSpec(3600);
    const run = await closedLoop({ url: `${cluster.url(leader)}/v1/jobs`, okStatus: 202, body: () => spec }, pids, clients, 1, seconds);
    console.log(`${clients} clients, ${seconds} s: ${run.opsPerSecond.toFixed(0)} ops/s, p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, CPU ${run.cpuMsPerOp.toFixed(2)} ms/op (3 nodes), failed ${run.errors}`);
  } finally {
    for (const id of ids) {
      const p = cluster.node(id).proc;
      if (!p) continue;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
    // A run that never found its leader keeps the logs and prints their ends.
    await cluster.destroy(leader === '');
  }
  const follower = ids.find((id) => id !== leader) ?? 'w2';
  for (const [role, id] of [['leader', leader], ['follower', follower]] as const) {
    const dir = join(out, id);
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (flags['no-prof'] || flags.perf) continue;
    if (!file) {
      console.log(`${role} ${id}: no profile in ${dir}`);
      continue;
    }
    const { total, rows } = selfTimes(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile);
    console.log(`\n${role} ${id} (${join(dir, file)}), ${(total / 1000).toFixed(1)} s sampled; top ${top} by self time:`);
    for (const r of rows.slice(0, top)) console.log(`${r.ms.toFixed(0).padStart(7)} ms ${((100 * r.ms) / total).toFixed(1).padStart(5)}%  ${r.name}`);
  }
}

await main();
