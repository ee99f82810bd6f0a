// Issue 16: a checkpoint captures memory and files at one instant, checkpoint after
// checkpoint. The job counts in a shell variable and writes each count to a file, and
// before every step it checks that the file says what its memory says: a capture that
// took the files a moment before or after the memory brings it back with the two
// apart, and it stops with MISMATCH. 20 cycles of checkpoint → kill → restore into a
// new container, each from the attempt the previous cycle restored. Real Docker +
// CRIU: FAILS without them.
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { mainEngine } from './engines.js';
import { assignment, Exits, testRuntime, uid } from './fixtures.js';

const CYCLES = 20;
// No sleep between steps: the count moves thousands of times a second, so files a
// millisecond off the memory would show. Every 2,000 steps it says how far it got.
const JOB = [
  'n=0; echo 0 > /tmp/count; echo START',
  'while true; do',
  '  read f < /tmp/count',
  '  if [ "$f" != "$n" ]; then echo "MISMATCH memory=$n file=$f"; exit 3; fi',
  '  n=$((n+1)); echo "$n" > /tmp/count',
  '  [ $((n % 2000)) -eq 0 ] && echo "AT $n"',
  'done',
].join('\n');

const counts = (log: string): number[] => [...log.matchAll(/^AT (\d+)$/gm)].map((m) => Number(m[1]));

t.test(`memory and files agree after ${CYCLES} checkpoint/restore cycles`, async (t) => {
  const { docker } = await mainEngine();
  const node = await testRuntime(docker);
  t.teardown(node.cleanup);
  const { runtime } = node;
  const jobId = `j-${uid()}`;
  const spec = { command: ['sh', '-c', JOB], memoryMB: 64, cpus: 0.5 };
  const exits = new Exits();
  await runtime.start(assignment(jobId, 1, spec), exits.onExit);
  const frozen: number[] = [];
  let last = 0;
  for (let epoch = 1; epoch <= CYCLES; epoch++) {
    const key = { jobId, epoch };
    // It runs and counts on from where the last checkpoint left it.
    await waitFor(`epoch ${epoch} to count past ${last}`, async () => ((counts((await runtime.logBytes(key)).toString()).at(-1) ?? 0) > last ? true : undefined), 30_000, 50);
    const cp = await runtime.checkpoint(key, `c${epoch}`);
    frozen.push(cp.frozenMs);
    if (cp.capture !== 'hook') t.fail(`cycle ${epoch} was captured by ${cp.capture ?? 'an unknown way'}, not by the CRIU hook`);
    await runtime.stop(key);
    const next = { jobId, epoch: epoch + 1 };
    const restored = await runtime.restore(assignment(jobId, epoch + 1, spec), cp.bundleDir, exits.onExit);
    if (!restored.restored) throw new Error(`cycle ${epoch}: restore failed: ${restored.reason}`);
    await restored.cleanedUp;
    last = counts((await runtime.logBytes(next)).toString()).at(-1) ?? 0;
  }
  const finalKey = { jobId, epoch: CYCLES + 1 };
  await waitFor('the last attempt to count on', async () => ((counts((await runtime.logBytes(finalKey)).toString()).at(-1) ?? 0) > last ? true : undefined), 30_000, 50);
  const log = (await runtime.logBytes(finalKey)).toString();
  t.same(exits.codes, [], 'no attempt exited (a MISMATCH exits with 3)');
  t.notMatch(log, /MISMATCH/, 'memory and file agreed at every step of every attempt');
  t.equal((log.match(/^START$/gm) ?? []).length, 1, 'the job started once: every later attempt resumed');
  const seen = counts(log);
  t.ok(seen.every((v, i) => i === 0 || v === (seen[i - 1] ?? 0) + 2000), 'its progress lines run on without a gap or a repeat across the restores');
  t.comment(`frozen ms per checkpoint: ${frozen.map((ms) => ms.toFixed(0)).join(' ')}; counted to ${seen.at(-1) ?? 0}`);
  await runtime.stop(finalKey);
});
