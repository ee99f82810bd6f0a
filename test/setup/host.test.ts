// The host that `make setup` prepared: a Docker engine in experimental mode, a CRIU
// that passes `criu check`, the base image, and a real checkpoint/restore round trip.
// These tests need Docker and CRIU and FAIL without them: they never skip.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { checkCriu, checkDocker } from '../../src/doctor/checks.js';
import { connectDocker } from '../../src/worker/docker-endpoint.js';
import { demuxDockerLog } from '../../src/worker/docker-logs.js';
import { createCheckpoint, engineCheckpointDir, listCheckpoints, startFromCheckpoint } from '../../src/worker/docker-checkpoint.js';
import { waitFor } from '../helpers/wait.js';

const BASE_IMAGE = 'workrs/busybox:1';
const docker = connectDocker();

t.test('a Docker engine answers and runs in experimental mode', async (t) => {
  const result = await checkDocker();
  t.ok(result.ok, result.detail);
});

t.test("CRIU passes 'criu check' on this kernel", async (t) => {
  const result = await checkCriu();
  t.ok(result.ok, result.detail);
});

t.test('the base image exists and runs a command with no network', async (t) => {
  const info = await docker.getImage(BASE_IMAGE).inspect();
  t.ok(info.Id.startsWith('sha256:'), `${BASE_IMAGE} is present`);
  const container = await docker.createContainer({
    Image: BASE_IMAGE,
    Cmd: ['sh', '-c', 'echo hello from $(uname -s); test -d /work && test -w /tmp'],
    HostConfig: { NetworkMode: 'none' },
  });
  t.teardown(() => container.remove({ force: true }));
  await container.start();
  const exit = await container.wait();
  const logs = demuxDockerLog(await container.logs({ stdout: true, stderr: true, follow: false }));
  t.equal(exit.StatusCode, 0, `exit code (stderr: ${logs.stderr.toString()})`);
  t.equal(logs.stdout.toString(), 'hello from Linux\n');
});

/** The numbers a counting container printed, in order. */
async function countsOf(container: { logs(o: object): Promise<Buffer> }): Promise<number[]> {
  const buf = await container.logs({ stdout: true, stderr: false, follow: false });
  return demuxDockerLog(buf)
    .stdout.toString()
    .split('\n')
    .filter((l) => l.length > 0)
    .map(Number);
}

t.test('a counting container checkpointed with CRIU and restored continues its count', async (t) => {
  const name = `workrs-setup-test-${randomBytes(4).toString('hex')}`;
  // The count lives only in the shell's memory: a restart from scratch would print 0 again.
  const container = await docker.createContainer({
    name,
    Image: BASE_IMAGE,
    Cmd: ['sh', '-c', 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done'],
    Labels: { 'workrs.test': 'setup' },
    HostConfig: { NetworkMode: 'none' },
  });
  t.teardown(() => container.remove({ force: true }));
  await container.start();
  await waitFor('the container to count to 10', async () => ((await countsOf(container)).length >= 10 ? true : undefined));

  // Not leaving it running: the container stops after the dump, as a box about to die would.
  await createCheckpoint(container, 'cp1', { leaveRunning: false });
  t.same(await listCheckpoints(container), ['cp1'], 'the engine lists the checkpoint');
  await waitFor('the container to stop after the checkpoint', async () => ((await container.inspect()).State.Running ? undefined : true));
  const before = await countsOf(container);
  const last = before.at(-1);
  if (last === undefined) throw new Error('no count before the checkpoint');
  t.same(before, before.map((_, i) => i), 'counted 0, 1, 2, … up to the checkpoint');

  // From the engine's own folder, as Docker left it: the case where its tar collides
  // with the copy containerd keeps from the dump (moby#42900) unless a nonce goes in.
  const dir = engineCheckpointDir(((await docker.info()) as { DockerRootDir: string }).DockerRootDir, (await container.inspect()).Id, 'cp1');
  await startFromCheckpoint(container, 'cp1', dir);
  const after = await waitFor('the restored container to count 10 more', async () => {
    const counts = await countsOf(container);
    return counts.length >= before.length + 10 ? counts : undefined;
  });
  t.equal(after.filter((n) => n === 0).length, 1, 'the count did not restart from 0');
  t.equal(after[before.length], last + 1, `the restored count continued from ${last}`);
  t.same(after, after.map((_, i) => i), 'no number lost or repeated across the restore');
});
