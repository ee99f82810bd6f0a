// DockerRuntime on the machine's engine: containers named and labelled per attempt,
// limits, isolation, exit codes, input files, logs, reconciliation from Docker's own
// list and adoption after a restart of workrs. Real Docker: these tests FAIL without it.
import { createServer } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { DockerRuntime } from '../../src/worker/docker-runtime.js';
import { containerName } from '../../src/worker/docker-names.js';
import { JOB_CAPABILITIES } from '../../src/worker/docker-run-config.js';
import { runKey, type RunKey } from '../../src/worker/runtime.js';
import { waitFor } from '../helpers/wait.js';
import { BASE_IMAGE, mainEngine, testLogger } from './engines.js';
import { assignment, containerOf, execIn, Exits, testRuntime, uid } from './fixtures.js';

const engine = await mainEngine();
const { docker } = engine;
const node = await testRuntime(docker);
t.teardown(node.cleanup);
const { runtime } = node;

const sorted = (keys: RunKey[]) => keys.map(runKey).sort();

t.test('an attempt runs in a container named and labelled for its job, epoch and node, with its limits and no privileges', async (t) => {
  const key = { jobId: `j-${uid()}`, epoch: 3 };
  const exits = new Exits();
  await runtime.start(assignment(key.jobId, key.epoch, { command: ['sleep', '30'], env: { GREETING: 'hi' }, memoryMB: 64, cpus: 0.5 }), exits.onExit);
  t.teardown(() => runtime.stop(key));
  const info = await containerOf(docker, key).inspect();
  t.equal(info.Name, `/workrs-${key.jobId}-e3`, 'named workrs-<job>-e<epoch>');
  t.match(info.Config.Labels, { 'workrs.job': key.jobId, 'workrs.epoch': '3', 'workrs.node': node.nodeId }, 'labels');
  t.equal(info.Config.Image, BASE_IMAGE);
  t.same(info.Config.Cmd, ['sleep', '30']);
  t.ok(info.Config.Env.includes('GREETING=hi'), 'env from the spec');
  t.equal(info.Config.WorkingDir, '/work');
  t.equal(info.HostConfig.Memory, 64 * 1024 * 1024, 'memory limit from memoryMB');
  t.equal(info.HostConfig.MemorySwap, 64 * 1024 * 1024, 'no swap beyond the limit');
  t.equal((info.HostConfig as { NanoCpus?: number }).NanoCpus, 0.5e9, 'cpus as NanoCpus');
  t.equal(info.HostConfig.NetworkMode, 'none');
  t.equal(info.HostConfig.Privileged, false);
  t.same(info.HostConfig.CapDrop, ['ALL']);
  t.same([...(info.HostConfig.CapAdd ?? [])].sort(), [...JOB_CAPABILITIES].sort());
  t.same(info.HostConfig.SecurityOpt, ['no-new-privileges']);
  t.ok(info.State.Running, 'running');
  // The kernel agrees with Docker's bookkeeping: the cgroup limit is in force.
  const limit = await execIn(docker, key, ['cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes']);
  t.equal(limit.trim(), String(64 * 1024 * 1024), 'memory cgroup limit inside the container');
  const capEff = /CapEff:\s*([0-9a-f]+)/.exec(await execIn(docker, key, ['cat', '/proc/1/status']))?.[1];
  t.equal(capEff, '00000000000000fb', 'effective capabilities: chown, dac_override, fowner, fsetid, kill, setgid, setuid only');
  t.same(sorted(await runtime.running()), [runKey(key)], 'running() sees it');
  t.same(exits.codes, [], 'no exit reported while it runs');
});

t.test('the exit code reaches onExit exactly once', async (t) => {
  // 137: killed by SIGKILL (a child shell: PID 1 of a container ignores signals it does not handle).
  for (const code of [0, 3, 137]) {
    const key = { jobId: `j-${uid()}`, epoch: 1 };
    const exits = new Exits();
    const command = code === 137 ? ['sh', '-c', 'sh -c \'kill -9 $$\'; exit $?'] : ['sh', '-c', `exit ${code}`];
    await runtime.start(assignment(key.jobId, 1, { command }), exits.onExit);
    t.teardown(() => runtime.stop(key));
    await waitFor(`exit ${code}`, () => (exits.codes.length > 0 ? true : undefined), 15_000, 20);
    await new Promise((r) => setTimeout(r, 300));
    t.same(exits.codes, [code], `exit ${code} reported once`);
    t.notOk((await runtime.running()).some((k) => k.jobId === key.jobId), 'an exited attempt is not running');
  }
});

function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address to test network isolation with');
}

t.test('a job has no network: it cannot reach a server that a bridged container reaches', async (t) => {
  const server = createServer((_req, res) => res.end('REACHED-THE-SERVER\n'));
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `${hostAddress()} ${(server.address() as AddressInfo).port}`;
  const probe = `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${url}; echo "nc=$?"; cat /proc/net/dev`;

  // The control: the same probe does reach the server from Docker's default bridge.
  const control = await docker.createContainer({ Image: BASE_IMAGE, Cmd: ['sh', '-c', probe], HostConfig: { NetworkMode: 'bridge' } });
  t.teardown(() => control.remove({ force: true }));
  await control.start();
  await control.wait();
  const controlLog = (await control.logs({ stdout: true, stderr: true })).toString();
  t.match(controlLog, /REACHED-THE-SERVER/, 'control: a bridged container reaches the server (so the probe works)');

  const key = { jobId: `j-${uid()}`, epoch: 1 };
  const exits = new Exits();
  await runtime.start(assignment(key.jobId, 1, { command: ['sh', '-c', probe] }), exits.onExit);
  t.teardown(() => runtime.stop(key));
  await waitFor('the probe job to exit', () => (exits.codes.length > 0 ? true : undefined), 15_000, 50);
  const log = (await runtime.logBytes(key)).toString();
  t.notMatch(log, /REACHED-THE-SERVER/, 'the job did not reach the server');
  t.match(log, /nc=1/, 'nc failed');
  t.match(log, /Network is unreachable/, 'no route at all');
  // /proc/net/dev: two header lines, then "  <name>: <counters>" per interface.
  const interfaces = log.split('\n').filter((l) => /^\s*[\w.-]+:\s*\d/.test(l)).map((l) => l.trim().split(':')[0]);
  t.same(interfaces, ['lo'], 'only the loopback interface exists');
});

t.test('input files are in /work before the job starts, whatever their names', async (t) => {
  const dir = node.stagingDir;
  const longName = `${'n'.repeat(140)}.txt`;
  await writeFile(join(dir, 'a'), 'alpha\n');
  await writeFile(join(dir, 'b'), Buffer.alloc(3000, 'b'));
  const files = new Map([
    ['data.txt', join(dir, 'a')],
    [longName, join(dir, 'b')],
  ]);
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  const exits = new Exits();
  await runtime.start(assignment(key.jobId, 1, { command: ['sh', '-c', `cat data.txt; wc -c < ${longName}; ls -l /work | grep -c txt`], files: ['data.txt', longName] }), exits.onExit, files);
  t.teardown(() => runtime.stop(key));
  await waitFor('the job to exit', () => (exits.codes.length > 0 ? true : undefined), 15_000, 50);
  t.same(exits.codes, [0]);
  t.equal((await runtime.logBytes(key)).toString(), 'alpha\n3000\n2\n', 'both files, with their contents, under their names');
});

t.test('logs: stdout and stderr in order, whole or followed until the exit', async (t) => {
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  const exits = new Exits();
  await runtime.start(assignment(key.jobId, 1, { command: ['sh', '-c', 'echo one; sleep 0.3; echo two >&2; sleep 0.3; echo trois; sleep 0.5'] }), exits.onExit);
  t.teardown(() => runtime.stop(key));
  const followed = await runtime.logs(key, { follow: true });
  let text = '';
  for await (const chunk of followed) text += chunk as string;
  t.equal(text, 'one\ntwo\ntrois\n', 'the followed stream ends when the job ends, stderr in place');
  await waitFor('the exit', () => (exits.codes.length > 0 ? true : undefined), 15_000, 20);
  t.equal((await runtime.logBytes(key)).toString(), 'one\ntwo\ntrois\n', 'logBytes: everything');
  let whole = '';
  for await (const chunk of await runtime.logs(key, { follow: false })) whole += chunk as string;
  t.equal(whole, 'one\ntwo\ntrois\n', 'logs without follow: everything so far');
});

t.test('running() is what Docker runs for this node, and a restarted workrs adopts it', async (t) => {
  const short = { jobId: `j-${uid()}`, epoch: 1 };
  const long = { jobId: `j-${uid()}`, epoch: 2 };
  const firstExits = new Exits();
  const before = new DockerRuntime({ docker, nodeId: node.nodeId, stagingDir: node.stagingDir, logger: testLogger });
  await before.start(assignment(short.jobId, 1, { command: ['sh', '-c', 'sleep 3; exit 7'] }), firstExits.onExit);
  await before.start(assignment(long.jobId, 2, { command: ['sleep', '60'] }), firstExits.onExit);
  t.teardown(async () => {
    await runtime.stop(short);
    await runtime.stop(long);
  });
  // Another node's container on the same engine is not ours.
  const other = await testRuntime(docker);
  t.teardown(other.cleanup);
  await other.runtime.start(assignment(`j-${uid()}`, 1, { command: ['sleep', '60'] }), () => {});

  // workrs "restarts": the old instance is gone (no more watchers), a new one knows nothing.
  before.detach();
  const after = new DockerRuntime({ docker, nodeId: node.nodeId, stagingDir: node.stagingDir, logger: testLogger });
  t.same(sorted(await after.running()), sorted([short, long]), 'a fresh instance lists both from Docker');
  const adoptedExits: Array<[string, number]> = [];
  const adopted = await after.adopt((key, code) => adoptedExits.push([runKey(key), code]));
  t.same(sorted(adopted), sorted([short, long]), 'adopt() returns the running attempts of this node only');
  await waitFor('the short job to exit', () => (adoptedExits.length > 0 ? true : undefined), 15_000, 50);
  t.same(adoptedExits, [[runKey(short), 7]], 'the adopted watcher reports the exit code');
  t.same(firstExits.codes, [], 'the detached instance reports nothing');
  t.same(sorted(await after.running()), sorted([long]), 'running() follows Docker');
  after.detach();
});

t.test('stop() of a stale epoch kills and removes only that attempt, without an exit report', async (t) => {
  const jobId = `j-${uid()}`;
  const stale = { jobId, epoch: 1 };
  const current = { jobId, epoch: 2 };
  const staleExits = new Exits();
  const currentExits = new Exits();
  await runtime.start(assignment(jobId, 1, { command: ['sleep', '60'] }), staleExits.onExit);
  await runtime.start(assignment(jobId, 2, { command: ['sleep', '60'] }), currentExits.onExit);
  t.teardown(() => runtime.stop(current));
  const mine = async () => sorted((await runtime.running()).filter((k) => k.jobId === jobId));
  t.same(await mine(), sorted([stale, current]), 'both epochs run');
  await runtime.stop(stale);
  t.same(await mine(), [runKey(current)], 'only the current epoch runs');
  const gone = await containerOf(docker, stale).inspect().then(() => 'exists', (err: { statusCode?: number }) => err.statusCode);
  t.equal(gone, 404, 'the stale container is removed');
  await runtime.stop(stale);
  t.pass('stopping it again is a no-op');
  await new Promise((r) => setTimeout(r, 300));
  t.same(staleExits.codes, [], 'a stopped attempt reports no exit');
  t.same(currentExits.codes, [], 'the current epoch is untouched');
  t.ok((await containerOf(docker, current).inspect()).State.Running);
});

t.test('start() of an attempt that runs already keeps the one container', async (t) => {
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  const a = assignment(key.jobId, 1, { command: ['sleep', '60'] });
  await runtime.start(a, () => {});
  t.teardown(() => runtime.stop(key));
  const id = (await containerOf(docker, key).inspect()).Id;
  await runtime.start(a, () => {});
  t.equal((await containerOf(docker, key).inspect()).Id, id, 'same container');
  const named = await docker.listContainers({ all: true, filters: { name: [containerName(key)] } });
  t.equal(named.length, 1, 'one container of that name');
});

t.test('freeze (self-fencing) pauses an attempt and refuses checkpoints; thaw lets it run on; a restarted workrs adopts it frozen', async (t) => {
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  await runtime.start(assignment(key.jobId, key.epoch, { command: ['sh', '-c', 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done'] }), () => {});
  t.teardown(() => runtime.stop(key));
  const count = async (): Promise<number> => (await runtime.logBytes(key)).toString().split('\n').filter((l) => /^\d+$/.test(l)).length;
  await waitFor('the job to count', async () => ((await count()) >= 3 ? true : undefined), 20_000, 50);
  await runtime.freeze(key);
  await runtime.freeze(key); // idempotent
  t.equal((await containerOf(docker, key).inspect()).State.Paused, true, 'the container is paused');
  t.same(sorted(await runtime.running()), [runKey(key)], 'and still listed as running');
  const frozenAt = await count();
  await new Promise((r) => setTimeout(r, 600));
  t.equal(await count(), frozenAt, 'nothing of the job executes while frozen');
  await t.rejects(runtime.checkpoint(key, 'cp1'), /not running|frozen/, 'no checkpoint of a frozen attempt');

  // A new process (workrs restarted while fenced) adopts it frozen, and thaws it later.
  runtime.detach();
  const again = new DockerRuntime({ docker, nodeId: node.nodeId, stagingDir: node.stagingDir, logger: testLogger });
  t.same(sorted(await again.adopt(() => {})), [runKey(key)], 'adopted');
  await again.thaw(key);
  t.equal((await containerOf(docker, key).inspect()).State.Paused, false, 'thawed by the new process');
  await waitFor('the count to go on', async () => ((await count()) > frozenAt + 2 ? true : undefined), 20_000, 50);
  const numbers = (await runtime.logBytes(key)).toString().split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
  t.ok(numbers.every((n, i) => n === i), 'the same process went on counting: no restart, nothing skipped');
  again.detach();
});
