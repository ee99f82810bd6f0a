// The freeze as the capture reads it (freeze-watch.ts): which cgroup file tells, and
// the span from the first FROZEN to the last THAWED, CRIU's thawed gap in the middle
// included. A file stands in for the cgroup's, its state changed on timers.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { freezerIn, timeFrozen } from '../../src/worker/freeze-watch.js';

t.test('the freezer file of a cgroup v1 and a v2 process', async (t) => {
  const v1 = ['12:pids:/docker/abc', '7:freezer:/docker/abc', '1:name=systemd:/docker/abc', '0::/system.slice/containerd.service'].join('\n');
  const f1 = freezerIn(v1);
  t.equal(f1?.path, '/sys/fs/cgroup/freezer/docker/abc/freezer.state', 'v1: the freezer controller, even with a unified line');
  t.equal(f1?.frozen('FROZEN\n'), true);
  t.equal(f1?.frozen('FREEZING\n'), true, 'on its way: the tasks stop');
  t.equal(f1?.frozen('THAWED\n'), false);
  const f2 = freezerIn('0::/system.slice/docker-abc.scope\n');
  t.equal(f2?.path, '/sys/fs/cgroup/system.slice/docker-abc.scope/cgroup.events');
  t.equal(f2?.frozen('populated 1\nfrozen 1\n'), true);
  t.equal(f2?.frozen('populated 1\nfrozen 0\n'), false);
  t.equal(freezerIn('garbage'), null, 'nothing to read: no freezer');
});

t.test('the freeze is the span from the first FROZEN to the last THAWED, the thawed gap included', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-freeze-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'freezer.state');
  await writeFile(path, 'THAWED\n');
  const freezer = { path, frozen: (text: string) => text.trim() !== 'THAWED' };
  const set = (state: string) => writeFile(path, `${state}\n`);
  // CRIU's shape: frozen 150 ms, thawed 150 ms (tasks held by ptrace), frozen 150 ms.
  const { value, frozenMs } = await timeFrozen(freezer, async () => {
    await delay(50);
    await set('FROZEN');
    await delay(150);
    await set('THAWED');
    await delay(150);
    await set('FROZEN');
    await delay(150);
    await set('THAWED');
    await delay(50);
    return 'dumped';
  });
  t.equal(value, 'dumped', 'the call’s own result comes back');
  // Timers on a busy machine run late: only the order of magnitude is asserted. The
  // FROZEN time alone would be ~300 ms; the span is ~450 ms.
  t.ok(frozenMs !== null && frozenMs >= 380 && frozenMs < 2000, `the span, ~450 ms: ${String(frozenMs)}`);
  t.equal((await timeFrozen(freezer, () => delay(30))).frozenMs, null, 'never seen frozen: null, not 0');
  t.equal((await timeFrozen(null, () => delay(10))).frozenMs, null, 'no freezer: null');
});
