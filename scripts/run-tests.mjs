// Runs the test suites and ends with the line CI reads: `N passed, N failed`.
//
// Usage: node scripts/run-tests.mjs [--no-typecheck] [PATH...]   (default: every test/**/*.test.ts)
// Counts every test (a `t.test` inside a file) and the type check as one each. A
// file that crashes before reporting its tests counts as one failure; a skipped or
// todo test counts as a failure too, since a suite must never skip silently.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const typecheck = !args.includes('--no-typecheck');
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
const files = (paths.length > 0 ? paths : ['test']).flatMap(testFiles);
// Tests on real Docker run one file at a time: their clusters label containers with
// node ids (n1, n2, …) that would collide on the machine's engine, and they time
// checkpoints. The rest run in parallel (tap's default: one file per core).
const serial = files.filter((f) => f.split('/').includes('docker'));
const parallel = files.filter((f) => !serial.includes(f));

let passed = 0;
let failed = 0;
const failures = [];

if (typecheck) {
  process.stdout.write('# typecheck: tsc --noEmit\n');
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.json'], { cwd: root, encoding: 'utf8' });
  if (tsc.status === 0) {
    passed += 1;
    process.stdout.write('ok - typecheck\n');
  } else {
    failed += 1;
    failures.push('typecheck');
    process.stdout.write(`not ok - typecheck\n${tsc.stdout}${tsc.stderr}\n`);
  }
}

mkdirSync(join(root, 'test-results'), { recursive: true });
const raw = createWriteStream(join(root, 'test-results', 'tap.log'));

// Per top-level file: how many of its tests we counted, to spot files that crashed.
let file = { name: '', counted: 0, failed: 0 };
const TOP = /^(not )?ok \d+ - (\S+)(.*)$/;
const TEST = /^ {4}(not )?ok \d+ - (.*?)(?: # time=.*)?$/;

function onLine(line) {
  raw.write(`${line}\n`);
  const deepPass = /^ {8,}ok \d+/.test(line);
  if (!deepPass) process.stdout.write(`${line}\n`);
  const test = TEST.exec(line);
  if (test) {
    const skipped = /# (SKIP|TODO)\b/i.test(test[2]);
    file.counted += 1;
    if (test[1] || skipped) {
      failed += 1;
      file.failed += 1;
      failures.push(`${file.name || '(file)'} › ${test[2]}${skipped ? ' (skipped: not allowed)' : ''}`);
    } else {
      passed += 1;
    }
    return;
  }
  if (/^# Subtest: /.test(line)) {
    file = { name: line.slice('# Subtest: '.length), counted: 0, failed: 0 };
    return;
  }
  const top = TOP.exec(line);
  if (!top) return;
  if (top[1] && file.failed === 0) {
    failed += 1; // the file failed outside any test: syntax error, uncaught throw, timeout
    failures.push(`${top[2]} (failed outside its tests)`);
  } else if (!top[1] && file.counted === 0) {
    failed += 1;
    failures.push(`${top[2]} (reported no tests)`);
  }
}

/** One tap run over `list`; resolves when it ends, counting as it goes. */
function runTap(list, extra) {
  if (list.length === 0) return Promise.resolve();
  const before = failed;
  const child = spawn(process.execPath, [join(root, 'node_modules/tap/dist/esm/run.mjs'), '--reporter=tap', ...extra, ...list], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      if (pending) onLine(pending);
      if (code !== 0 && failed === before) {
        failed += 1;
        failures.push(`tap exited with status ${code} without a failing test`);
      }
      resolve();
    });
  });
}

await runTap(parallel, []);
await runTap(serial, ['--jobs=1']);
raw.end();
if (failures.length > 0) {
  process.stdout.write('\nfailed:\n');
  for (const f of failures) process.stdout.write(`  - ${f}\n`);
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);
