// The Python runtime image workrs/python:3 (scripts/build-python-image.sh, built by
// `make setup` and `make images`): a Python job runs in it through DockerRuntime the way
// `workrs submit --image workrs/python:3 --file job.py -- python3 job.py` runs it, and
// CRIU checkpoints and restores a Python process in it. Real Docker + CRIU + the image:
// these tests FAIL without them, with the command that builds what is missing.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type Docker from 'dockerode';
import { waitFor } from '../helpers/wait.js';
import { mainEngine } from './engines.js';
import { assignment, Exits, numbersIn, testRuntime, uid } from './fixtures.js';

const PYTHON_IMAGE = 'workrs/python:3';
const BUILD_SCRIPT = fileURLToPath(new URL('../../scripts/build-python-image.sh', import.meta.url));

const engine = await mainEngine();
const { docker } = engine;
const node = await testRuntime(docker);
t.teardown(node.cleanup);
const { runtime } = node;

/** The image, or an error that says how to build it: a missing image fails, never skips. */
async function pythonImage(): Promise<Docker.ImageInspectInfo> {
  try {
    return await docker.getImage(PYTHON_IMAGE).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) {
      throw new Error(`${PYTHON_IMAGE} is missing from the engine: run make images (make setup builds it too)`);
    }
    throw err;
  }
}

/** Writes `source` as job.py in the staging folder: the input file map start() takes. */
async function jobFile(name: string, source: string): Promise<Map<string, string>> {
  const path = join(node.stagingDir, `${name}-${uid()}.py`);
  await writeFile(path, source);
  return new Map([['job.py', path]]);
}

t.test(`${PYTHON_IMAGE} is built from this recipe and set up for jobs`, async (t) => {
  const info = await pythonImage();
  // The build script labels the image with its own hash; another hash means the image
  // was built by an older recipe and `make images` would rebuild it.
  const recipe = createHash('sha256').update(await readFile(BUILD_SCRIPT)).digest('hex').slice(0, 16);
  t.equal(info.Config.Labels?.['workrs.recipe'], recipe, 'labelled with the recipe of scripts/build-python-image.sh (else: run make images)');
  t.equal(info.Config.WorkingDir, '/work');
  t.same(info.Config.Cmd, ['python3']);
  for (const env of ['LANG=C.UTF-8', 'PYTHONUNBUFFERED=1']) t.ok(info.Config.Env?.includes(env), env);
  t.ok(info.Size < 150e6, `small: ${(info.Size / 1e6).toFixed(0)} MB`);
});

t.test('a Python script given as an input file runs with the standard library, writes an output and exits with its code', async (t) => {
  await pythonImage();
  const files = await jobFile('stdlib', [
    'import decimal, json, multiprocessing, sqlite3, sys',
    'db = sqlite3.connect(":memory:")',
    'db.execute("create table t (x)")',
    'db.executemany("insert into t values (?)", [(i,) for i in range(10)])',
    'total = db.execute("select sum(x) from t").fetchone()[0]',
    'print(json.dumps({"python": sys.version_info[0], "sum": total, "third": str(decimal.Decimal(1) / 3)[:5]}))',
    'with open("out.txt", "w") as f: f.write("written\\n")',
    'print(open("out.txt").read(), end="")',
    'sys.exit(3)',
    '',
  ].join('\n'));
  const key = { jobId: `j-${uid()}`, epoch: 1 };
  const exits = new Exits();
  await runtime.start(assignment(key.jobId, 1, { image: PYTHON_IMAGE, command: ['python3', 'job.py'], files: ['job.py'] }), exits.onExit, files);
  t.teardown(() => runtime.stop(key));
  await waitFor('the Python job to exit', () => (exits.codes.length > 0 ? true : undefined), 30_000, 50);
  t.same(exits.codes, [3], "the script's exit code");
  t.equal((await runtime.logBytes(key)).toString(), '{"python": 3, "sum": 45, "third": "0.333"}\nwritten\n', 'its output, in /work');
});

// Progress lives only in the interpreter's memory: the counter, a running total, and
// 4 MB of random bytes whose hash is printed at the start and again at the end. A
// restart from scratch would print START again and a new hash.
const COUNT_TO = 100;
const EXIT_CODE = 5;
const COUNTING_PY = [
  'import hashlib, os, sys, time',
  'blob = bytearray(os.urandom(4 << 20))',
  'print("START", hashlib.sha256(blob).hexdigest())',
  'n = total = 0',
  `while n < ${COUNT_TO}:`,
  '    print(n)',
  '    total += n',
  '    n += 1',
  '    time.sleep(0.1)',
  'print("DONE", total, hashlib.sha256(blob).hexdigest())',
  `sys.exit(${EXIT_CODE})`,
  '',
].join('\n');

t.test('a Python process is checkpointed, killed and restored in a new container: its count and memory continue, its exit is reported', async (t) => {
  await pythonImage();
  const jobId = `j-${uid()}`;
  const first = { jobId, epoch: 1 };
  const second = { jobId, epoch: 2 };
  const spec = { image: PYTHON_IMAGE, command: ['python3', 'job.py'], files: ['job.py'], memoryMB: 128, cpus: 1 };
  const firstExits = new Exits();
  await runtime.start(assignment(jobId, 1, spec), firstExits.onExit, await jobFile('counting', COUNTING_PY));
  t.teardown(() => runtime.stop(first));
  const counted = async (key: typeof first, n: number) => (numbersIn((await runtime.logBytes(key)).toString()).length >= n ? true : undefined);
  await waitFor('the Python job to count to 15', () => counted(first, 15), 30_000, 50);

  const cp = await runtime.checkpoint(first, 'cp1');
  t.comment(`checkpoint: durationMs=${cp.durationMs.toFixed(0)} frozenMs=${cp.frozenMs.toFixed(0)} bytes=${cp.bytes} (criu ${cp.criuBytes}, image tar ${cp.imageBytes})`);
  // The ~100 MB Python image is not in the bundle, only what the job changed (slim-image.ts).
  t.ok(cp.imageBytes < 1024 * 1024, `the bundle's image tar leaves out the Python image's layers (${cp.imageBytes} bytes)`);
  const atCheckpoint = (await runtime.logBytes(first)).subarray(0, cp.logOffset).toString();
  const start = /^START ([0-9a-f]{64})\n/.exec(atCheckpoint);
  t.ok(start, 'the log at the checkpoint begins with START and the hash of the memory block');
  const lastCounted = numbersIn(atCheckpoint).at(-1) ?? -1;
  t.ok(lastCounted >= 14, `it had counted to ${lastCounted} at the checkpoint`);
  t.same(await runtime.running(), [first], 'it kept running after the checkpoint');

  // It counts on after the checkpoint; then its box "dies": the container is killed.
  await waitFor('the original to count past the checkpoint', () => counted(first, lastCounted + 6), 30_000, 50);
  await runtime.stop(first);
  t.same(firstExits.codes, [], 'the killed original reports no exit');

  const secondExits = new Exits();
  const restored = await runtime.restore(assignment(jobId, 2, spec), cp.bundleDir, secondExits.onExit);
  t.teardown(() => runtime.stop(second));
  if (!restored.restored) throw new Error(`restore failed: ${restored.reason}`);
  t.comment(`restore: durationMs=${restored.durationMs.toFixed(0)}`);
  t.same(await runtime.running(), [second], 'the restored attempt runs in a new container');

  await waitFor('the restored job to exit', () => (secondExits.codes.length > 0 ? true : undefined), 60_000, 50);
  t.same(secondExits.codes, [EXIT_CODE], "the restored job's exit code is reported once");
  const log = (await runtime.logBytes(second)).toString();
  t.ok(log.startsWith(atCheckpoint), "the restored attempt's log begins with the log at the checkpoint");
  const since = log.slice(atCheckpoint.length);
  t.notOk(since.includes('START'), 'the job did not start over');
  t.equal(numbersIn(since)[0], lastCounted + 1, `the count continued after ${lastCounted}`);
  const total = (COUNT_TO * (COUNT_TO - 1)) / 2;
  const numbers = Array.from({ length: COUNT_TO }, (_, i) => `${i}\n`).join('');
  t.equal(log, `START ${start?.[1]}\n${numbers}DONE ${total} ${start?.[1]}\n`, 'START once, every count once, the total and the memory block intact');
});
