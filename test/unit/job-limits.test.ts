// What one job may consume: the node's defaults and maxima for memory and CPUs, the
// container settings they become, the log kept as a stream and as a bounded tail, the
// result cap counted while outputs stream, and the reason a node-failed attempt
// leaves in the replicated record.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pino from 'pino';
import t from 'tap';
import { ConfigError, resolveNodeOptions } from '../../src/config/node-options.js';
import type { Command } from '../../src/state/commands.js';
import { resourcesAboveMaximum, validateJobSpec } from '../../src/state/spec.js';
import type { Assignment } from '../../src/state/views.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { DockerLogMerger, mergeDockerLog } from '../../src/worker/docker-logs.js';
import { createOptions, restoredRunConfig, runConfigOf } from '../../src/worker/docker-run-config.js';
import { FakeRuntime } from '../../src/worker/fake-runtime.js';
import { DEFAULT_JOB_LIMITS, logKeepBytes, type JobLimits } from '../../src/worker/job-limits.js';
import { openFileHead, writeLogTail } from '../../src/worker/log-tail.js';
import { OutputBudget, ResultTooLargeError } from '../../src/worker/result-archive.js';
import { EXIT_CANNOT_START } from '../../src/worker/unstartable.js';
import type { ReportSink } from '../../src/worker/report-sink.js';
import { Worker } from '../../src/worker/worker.js';
import { advance, advanceUntil } from './manual-time.js';
import { assign, join as joinNode, Log, submit } from './state-fixtures.js';

const MIB = 1024 * 1024;

function spec(partial: Record<string, unknown> = {}) {
  const parsed = validateJobSpec({ command: ['true'], ...partial });
  if (!parsed.ok) throw new Error(`bad test spec: ${JSON.stringify(parsed.errors)}`);
  return parsed.spec;
}

const LIMITS: JobLimits = { ...DEFAULT_JOB_LIMITS, defaultMemoryMB: 256, defaultCpus: 0.5, pidsLimit: 100, maxMemoryMB: 2048, maxCpus: 2, logFileMB: 2, logFiles: 4, maxResultBytes: 10 * MIB };

t.test('a spec above the node maximum is named field by field; one within it, or without limits, passes', async (t) => {
  const max = { memoryMB: 2048, cpus: 2 };
  t.same(resourcesAboveMaximum(spec(), max), [], 'no limits asked: the defaults apply, nothing to refuse');
  t.same(resourcesAboveMaximum(spec({ memoryMB: 2048, cpus: 2 }), max), [], 'exactly the maximum is allowed');
  const above = resourcesAboveMaximum(spec({ memoryMB: 4096, cpus: 2.5 }), max);
  t.same(above.map((e) => e.field), ['memoryMB', 'cpus']);
  t.match(above[0]?.message, /4096 MB, more than this node's maximum of 2048 MB per job \(--max-job-memory-mb\)/);
  t.match(above[1]?.message, /2\.5 CPUs, more than this node's maximum of 2 per job \(--max-job-cpus\)/);
});

t.test('a job without resources gets the node defaults; swap never beyond memory; pids and log rotation always', async (t) => {
  const run = runConfigOf(spec(), LIMITS);
  t.equal(run.memoryBytes, 256 * MIB, 'default memory');
  t.equal(run.nanoCpus, 0.5e9, 'default CPUs');
  const own = runConfigOf(spec({ memoryMB: 64, cpus: 1.5 }), LIMITS);
  t.equal(own.memoryBytes, 64 * MIB, "the spec's own memory wins");
  t.equal(own.nanoCpus, 1.5e9);
  const host = createOptions({ name: 'c', image: 'workrs/busybox:1', run, labels: {}, limits: LIMITS }).HostConfig;
  t.equal(host?.Memory, 256 * MIB);
  t.equal(host?.MemorySwap, host?.Memory, 'MemorySwap = Memory: no swap');
  t.equal(host?.NanoCpus, 0.5e9);
  t.equal(host?.PidsLimit, 100);
  t.same(host?.LogConfig, { Type: 'json-file', Config: { 'max-size': '2m', 'max-file': '4' } }, 'json-file, rotated');
  t.equal(logKeepBytes(LIMITS), 8 * MIB, 'results and bundles keep as much log as Docker keeps files');
});

t.test('a restored container gets the defaults a bundle lacks, and is refused above the maximum', async (t) => {
  const base = { baseImage: 'workrs/busybox:1', cmd: ['sh'], env: [], workingDir: '/work' };
  const filled = restoredRunConfig({ ...base, memoryBytes: null, nanoCpus: null }, LIMITS);
  t.equal(filled.memoryBytes, 256 * MIB);
  t.equal(filled.nanoCpus, 0.5e9);
  t.same(restoredRunConfig({ ...base, memoryBytes: 64 * MIB, nanoCpus: 1e9 }, LIMITS).memoryBytes, 64 * MIB, 'its own limit is kept');
  t.throws(() => restoredRunConfig({ ...base, memoryBytes: 4096 * MIB, nanoCpus: 1e9 }, LIMITS), /4096 MB of memory, more than this node's maximum of 2048 MB/);
  t.throws(() => restoredRunConfig({ ...base, memoryBytes: 64 * MIB, nanoCpus: 3e9 }, LIMITS), /3 CPUs, more than this node's maximum of 2/);
});

function frame(stream: number, payload: Buffer | string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

async function merged(chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), new DockerLogMerger(), new Writable({ write: (c: Buffer, _e, done) => (out.push(c), done()) }));
  return Buffer.concat(out);
}

t.test('the streamed merge of a Docker log equals the whole-buffer merge, however the bytes are cut', async (t) => {
  const log = Buffer.concat([frame(1, 'a\n'), frame(2, 'err\n'), frame(1, ''), frame(1, 'b'.repeat(3000)), frame(2, 'z\n')]);
  const whole = mergeDockerLog(log);
  t.same(await merged([log]), whole, 'one chunk');
  for (const size of [1, 3, 7, 8, 9, 1000]) {
    const pieces: Buffer[] = [];
    for (let at = 0; at < log.length; at += size) pieces.push(log.subarray(at, at + size));
    t.same(await merged(pieces), whole, `chunks of ${size} bytes`);
  }
  await t.rejects(merged([log.subarray(0, log.length - 1)]), /ends inside a frame/);
  await t.rejects(merged([log, Buffer.from([1, 0, 0])]), /partial frame header/);
  await t.rejects(merged([frame(7, 'x')]), /stream 7: not a multiplexed/);
});

t.test('a frame claiming gigabytes is passed on piece by piece, not gathered', async (t) => {
  const header = Buffer.alloc(8);
  header[0] = 1;
  header.writeUInt32BE(0xffffffff, 4);
  const merger = new DockerLogMerger();
  const pieces: number[] = [];
  merger.on('data', (c: Buffer) => pieces.push(c.length));
  merger.write(header);
  for (let i = 0; i < 8; i++) merger.write(Buffer.alloc(MIB));
  await new Promise((r) => setImmediate(r));
  t.equal(pieces.length, 8, 'each chunk of the payload came out as it went in');
  t.ok(pieces.every((n) => n === MIB));
  merger.destroy();
});

t.test('the log tail keeps the last bytes of its parts in order, on disk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-log-tail-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const prefix = join(dir, 'prefix');
  await writeFile(prefix, 'inherited-');
  const parts = [() => openFileHead(prefix), async () => Readable.from([Buffer.from('printed')]), async () => null];
  t.equal(await writeLogTail(parts, join(dir, 'all'), 1000), 17, 'under the bound: everything');
  t.equal(await readFile(join(dir, 'all'), 'utf8'), 'inherited-printed');
  t.equal(await writeLogTail(parts, join(dir, 'tail'), 10), 10, 'over it: the bound');
  t.equal(await readFile(join(dir, 'tail'), 'utf8'), 'd-printed'.padStart(10, 'e'), 'its last bytes');
  t.equal(await writeLogTail([() => openFileHead(prefix, 4)], join(dir, 'head'), 100), 4, 'a file head: up to an offset');
  t.equal(await readFile(join(dir, 'head'), 'utf8'), 'inhe');
  t.equal(await openFileHead(join(dir, 'missing')), null, 'a missing file is no part');
  await t.rejects(stat(join(dir, 'tail.whole')), { code: 'ENOENT' }, 'the whole copy is gone');
});

t.test('outputs are counted while they stream: past the cap the stream fails with the reason', async (t) => {
  const budget = new OutputBudget(10);
  const first: Buffer[] = [];
  await pipeline(Readable.from([Buffer.alloc(4), Buffer.alloc(4)]), budget.meter('/work/a'), new Writable({ write: (c: Buffer, _e, done) => (first.push(c), done()) }));
  t.equal(Buffer.concat(first).length, 8, 'under the cap, the bytes pass');
  const second = budget.meter('/work/b');
  await t.rejects(pipeline(Readable.from([Buffer.alloc(2), Buffer.alloc(1)]), second, new Writable({ write: (_c, _e, done) => done() })), ResultTooLargeError);
  t.ok(budget.exceeded instanceof ResultTooLargeError, 'the budget remembers it');
  t.match(budget.exceeded?.message, /exceed this node's limit of 10 bytes per result \(--max-result-mb\), at \/work\/b/);
  t.equal(new ResultTooLargeError(5 * MIB, '/work/out').message.includes('5 MiB'), true, 'a cap of whole MiB reads as MiB');
});

function scriptedProposer(): { proposer: ReportSink; sent: Command[] } {
  const sent: Command[] = [];
  const proposer = { send: async (cmd: Command) => (sent.push(cmd), { ok: true, value: null }) } as unknown as ReportSink;
  return { proposer, sent };
}

function assignment(jobId: string, partial: Record<string, unknown>): Assignment {
  return { jobId, epoch: 1, spec: spec({ env: { FAKE_SECONDS: '0.05' }, ...partial }), inputs: {}, policy: { mode: 'off', intervalSeconds: null, reason: 'test' }, fromCheckpoint: null };
}

t.test('a node never starts an attempt above its maximum: it fails at once with the reason', async (t) => {
  const clock = new ManualClock();
  const runtime = new FakeRuntime({ clock });
  let starts = 0;
  const start = runtime.start.bind(runtime);
  runtime.start = async (...args) => {
    starts++;
    return start(...args);
  };
  const { proposer, sent } = scriptedProposer();
  const worker = new Worker({
    nodeId: 'n1',
    runtime,
    proposer,
    assignments: () => [assignment('j-big', { memoryMB: 8192 }), assignment('j-ok', { memoryMB: 512 })],
    leaseValid: () => true,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    maxima: { memoryMB: 4096, cpus: 2 },
    logger: pino({ level: 'silent' }),
    clock,
  });
  worker.poke();
  const exits = await advanceUntil(clock, 'both exits', () => {
    const e = sent.filter((c): c is Extract<Command, { type: 'jobExited' }> => c.type === 'jobExited');
    return e.length === 2 ? e : undefined;
  });
  const big = exits.find((e) => e.jobId === 'j-big');
  t.equal(big?.exitCode, EXIT_CANNOT_START);
  t.match(big?.failure, /memoryMB asks for 8192 MB, more than this node's maximum of 4096 MB/);
  t.equal(starts, 1, 'only the job within the maximum started');
  t.notOk(exits.find((e) => e.jobId === 'j-ok')?.failure, 'a normal exit carries no failure');
  worker.poke();
  await advance(clock, 100);
  t.equal(sent.filter((c) => c.type === 'jobExited').length, 2, 'the refused attempt is not tried again');
});

t.test("a result over the cap fails the attempt: the publisher's reason goes into jobExited", async (t) => {
  const { proposer, sent } = scriptedProposer();
  const clock = new ManualClock();
  const worker = new Worker({
    nodeId: 'n1',
    runtime: new FakeRuntime({ clock }),
    proposer,
    assignments: () => [assignment('j-out', {})],
    leaseValid: () => true,
    prepareInputs: async () => new Map(),
    releaseInputs: async () => {},
    publishResult: async () => ({ blob: 'blob-log-only', failure: 'the outputs exceed the cap' }),
    logger: pino({ level: 'silent' }),
    clock,
  });
  worker.poke();
  const exit = await advanceUntil(clock, 'the exit', () => sent.find((c): c is Extract<Command, { type: 'jobExited' }> => c.type === 'jobExited'));
  t.same(exit, { type: 'jobExited', jobId: 'j-out', epoch: 1, node: 'n1', exitCode: 0, resultBlob: 'blob-log-only', failure: 'the outputs exceed the cap' });
});

t.test('the state machine fails a job its node failed, exit code 0 or not, and keeps the reason on the attempt', async (t) => {
  const log = new Log();
  log.ok(joinNode('n1'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  t.same(log.ok({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0, resultBlob: 'r1', failure: 'outputs over the cap' }), { jobId: 'j1', state: 'failed', exitCode: 0 });
  const view = log.state.jobView('j1');
  t.equal(view?.state, 'failed');
  t.equal(view?.attempts[0]?.failure, 'outputs over the cap', 'GET /v1/jobs/:id shows why');
  log.ok(submit('j2'));
  log.ok(assign('j2', 'n1', 1));
  log.ok({ type: 'jobExited', jobId: 'j2', epoch: 1, node: 'n1', exitCode: 0 });
  t.equal(log.state.jobView('j2')?.state, 'succeeded', 'no failure, exit 0: succeeded');
  t.equal(log.state.jobView('j2')?.attempts[0]?.failure, null);
  const replay = new Log();
  for (const e of log.entries) replay.state.applyBytes(e.index, e.data);
  t.same(replay.state.jobView('j1'), view, 'replayed from the log: the same record');
  t.match(log.apply({ type: 'jobExited', jobId: 'j3', epoch: 1, node: 'n1', exitCode: 0, failure: 'x'.repeat(5000) }), { ok: false, code: 'INVALID_COMMAND' }, 'a reason is bounded like every text of the log');
});

t.test('workrs start: job limits from flags, their defaults, and what is refused', async (t) => {
  const base = { id: 'n1', data: '/tmp/x' };
  const d = resolveNodeOptions(base).jobLimits;
  t.ok(d.maxMemoryMB >= 6, `the maximum defaults to this box's memory (${d.maxMemoryMB} MB)`);
  t.equal(d.defaultMemoryMB, Math.min(1024, d.maxMemoryMB));
  t.equal(d.defaultCpus, 1);
  t.equal(d.pidsLimit, 4096);
  t.equal(d.logFileMB, 10);
  t.equal(d.logFiles, 3);
  t.equal(d.maxResultBytes, 1024 * MIB);
  const given = resolveNodeOptions({ ...base, jobMemoryMb: '128', jobCpus: '0.5', jobPids: '64', maxJobMemoryMb: '512', maxJobCpus: '1.5', jobLogFileMb: '1', jobLogFiles: '2', maxResultMb: '5' }).jobLimits;
  t.same(given, { defaultMemoryMB: 128, defaultCpus: 0.5, pidsLimit: 64, maxMemoryMB: 512, maxCpus: 1.5, logFileMB: 1, logFiles: 2, maxResultBytes: 5 * MIB });
  t.equal(resolveNodeOptions({ ...base, maxJobMemoryMb: '512' }).jobLimits.defaultMemoryMB, 512, 'a maximum under 1 GiB lowers the default with it');
  t.throws(() => resolveNodeOptions({ ...base, jobMemoryMb: '1024', maxJobMemoryMb: '512' }), ConfigError, 'a default above the maximum');
  t.throws(() => resolveNodeOptions({ ...base, jobCpus: '4', maxJobCpus: '2' }), /jobCpus \(4\) must not exceed maxJobCpus \(2\)/);
  t.throws(() => resolveNodeOptions({ ...base, jobMemoryMb: '2' }), /jobMemoryMb: expected an integer from 6/);
  t.throws(() => resolveNodeOptions({ ...base, jobCpus: 'lots' }), /jobCpus: expected a number/);
  t.throws(() => resolveNodeOptions({ ...base, maxResultMb: '0' }), /maxResultMb/);
  t.throws(() => resolveNodeOptions({ ...base, jobLogFiles: '-1' }), /jobLogFiles/);
  t.equal(resolveNodeOptions(base, { maxResultMb: 7 }).jobLimits.maxResultBytes, 7 * MIB, 'config file keys as the flags, camelCase');
});
