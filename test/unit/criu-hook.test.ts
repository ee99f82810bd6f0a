// The capture hook's pieces that need no CRIU (criu-hook.ts): the json-file logs it
// copies merged back into the output `docker logs` gives, the request it reads, and
// the node's way of telling a copy made from a hook that never ran. The hook itself
// runs under real CRIU in test/docker (checkpoint, one-instant).
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
  await mergeJsonFileLogs(logs, out);
  t.equal(await readFile(out, 'utf8'), 'one\ntwo three\nfour\nfé\n', 'the lines in order, the cut one left out');
});

t.test('a request is refused unless its paths are absolute and on one line', async (t) => {
  await t.rejects(placeRequest({ initPid: 1, upperDir: '/u', dest: '/d', logPath: '/l' }), /not a process to capture/);
  await t.rejects(placeRequest({ initPid: 4242, upperDir: 'u', dest: '/d', logPath: '/l' }), /must be absolute/);
  await t.rejects(placeRequest({ initPid: 4242, upperDir: '/u', dest: '/d\n/etc', logPath: '/l' }), /on one line/);
});

t.test('the copy the hook left: none when it never ran, an error when it failed, else its mark of the resume', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-hook-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.equal(await readCapture(join(dir, 'never')), null, 'no folder: the hook did not run');
  await mkdir(join(dir, 'failed'));
  await writeFile(join(dir, 'failed', 'failed'), '');
  await t.rejects(readCapture(join(dir, 'failed')), /could not copy/);
  await mkdir(join(dir, 'half'));
  await t.rejects(readCapture(join(dir, 'half')), /did not finish/);
  await mkdir(join(dir, 'ok'));
  await writeFile(join(dir, 'ok', 'done'), '');
  const done = await readCapture(join(dir, 'ok'));
  t.equal(done?.upperCopy, join(dir, 'ok', 'upper'));
  t.ok((done?.resumedAtMs ?? 0) > 0, 'without a resume mark, the end of the copy bounds the freeze');
});

t.test('the hook lets every dump without a request through before it reads anything', async (t) => {
  const lines = HOOK_SCRIPT.split('\n');
  const firstCommand = lines.findIndex((l) => l !== '' && !l.startsWith('#'));
  t.match(lines[firstCommand], /^case "\$CRTOOLS_SCRIPT_ACTION" in post-dump\|network-unlock\) ;; \*\) exit 0 ;; esac$/, 'other actions leave at once');
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
