// `make bench` (part 2): what secure mode costs the write path. Submissions per second
// through a 3-node cluster in dev mode (plain HTTP, no auth) and in secure mode (HTTPS
// with the cluster CA, every request carrying a submit-role token, mutual TLS on the
// peer links), on the same machine, the two alternating.
//
// Method (docs/development.md, Benchmarks): a fresh cluster of `workrs start --runtime
// fake` processes per run; a closed loop of C clients, each sending POST /v1/jobs (a
// ~150-byte JSON spec) to the leader over one kept-alive connection and the next as
// soon as the answer is in; 1 s of warm-up, then DURATION_S counted; the modes
// alternate, REPS times; medians and ranges, and the ratio secure / dev of the medians.
// BENCH_QUICK=1: one repetition of 2 s per level (a smoke run).
import { appendFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { BINARY, LocalCluster } from '../test/process/harness.js';
import { loadAverage } from './machine.js';
import { summarize, table, type Summary } from './stats.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(root, 'bench', 'RESULTS.md');
const QUICK = process.env.BENCH_QUICK === '1';
const REPS = Number(process.env.BENCH_REPS ?? (QUICK ? 1 : 2));
const DURATION_S = QUICK ? 2 : 8;
const WARMUP_S = 1;
const LEVELS = [1, 16, 64];
const SPEC = JSON.stringify({ image: 'workrs/busybox:1', command: ['sh', '-c', 'echo a benchmark job that never runs long'], estimateSeconds: 60, env: { BENCH: 'workrs' } });

type Mode = 'dev' | 'secure';

interface Run {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

async function startCluster(mode: Mode): Promise<{ cluster: LocalCluster; leader: string; auth: string | null }> {
  const cluster = await LocalCluster.create(['b1', 'b2', 'b3'], ['--max-pending-jobs', '1000000'], { mode });
  cluster.startAll();
  await cluster.allReady(60_000);
  const leader = await cluster.leader();
  const auth = mode === 'secure' ? (await cluster.createToken('submit', { name: 'bench', via: leader })).token : null;
  return { cluster, leader, auth };
}

/** C closed-loop clients for warm-up + duration; latencies of the counted part. */
async function load(cluster: LocalCluster, leader: string, auth: string | null, clients: number): Promise<Run> {
  const url = new URL(`${cluster.url(leader)}/v1/jobs`);
  const secure = url.protocol === 'https:';
  const ca = secure ? cluster.caPem() ?? undefined : undefined;
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets: clients, ...(ca ? { ca } : {}) }) : new HttpAgent({ keepAlive: true, maxSockets: clients });
  const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(SPEC)), ...(auth ? { authorization: `Bearer ${auth}` } : {}) };
  const once = (): Promise<number> =>
    new Promise((resolvePost, reject) => {
      const req = (secure ? httpsRequest : httpRequest)(url, { method: 'POST', agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolvePost(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(SPEC);
    });
  const start = performance.now();
  const countFrom = start + WARMUP_S * 1000;
  const end = countFrom + DURATION_S * 1000;
  const latencies: number[] = [];
  let errors = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const status = await once().catch(() => 0);
        const t1 = performance.now();
        if (status !== 202) errors += 1;
        else if (t0 >= countFrom && t1 <= end) latencies.push(t1 - t0);
      }
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { opsPerSecond: latencies.length / DURATION_S, p50Ms: at(0.5), p99Ms: at(0.99), errors };
}

function fmt(s: Summary | null, digits = 0): string {
  if (s === null) return '–';
  const f = (v: number): string => v.toFixed(digits);
  return s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

async function main(): Promise<void> {
  const results = new Map<string, Run[]>();
  for (const clients of LEVELS) {
    for (let rep = 0; rep < REPS; rep++) {
      // Alternate which mode goes first, so drift over the run hits both alike.
      const order: Mode[] = rep % 2 === 0 ? ['dev', 'secure'] : ['secure', 'dev'];
      for (const mode of order) {
        const { cluster, leader, auth } = await startCluster(mode);
        try {
          const run = await load(cluster, leader, auth, clients);
          const key = `${mode}:${clients}`;
          results.set(key, [...(results.get(key) ?? []), run]);
          console.log(`${mode.padEnd(6)} clients ${String(clients).padStart(3)} rep ${rep + 1}: ${run.opsPerSecond.toFixed(0)} ops/s, p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, errors ${run.errors}`);
        } finally {
          await cluster.destroy(false);
        }
      }
    }
  }
  const rows = LEVELS.map((clients) => {
    const dev = results.get(`dev:${clients}`) ?? [];
    const sec = results.get(`secure:${clients}`) ?? [];
    const ops = (runs: Run[]): Summary | null => summarize(runs.map((r) => r.opsPerSecond));
    const p = (runs: Run[], k: 'p50Ms' | 'p99Ms'): Summary | null => summarize(runs.map((r) => r[k]));
    const ratio = ops(dev) && ops(sec) ? (ops(sec)!.median / ops(dev)!.median).toFixed(2) : '–';
    const errors = [...dev, ...sec].reduce((n, r) => n + r.errors, 0);
    return [String(clients), fmt(ops(dev)), fmt(ops(sec)), ratio, `${fmt(p(dev, 'p50Ms'), 1)} / ${fmt(p(sec, 'p50Ms'), 1)}`, `${fmt(p(dev, 'p99Ms'), 1)} / ${fmt(p(sec, 'p99Ms'), 1)}`, String(errors)];
  });
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
  const section = [
    `## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: submissions, secure mode vs dev mode${QUICK ? ' (quick)' : ''}`,
    '',
    `Command: \`${process.env.BENCH_COMMAND ?? 'node_modules/.bin/tsx bench/submissions.ts'}\`${QUICK ? ' with BENCH_QUICK=1' : ''}. Source at ${head}; binary ${BINARY}.`,
    `Machine: nproc ${os.availableParallelism()}, load average at the end ${loadAverage()}.`,
    `Each cell: median (min–max) of ${REPS} run(s) of ${DURATION_S} s after ${WARMUP_S} s of warm-up, a fresh 3-node \`--runtime fake\` cluster per run, the modes alternating. Closed loop, keep-alive, to the leader. Secure: HTTPS with the cluster CA, a submit-role token on every request, mutual TLS between nodes. Dev: plain HTTP, no auth.`,
    '',
    table(['clients', 'dev ops/s', 'secure ops/s', 'secure / dev', 'p50 ms dev / secure', 'p99 ms dev / secure', 'non-202 answers'], rows),
    '',
  ].join('\n');
  const existing = existsSync(RESULTS) ? await readFile(RESULTS, 'utf8') : '';
  await appendFile(RESULTS, `${existing.endsWith('\n\n') || existing === '' ? '' : '\n'}${section}`);
  console.log(`\n${section}\nappended to ${RESULTS}`);
}

await main();
