// The checkpoint loop's bookkeeping (src/worker/checkpointer.ts) with a fake runtime:
// each checkpoint reports how long its attempt ran (ranMs, freezes excluded) and the
// count goes on when the policy turns checkpoints off and on again.
import t from 'tap';
import pino from 'pino';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlobStore } from '../../src/blobs/index.js';
import type { Proposer } from '../../src/node/proposer.js';
import type { Command } from '../../src/state/commands.js';
import type { Assignment } from '../../src/state/views.js';
import { Checkpointer } from '../../src/worker/checkpointer.js';
import type { CheckpointResult } from '../../src/worker/docker-runtime.js';
import { spec } from './state-fixtures.js';

const FREEZE_MS = 150;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function assignment(policy: Assignment['policy']): Assignment {
  return { jobId: 'j1', epoch: 1, spec: spec({ estimateSeconds: 100 }), inputs: {}, policy, fromCheckpoint: null };
}

type Committed = Extract<Command, { type: 'checkpointCommitted' }>;

/** A checkpointer over a scripted runtime call; what it proposes lands in `sent`. */
function makeCheckpointer(checkpoint: (key: unknown, name: string) => Promise<CheckpointResult>, sent: Committed[]): Checkpointer {
  return new Checkpointer({
    nodeId: 'n1',
    runtime: { checkpoint },
    blobs: { putFolder: async () => ({ id: `b${sent.length}`, bytes: 10, newBytes: 10 }) } as unknown as BlobStore,
    replicate: async () => ['n2'],
    replicas: 2,
    proposer: { send: async (cmd: Command) => (sent.push(cmd as Committed), { ok: true, value: {} }) } as unknown as Proposer,
    logger: pino({ level: 'silent' }),
  });
}

t.test('ranMs: run time up to each freeze, earlier freezes excluded; seq survives a pause of the policy', async (t) => {
  const sent: Committed[] = [];
  /** performance.now() when each capture began, and how long it froze the job. */
  const calls: Array<{ at: number; frozenMs: number }> = [];
  const dir = await mkdtemp(join(tmpdir(), 'workrs-cp-'));
  const checkpointer = makeCheckpointer(async (_key, name) => {
    const at = performance.now();
    await sleep(FREEZE_MS);
    const frozenMs = performance.now() - at;
    calls.push({ at, frozenMs });
    return { bundleDir: join(dir, name), name, durationMs: frozenMs + 5, frozenMs, bytes: 10, criuBytes: 5, imageBytes: 5, logOffset: 0 };
  }, sent);
  t.teardown(() => checkpointer.untrackAll());
  const started = performance.now();
  checkpointer.track(assignment({ mode: 'auto', intervalSeconds: 0.5, reason: 'test' }));
  while (sent.length < 2) await sleep(20);
  checkpointer.track(assignment({ mode: 'off', intervalSeconds: null, reason: 'test' }));
  const elapsedAtOff = performance.now() - started;
  await sleep(600);
  t.equal(sent.length, 2, 'no checkpoint while the policy is off');
  checkpointer.track(assignment({ mode: 'auto', intervalSeconds: 0.5, reason: 'test' }));
  while (sent.length < 3) await sleep(20);
  const [a, b, c] = sent;
  t.same([a?.seq, b?.seq, c?.seq], [1, 2, 3], 'the count goes on after checkpoints were off');
  // Expected: from track() to the capture, less the earlier captures' freezes (rounded to ms).
  const expected = (i: number): number => calls[i]!.at - started - calls.slice(0, i).reduce((x, k) => x + k.frozenMs, 0);
  for (const [i, cmd] of [a, b, c].entries()) {
    t.ok(Math.abs(cmd!.ranMs! - expected(i)) < 25, `checkpoint ${i + 1}: ranMs ${cmd!.ranMs} ≈ ${expected(i).toFixed(0)} (its capture's start less ${i} earlier freeze${i === 1 ? '' : 's'})`);
  }
  t.ok(c!.ranMs! > elapsedAtOff, `the clock kept running while checkpoints were off (${c!.ranMs} ms)`);
  checkpointer.untrack({ jobId: 'j1', epoch: 1 });
  checkpointer.track(assignment({ mode: 'auto', intervalSeconds: 0.5, reason: 'test' }));
  while (sent.length < 4) await sleep(20);
  t.equal(sent[3]?.seq, 1, 'an attempt that ended here and is tracked again starts over (a new run)');
  t.ok(sent[3]!.ranMs! < calls[3]!.at - started - 1000, `with a new clock (${sent[3]!.ranMs} ms)`);
});

t.test('ranMs leaves out the time the attempt was frozen by self-fencing', async (t) => {
  const sent: Committed[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'workrs-cp-'));
  const checkpointer = makeCheckpointer(async (_key, name) => ({ bundleDir: join(dir, name), name, durationMs: 1, frozenMs: 0, bytes: 10, criuBytes: 5, imageBytes: 5, logOffset: 0 }), sent);
  t.teardown(() => checkpointer.untrackAll());
  const started = performance.now();
  checkpointer.track(assignment({ mode: 'auto', intervalSeconds: 0.6, reason: 'test' }));
  checkpointer.addFrozen({ jobId: 'j1', epoch: 1 }, 400);
  while (sent.length < 1) await sleep(20);
  const wall = performance.now() - started;
  t.ok(sent[0]!.ranMs! < wall - 350, `ranMs ${sent[0]!.ranMs} ms is the wall time (${wall.toFixed(0)} ms) less the 400 ms frozen`);
});
