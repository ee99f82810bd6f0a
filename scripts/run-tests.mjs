// Runs the test suites and ends with the line CI reads: `N passed, N failed`.
//
// Usage: node scripts/run-tests.mjs [--no-typecheck] [--jobs=N] [PATH...]
//   PATH: test files or folders (default: every *.test.ts under test/).
//   N (or WORKRS_TEST_JOBS): how many files run at once (default 2), besides the files
//   on the machine's Docker engine (test/docker/, test/browser/), which run one at a
//   time beside them.
//
// Each test file runs as its own `node --import tsx FILE`: tap's `t` prints TAP when a
// file runs alone, so tap's runner is not needed (its start-up for each file cost more
// CPU than most unit files' tests). The type check runs first in one of the N lanes.
//
// Counts every test (a top-level `t.test` of a file) and the type check as one each. A
// file that crashes, times out, bails out or ends before its plan counts as one more
// failure; a skipped or todo test counts as a failure too, since a suite must never
// skip silently. Prints one line per file, and all of a failed file's output.
//
// Writes to test-results/: tap.log (every file's TAP, nested as tap's runner nests it),
// durations.tsv (seconds per file, slowest first: the next run starts the slowest files
// first) and stderr/ (what each file wrote to stderr, when it wrote anything).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const results = join(root, 'test-results');
const args = process.argv.slice(2);
const typecheck = !args.includes('--no-typecheck');
const jobsArg = args.find((a) => a.startsWith('--jobs='))?.slice('--jobs='.length) ?? process.env.WORKRS_TEST_JOBS;
const jobs = Math.max(1, Number(jobsArg) || 2);
// tap's own timeout of a whole file (its TAP_TIMEOUT, seconds): it fails the running test
// and prints what the file was waiting on. The runner kills the file a minute later if
// it still has not ended.
const fileTimeoutSeconds = Number(process.env.TAP_TIMEOUT) || 900;
const paths = args.filter((a) => !a.startsWith('--'));

// A folder stands for the *.test.ts files under it; without paths, every file under test/.
function testFiles(path) {
  const abs = resolve(root, path);
  if (!statSync(abs).isDirectory()) return [path];
  return readdirSync(abs, { recursive: true })
    .filter((f) => String(f).endsWith('.test.ts'))
    .map((f) => join(path, String(f)))
    .sort();
}
const files = [...new Set((paths.length > 0 ? paths : ['test']).flatMap(testFiles))];

// Tests on the machine's Docker engine (test/docker/) run one at a time: they start
// clusters, extra engines and containers there, and wait on checkpoints and timeouts
// more than they compute. Together they are the longest chain of the suite, so they run
// beside the others from the start. The acceptance files (test/docker/acceptance-*) are
// not in that chain: each runs its boxes on engines and in a network lab of its own
// (test/docker/acceptance.ts), so they run with the other files. (Containers carry
// their cluster's id in a label: clusters of files running at once do not touch each
// other's containers.)
const isEngineChainFile = (f) => {
  const parts = f.split('/');
  return parts.includes('browser') || (parts.includes('docker') && !/(^|\/)acceptance-[^/]*\.test\.ts$/.test(f));
};

// Slowest first, so that no long file starts last: as the previous run measured them, or
// else a rough guess by folder (seconds on an idle 2-core machine).
const FOLDER_SECONDS = { browser: 70, docker: 50, process: 30, adversarial: 20, e2e: 15, 'sim-cluster': 15, sim: 10, setup: 8, fuzz: 8, binary: 4 };
function previousDurations() {
  const seconds = new Map();
  try {
    for (const line of readFileSync(join(results, 'durations.tsv'), 'utf8').split('\n')) {
      const [s, , file] = line.split('\t');
      if (file && Number.isFinite(Number(s))) seconds.set(file, Number(s));
    }
  } catch {
    // no previous run
  }
  return seconds;
}
const known = previousDurations();
function expectedSeconds(f) {
  return known.get(f) ?? FOLDER_SECONDS[f.split('/')[1] ?? ''] ?? 2;
}
const byExpectedTime = (a, b) => expectedSeconds(b) - expectedSeconds(a) || a.localeCompare(b);
const dockerQueue = files.filter(isEngineChainFile).sort(byExpectedTime);
const otherQueue = files.filter((f) => !isEngineChainFile(f)).sort(byExpectedTime);

let passed = 0;
let failed = 0;
const failures = [];
const durations = [];
let reported = 0;

mkdirSync(results, { recursive: true });
rmSync(join(results, 'stderr'), { recursive: true, force: true });
const tapLog = createWriteStream(join(results, 'tap.log'));
tapLog.write('TAP version 14\n');

/**
 * Counts the TAP a file printed: its top-level test points (`ok N - name`, unindented
 * when a file runs alone) and its plan. Returns what failed, by name.
 */
function countFile(lines) {
  const TEST = /^(not )?ok \d+ - (.*?)(?: # time=\S+)?(?: \{)?$/;
  const problems = [];
  let counted = 0;
  let plan = null;
  let bailed = null;
  for (const line of lines) {
    const bail = /^\s*Bail out!(.*)$/.exec(line);
    if (bail && bailed === null) bailed = bail[1].trim();
    const p = /^1\.\.(\d+)/.exec(line);
    if (p) plan = Number(p[1]);
    const test = TEST.exec(line);
    if (!test) continue;
    counted += 1;
    const skipped = /# (SKIP|TODO)\b/i.test(test[2]);
    if (test[1] || skipped) problems.push(`${test[2]}${skipped ? ' (skipped: not allowed)' : ''}`);
  }
  return { counted, plan, bailed, problems };
}

/** Runs one test file; resolves when it has ended and been counted. */
function runFile(file) {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env: { ...process.env, TAP_TIMEOUT: String(fileTimeoutSeconds) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so that a timeout ends what it started too
  });
  running.add(child);
  const out = [];
  const err = [];
  child.stdout.on('data', (c) => out.push(c));
  child.stderr.on('data', (c) => err.push(c));
  let timedOut = false;
  const killTimer = setTimeout(() => {
    timedOut = true;
    killGroup(child, 'SIGKILL');
  }, (fileTimeoutSeconds + 60) * 1000);
  return new Promise((done) => {
    let exit = null;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(killTimer);
      running.delete(child);
      const seconds = (Date.now() - started) / 1000;
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      record(file, seconds, stdout, stderr, exit, timedOut);
      done();
    };
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // A process the file started may hold its output open; do not wait for it forever.
      const giveUp = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, 5000);
      child.on('close', () => {
        clearTimeout(giveUp);
        finish();
      });
    });
    child.on('error', (e) => {
      exit = { code: null, signal: null, error: e.message };
      finish();
    });
  });
}

const running = new Set();
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
// Interrupted: end the files that are running, and what they started.
for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.on(signal, () => {
    for (const c of running) killGroup(c, 'SIGTERM');
    process.exit(status);
  });
}

function record(file, seconds, stdout, stderr, exit, timedOut) {
  const lines = stdout.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const { counted, plan, bailed, problems } = countFile(lines);
  const why = [];
  if (timedOut) why.push(`killed after ${fileTimeoutSeconds + 60} s`);
  else if (exit.error) why.push(`could not start: ${exit.error}`);
  else if (exit.signal) why.push(`ended by ${exit.signal}`);
  else if (exit.code !== 0 && problems.length === 0) why.push(`exited with status ${exit.code}`);
  if (bailed !== null) why.push(`bailed out${bailed ? `: ${bailed}` : ''}`);
  if (counted === 0) why.push('reported no tests');
  else if (plan === null) why.push(`ended before its plan, after ${counted} tests`);
  else if (plan !== counted) why.push(`planned ${plan} tests, reported ${counted}`);

  passed += counted - problems.length;
  failed += problems.length;
  for (const p of problems) failures.push(`${file} › ${p}`);
  // The file failed outside any test: a syntax error, an uncaught throw, a timeout.
  if (why.length > 0 && problems.length === 0) {
    failed += 1;
    failures.push(`${file} (${why.join('; ')})`);
  }
  const ok = problems.length === 0 && why.length === 0;
  reported += 1;
  durations.push({ seconds, ok, file });

  tapLog.write(`# Subtest: ${file}\n${lines.map((l) => (l ? `    ${l}` : '')).join('\n')}\n`);
  tapLog.write(`${ok ? 'ok' : 'not ok'} ${reported} - ${file} # time=${(seconds * 1000).toFixed(0)}ms\n\n`);
  if (stderr.trim()) {
    const to = join(results, 'stderr', `${file.replace(/[/\\]/g, '__')}.log`);
    mkdirSync(dirname(to), { recursive: true });
    writeFileSync(to, stderr);
  }

  const summary = `${counted} test${counted === 1 ? '' : 's'}${problems.length ? `, ${problems.length} failed` : ''}${why.length ? `, ${why.join('; ')}` : ''}, ${seconds.toFixed(1)} s`;
  process.stdout.write(`${ok ? 'ok' : 'not ok'} ${reported} - ${file} # ${summary}\n`);
  if (!ok) {
    // Everything but the passing assertions inside tests, then what it wrote to stderr.
    const shown = lines.filter((l) => !/^ {4,}ok \d+/.test(l));
    process.stdout.write(`${shown.map((l) => `    ${l}`).join('\n')}\n`);
    if (stderr.trim()) process.stdout.write(`    # stderr of ${file}:\n${stderr.replace(/^/gm, '    # ')}\n`);
  }
}

/** The type check, counted as one test. */
function runTypecheck() {
  const started = Date.now();
  const child = spawn(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  child.stdout.on('data', (c) => out.push(c));
  child.stderr.on('data', (c) => out.push(c));
  return new Promise((done) => {
    child.on('close', (code) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (code === 0) {
        passed += 1;
        process.stdout.write(`ok - typecheck # ${seconds} s\n`);
      } else {
        failed += 1;
        failures.push('typecheck');
        process.stdout.write(`not ok - typecheck # ${seconds} s\n${Buffer.concat(out).toString('utf8')}\n`);
      }
      done();
    });
  });
}

/** Runs the files of `queue` one after the other, taking each from the shared queue. */
async function lane(queue) {
  while (queue.length > 0) await runFile(queue.shift());
}

if (typecheck) process.stdout.write('# typecheck: tsc --noEmit\n');
process.stdout.write(`# ${files.length} test files: ${otherQueue.length} run ${jobs} at a time; beside them, ${dockerQueue.length} on the Docker engine one at a time\n`);
const suiteStarted = Date.now();
await Promise.all([
  lane(dockerQueue),
  ...Array.from({ length: jobs }, async (_, i) => {
    if (i === 0 && typecheck) await runTypecheck();
    await lane(otherQueue);
  }),
]);

await new Promise((flushed) => tapLog.end(`1..${reported}\n`, flushed));
durations.sort((a, b) => b.seconds - a.seconds);
// A run of some files keeps what earlier runs measured for the others.
const kept = paths.length > 0 ? [...known].filter(([f]) => !durations.some((d) => d.file === f)) : [];
const rows = [...durations.map((d) => `${d.seconds.toFixed(1)}\t${d.ok ? 'ok' : 'failed'}\t${d.file}`), ...kept.map(([f, s]) => `${s.toFixed(1)}\t-\t${f}`)];
writeFileSync(join(results, 'durations.tsv'), `${rows.join('\n')}\n`);
if (failures.length > 0) {
  process.stdout.write('\nfailed:\n');
  for (const f of failures) process.stdout.write(`  - ${f}\n`);
}
process.stdout.write(`# ${((Date.now() - suiteStarted) / 1000).toFixed(0)} s\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);
