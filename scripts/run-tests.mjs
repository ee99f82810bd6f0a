// Runs the test suites and ends with the line CI reads: `N passed, N failed`.
//
// Usage: node scripts/run-tests.mjs [--no-typecheck] [--jobs=N] [PATH...]
//   (default: every test/**/*.test.ts; N, or WORKRS_TEST_JOBS: files run at once, default 3)
//
// Each test file runs as its own `node --import tsx FILE`: tap's `t` prints TAP when a
// file is run directly, so tap's runner, whose per-file start-up cost several times more
// than most files' tests, is not needed. The type check runs beside the first files.
//
// Counts every test (a top-level `t.test` of a file) and the type check as one each. A
// file that crashes, times out or bails out before reporting its tests counts as one
// failure; a skipped or todo test counts as a failure too, since a suite must never skip
// silently. Prints one line per file, and the whole output of a file that failed.
//
// Writes to test-results/: tap.log (every file's TAP, as tap's runner reports it),
// durations.tsv (seconds per file, slowest first; the next run starts the slowest files
// first) and stderr/ (what files wrote to stderr, when anything).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const results = join(root, 'test-results');
const args = process.argv.slice(2);
const typecheck = !args.includes('--no-typecheck');
const jobsArg = args.find((a) => a.startsWith('--jobs='))?.slice('--jobs='.length) ?? process.env.WORKRS_TEST_JOBS;
const jobs = Math.max(1, Number(jobsArg) || 3);
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

// Tests on real Docker (test/docker/) run one at a time: they start clusters, extra
// engines and network namespaces on the machine, and time checkpoints. They run beside
// the other files, and one of them is started whenever none is running: together they
// are the longest chain of the suite.
const isDockerFile = (f) => f.split('/').includes('docker');

// Slowest first, so that no long file starts last: as the previous run measured them, or,
// on a first run, files that start processes before unit tests.
const FOLDER_ORDER = ['process', 'adversarial', 'e2e', 'binary', 'setup', 'fuzz', 'sim'];
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
  if (known.has(f)) return known.get(f);
  const folder = f.split('/')[1] ?? '';
  const rank = FOLDER_ORDER.indexOf(folder);
  return rank >= 0 ? 1000 - rank : 0;
}
const byExpectedTime = (a, b) => expectedSeconds(b) - expectedSeconds(a) || a.localeCompare(b);
const dockerQueue = files.filter(isDockerFile).sort(byExpectedTime);
const otherQueue = files.filter((f) => !isDockerFile(f)).sort(byExpectedTime);

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
function countFile(file, lines) {
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
    const finish = () => {
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
  const { counted, plan, bailed, problems } = countFile(file, lines);
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

// `jobs` slots. A free slot takes the next Docker file when no Docker file is running
// (the Docker files are the critical path), else the next other file. The type check
// takes the first slot.
let dockerRunning = false;
async function slot(first) {
  if (first && typecheck) await runTypecheck();
  for (;;) {
    if (!dockerRunning && dockerQueue.length > 0) {
      dockerRunning = true;
      await runFile(dockerQueue.shift());
      dockerRunning = false;
    } else if (otherQueue.length > 0) {
      await runFile(otherQueue.shift());
    } else if (dockerQueue.length > 0) {
      // Only Docker files are left and one is running: this slot is done.
      return;
    } else {
      return;
    }
  }
}

if (typecheck) process.stdout.write('# typecheck: tsc --noEmit\n');
process.stdout.write(`# ${files.length} test files, ${jobs} at a time\n`);
const suiteStarted = Date.now();
await Promise.all(Array.from({ length: jobs }, (_, i) => slot(i === 0)));

tapLog.end(`1..${reported}\n`);
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
