// The capture hook's pieces that need no CRIU (criu-hook.ts): the json-file logs it
// copies merged back into the output `docker logs` gives, the request it reads, and
// the node's way of telling a copy made from a hook that never ran. The hook itself
// runs under real CRIU in test/docker (checkpoint, one-instant).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { CaptureHook, HOOK_SCRIPT, mergeJsonFileLogs, placeRequest, readCapture } from '../../src/worker/criu-hook.js';

const quiet = pino({ level: 'silent' });
const entry = (log: string, stream = 'stdout'): string => `${JSON.stringify({ log, stream, time: '2026-12-06T19:00:00.000000000Z' })}\n`;

t.test('the copied json-file logs merge into the output in order: rotated files first, oldest first', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-hook-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const logs = join(dir, 'logs');
  await mkdir(logs);
  const name = 'abc-json.log';
  await writeFile(join(logs, `${name}.2`), entry('one\n') + entry('two ', 'stderr'));
  await writeFile(join(logs, `${name}.1`), entry('three\n'));
  // The current file, cut by the copy in the middle of a line the engine was writing.
  await writeFile(join(logs, name), entry('four\n') + entry('fé\n', 'stderr') + '{"log":"fi');
  const out = join(dir, 'merged');
  await writeFile(join(logs, 'other-json.log'), entry('not this container\n'));
  await mergeJsonFileLogs(logs, name, out);
  t.equal(await readFile(out, 'utf8'), 'one\ntwo three\nfour\nfé\n', 'the lines in order, the cut one left out');
});

t.test('a request is refused unless its paths are absolute and on one line', async (t) => {
  await t.rejects(placeRequest({ initPid: 1, upperDir: '/u', dest: '/d', logPath: '/l' }), /not a process to capture/);
  await t.rejects(placeRequest({ initPid: 4242, upperDir: 'u', dest: '/d', logPath: '/l' }), /must be absolute/);
  await t.rejects(placeRequest({ initPid: 4242, upperDir: '/u', dest: '/d\n/etc', logPath: '/l' }), /on one line/);
});

t.test('the copy the hook left: none when it never ran, an error when it failed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-hook-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const req = (name: string) => ({ dest: join(dir, name), upperDir: '/var/lib/docker/overlay2/abc/diff', logPath: '/var/lib/docker/containers/abc/abc-json.log' });
  await mkdir(join(dir, 'never'));
  t.equal(await readCapture(req('never')), null, 'an empty folder: the hook did not run');
  await mkdir(join(dir, 'failed'));
  await writeFile(join(dir, 'failed', 'failed'), '');
  await t.rejects(readCapture(req('failed')), /could not copy/);
  await mkdir(join(dir, 'ok'));
  await writeFile(join(dir, 'ok', 'done'), '');
  t.same(await readCapture(req('ok')), { upperCopy: join(dir, 'ok', 'diff'), logsDir: join(dir, 'ok'), logName: 'abc-json.log' });
});

t.test('the hook script copies what a request names, once, and lets everything else through (as root, as CRIU runs it)', async (t) => {
  t.equal(process.getuid?.(), 0, 'the tests run as root, as a node that checkpoints does');
  const dir = await mkdtemp(join(tmpdir(), 'workrs-hook-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const script = join(dir, 'hook');
  await writeFile(script, HOOK_SCRIPT, { mode: 0o755 });
  const upper = join(dir, 'overlay', 'diff');
  await mkdir(join(upper, 'work'), { recursive: true });
  await writeFile(join(upper, 'work', 'count'), '7\n');
  const logPath = join(dir, 'c1-json.log');
  await writeFile(logPath, entry('now\n'));
  await writeFile(`${logPath}.1`, entry('before\n'));
  const dest = join(dir, 'capture');
  await mkdir(dest);
  const pid = 2_000_000_000 + Math.floor(Math.random() * 1e8); // above any pid_max: no real container's
  const remove = await placeRequest({ initPid: pid, upperDir: upper, dest, logPath });
  t.teardown(remove);
  const run = (action: string, initPid = pid) => execFileSync(script, { env: { CRTOOLS_SCRIPT_ACTION: action, CRTOOLS_INIT_PID: String(initPid) } });
  run('pre-dump');
  run('network-lock');
  run('post-dump', pid + 1);
  t.same(await readdir(dest), [], 'other actions, and a dump of another pid, copy nothing');
  run('post-dump');
  t.same((await readdir(dest)).sort(), ['c1-json.log', 'c1-json.log.1', 'diff', 'done'], 'the upper folder under its name, the log files, the mark');
  t.equal(await readFile(join(dest, 'diff', 'work', 'count'), 'utf8'), '7\n');
  await writeFile(join(upper, 'work', 'count'), '8\n');
  run('post-dump');
  t.equal(await readFile(join(dest, 'diff', 'work', 'count'), 'utf8'), '7\n', 'the second run of the same point leaves the copy as it was');
  const out = join(dir, 'merged');
  await mergeJsonFileLogs(dest, 'c1-json.log', out);
  t.equal(await readFile(out, 'utf8'), 'before\nnow\n');
});

t.test('the hook lets every dump without a request through before it reads anything', async (t) => {
  const lines = HOOK_SCRIPT.split('\n');
  const firstCommand = lines.findIndex((l) => l !== '' && !l.startsWith('#'));
  t.equal(lines[firstCommand], '[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0', 'other actions leave at once');
  t.match(HOOK_SCRIPT, /\[ -f "\$req" \] \|\| exit 0/, 'a dump nobody asked about leaves at once');
  t.notMatch(HOOK_SCRIPT, /exit [1-9]/, 'the hook never fails a dump');
});

t.test('a hook that cannot be installed, or did not run once, is not used', async (t) => {
  let installs = 0;
  const never = new CaptureHook(quiet, () => {
    installs++;
    return Promise.resolve(false);
  });
  t.equal(await never.usable(), false);
  t.equal(await never.usable(), false);
  t.equal(installs, 1, 'installed once at most');
  const given = new CaptureHook(quiet, () => Promise.resolve(true));
  t.equal(await given.usable(), true);
  given.disable('it did not run');
  t.equal(await given.usable(), false, 'given up on after it did not run');
});
