// Builds the single executable of an earlier commit of this repository, the way that
// commit built itself, and copies it to OUT:
//
//   node scripts/build-at.mjs COMMIT OUT
//
//   1. COMMIT is resolved in this repository (a commit missing from a shallow clone
//      is refused with the command that fetches it)
//   2. a detached `git worktree` of it is made in a temporary folder (outside the
//      repository: the tests that walk the repository's files must not see it)
//   3. its node_modules: a link to this checkout's when that commit's
//      package-lock.json equals the current one, otherwise `npm ci` there
//   4. that commit's own `node scripts/build.mjs` runs in the worktree, as `make build`
//      runs it, and its dist/workrs is kept in .cache/build-at/<commit>/workrs
//   5. the worktree is removed and its registration pruned, also after a failure
//
// A commit built once is not built again: the kept executable is copied to OUT. Two
// runs for the same commit at once (two test files) take turns on a lock folder, so
// the second copies what the first built.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cacheRoot = join(root, '.cache', 'build-at');
/** How long a run waits for another run's build of the same commit (a cold build with npm ci takes minutes). */
const LOCK_WAIT_MS = 15 * 60_000;
const LOCK_POLL_MS = 500;
const log = (msg) => process.stderr.write(`build-at: ${msg}\n`);

class BuildAtError extends Error {}

function git(args) {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new BuildAtError(`git ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout.trim();
}

/** The full id of `ref` as a commit of this repository; a clear error when the clone does not hold it. */
function resolveCommit(ref) {
  const found = spawnSync('git', ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { cwd: root, encoding: 'utf8' });
  if (found.status === 0) return found.stdout.trim();
  const shallow = spawnSync('git', ['rev-parse', '--is-shallow-repository'], { cwd: root, encoding: 'utf8' }).stdout.trim() === 'true';
  throw new BuildAtError(shallow
    ? `commit ${ref} is not in this clone: it is shallow. Fetch the history first: git fetch --unshallow (or git fetch origin ${ref})`
    : `commit ${ref} is unknown to this repository: fetch it (git fetch origin ${ref}) or check the id`);
}

/**
 * Holds `dir` as a lock while `fn` runs. A lock whose holder (the pid written in it)
 * is gone is taken over: a run killed half-way must not block the next one.
 */
async function withLock(dir, fn) {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    if (!holderAlive(dir)) {
      log(`taking over the lock ${dir} of a run that is gone`);
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new BuildAtError(`another build-at has held ${dir} for over ${LOCK_WAIT_MS / 60_000} minutes; remove the folder if no build runs`);
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
  }
  try {
    return await fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function holderAlive(dir) {
  let pid;
  try {
    pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
  } catch {
    // The holder made the folder and has not written its pid yet: alive.
    return true;
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** Copies through a temporary name, so that no reader ever sees half an executable. */
function copyExecutable(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  const partial = `${to}.partial-${process.pid}`;
  copyFileSync(from, partial);
  chmodSync(partial, 0o755);
  renameSync(partial, to);
}

function run(cmd, args, cwd, env, what) {
  const r = spawnSync(cmd, args, { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw new BuildAtError(`${what} could not run: ${r.error.message}`);
  if (r.status !== 0) throw new BuildAtError(`${what} failed (${r.signal ?? `exit ${r.status}`})`);
}

/** Builds `commit` in a worktree of its own and keeps its executable at `kept`. */
function buildCommit(commit, kept) {
  const tree = mkdtempSync(join(tmpdir(), `workrs-build-at-${commit.slice(0, 12)}-`));
  const started = Date.now();
  try {
    git(['worktree', 'add', '--detach', '--force', tree, commit]);
    log(`worktree of ${commit.slice(0, 12)} at ${tree}`);
    const lockThen = spawnSync('git', ['show', `${commit}:package-lock.json`], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const lockNow = existsSync(join(root, 'package-lock.json')) ? readFileSync(join(root, 'package-lock.json'), 'utf8') : null;
    if (lockThen.status === 0 && lockNow !== null && lockThen.stdout === lockNow && existsSync(join(root, 'node_modules'))) {
      symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'), 'dir');
      log('same package-lock.json: this checkout\'s node_modules');
    } else {
      log('its package-lock.json differs: npm ci');
      run('npm', ['ci', '--no-audit', '--no-fund'], tree, process.env, `npm ci in the worktree of ${commit}`);
    }
    // That commit's build writes into its own dist/: an output folder chosen for this
    // process (WORKRS_BUILD_DIR) must not redirect it.
    const env = { ...process.env };
    delete env.WORKRS_BUILD_DIR;
    run(process.execPath, ['scripts/build.mjs'], tree, env, `the build of ${commit} (node scripts/build.mjs)`);
    const built = join(tree, 'dist', 'workrs');
    if (!existsSync(built)) throw new BuildAtError(`the build of ${commit} ended without writing dist/workrs`);
    copyExecutable(built, kept);
    log(`built ${commit.slice(0, 12)} in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    removeWorktree(tree);
  }
}

function removeWorktree(tree) {
  // The link first: removing the worktree must never reach this checkout's node_modules.
  try {
    unlinkSync(join(tree, 'node_modules'));
  } catch (err) {
    // ENOENT: not linked (npm ci, or the worktree was never made); EISDIR: a real
    // folder npm ci made, removed with the worktree.
    if (err.code !== 'ENOENT' && err.code !== 'EISDIR') log(`could not unlink ${tree}/node_modules: ${err.message}`);
  }
  const removed = spawnSync('git', ['worktree', 'remove', '--force', tree], { cwd: root, encoding: 'utf8' });
  if (removed.status !== 0 && existsSync(tree)) log(`git worktree remove: ${removed.stderr.trim()}`);
  rmSync(tree, { recursive: true, force: true });
  spawnSync('git', ['worktree', 'prune'], { cwd: root });
}

async function main() {
  const [ref, outArg] = process.argv.slice(2);
  if (!ref || !outArg) throw new BuildAtError('usage: node scripts/build-at.mjs COMMIT OUT');
  const out = resolve(outArg);
  const commit = resolveCommit(ref);
  const kept = join(cacheRoot, commit, 'workrs');
  mkdirSync(cacheRoot, { recursive: true });
  await withLock(join(cacheRoot, `${commit}.lock`), () => {
    if (existsSync(kept)) log(`${commit.slice(0, 12)} built before: ${kept}`);
    else buildCommit(commit, kept);
  });
  if (out !== kept) copyExecutable(kept, out);
  log(`wrote ${out}`);
}

try {
  await main();
} catch (err) {
  if (!(err instanceof BuildAtError)) throw err;
  log(err.message);
  process.exitCode = 1;
}
