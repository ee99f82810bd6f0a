// The executable's size and start-up: how long a command takes from exec to exit, next
// to `node -e 0` (the floor: Node itself starting), for the binary under test and,
// when BENCH_BASELINE names one, an earlier build. Commands that never reach a server:
// `version`, `--help`, and `jobs` against a closed port (it loads the HTTP client
// chunk and fails at once). The runs alternate between the binaries; each cell is the
// median (and min–max) of BENCH_STARTUP_RUNS runs (default 30). Appends a dated section
// to bench/RESULTS.md.
import { spawnSync } from 'node:child_process';
import { appendFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage } from './machine.js';
import { summarize, table, type Summary } from './stats.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(root, 'bench', 'RESULTS.md');
const BINARY = process.env.WORKRS_BINARY ?? join(root, 'dist', 'workrs');
const BASELINE = process.env.BENCH_BASELINE;
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 30);

const COMMANDS: Array<{ name: string; args: string[]; status: number }> = [
  { name: 'version', args: ['version'], status: 0 },
  { name: '--help', args: ['--help'], status: 0 },
  { name: 'jobs (closed port)', args: ['jobs', '--server', 'http://127.0.0.1:9'], status: 3 },
];

function timedRun(cmd: string, args: string[], status: number): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' } });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.error) throw r.error;
  if (r.status !== status) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}, expected ${status}: ${r.stderr}`);
  return ms;
}

const ms = (s: Summary | null): string => (s === null ? '–' : `${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)})`);

async function main(): Promise<void> {
  if (!Number.isInteger(RUNS) || RUNS < 3) throw new Error(`BENCH_STARTUP_RUNS must be a whole number ≥ 3, got ${process.env.BENCH_STARTUP_RUNS}`);
  const binaries = [{ label: 'under test', path: BINARY }, ...(BASELINE ? [{ label: 'baseline', path: BASELINE }] : [])];
  const version = (path: string): string => spawnSync(path, ['version'], { encoding: 'utf8' }).stdout.trim();
  const samples = new Map<string, number[]>();
  const add = (key: string, value: number): void => void samples.set(key, [...(samples.get(key) ?? []), value]);
  for (let i = 0; i < RUNS; i++) {
    add('node', timedRun(process.execPath, ['-e', '0'], 0));
    for (const b of i % 2 === 0 ? binaries : [...binaries].reverse()) for (const c of COMMANDS) add(`${b.label} ${c.name}`, timedRun(b.path, c.args, c.status));
  }
  const floor = summarize(samples.get('node') ?? []);
  const rows: string[][] = [];
  for (const b of binaries) {
    const size = (await stat(b.path)).size;
    rows.push([`${b.label}: ${version(b.path)}`, `${(size / 2 ** 20).toFixed(1)} MiB`, ...COMMANDS.map((c) => ms(summarize(samples.get(`${b.label} ${c.name}`) ?? [])))]);
  }
  rows.push([`\`node -e 0\` (${process.version})`, `${((await stat(process.execPath)).size / 2 ** 20).toFixed(1)} MiB`, ms(floor), '', '']);
  const section = [
    `## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: the executable's size and start-up`,
    '',
    `Command: \`${process.env.BENCH_COMMAND ?? 'node_modules/.bin/tsx bench/startup.ts'}\`. Load average at the end: ${loadAverage()}.`,
    `Wall time from exec to exit, ms: median (min–max) of ${RUNS} runs, the binaries alternating; \`jobs\` asks a closed port (it loads the HTTP client and fails at once).`,
    '',
    table(['binary', 'size', ...COMMANDS.map((c) => c.name)], rows),
    '',
  ].join('\n');
  await appendFile(RESULTS, `\n${section}`);
  console.log(`${section}\nappended to ${RESULTS}`);
}

await main();
