// validateJobSpec: docs/api.md's spec fields, each bad field reported by name with a
// message a user can act on; unknown fields rejected; a good spec normalized.
import t, { type Test } from 'tap';
import { DEFAULT_IMAGE, normalizeOutputPath, SPEC_LIMITS, validateJobSpec } from '../../src/state/spec.js';
import type { FieldError } from '../../src/state/parse.js';

function errorsOf(input: unknown): FieldError[] {
  const r = validateJobSpec(input);
  if (r.ok) throw new Error(`expected ${JSON.stringify(input).slice(0, 200)} to be rejected`);
  return r.errors;
}

/** The spec is rejected with exactly one error, on `field`, whose message matches. */
function rejects(t: Test, input: Record<string, unknown>, field: string, message: RegExp): void {
  const errors = errorsOf({ command: ['true'], ...input });
  t.same(errors.map((e) => e.field), [field], `only ${field} is reported for ${JSON.stringify(input).slice(0, 120)}`);
  t.match(errors[0]?.message ?? '', message, `the message for ${field} says why`);
}

t.test('a minimal spec is normalized with defaults: busybox image, auto checkpoints, empty env/files/outputs, nulls', async (t) => {
  const r = validateJobSpec({ command: ['sh', 'job.sh'] });
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(r.spec, {
    image: DEFAULT_IMAGE,
    command: ['sh', 'job.sh'],
    env: {},
    files: [],
    outputs: [],
    estimateSeconds: null,
    checkpoint: { mode: 'auto', intervalSeconds: null },
    cpus: null,
    memoryMB: null,
    timeoutSeconds: null,
    name: null,
    labels: {},
  });
  t.equal(DEFAULT_IMAGE, 'workrs/busybox:1');
});

t.test('a full spec is normalized: env keys sorted, outputs made absolute under /work, nulls accepted as absent', async (t) => {
  const r = validateJobSpec({
    image: 'python:3.12-slim',
    command: ['python', 'train.py', '--epochs', '3'],
    env: { Z: '1', A: 'x y', _U: '' },
    files: ['train.py', 'data.csv'],
    outputs: ['model.bin', './out/../out/log.txt', '/work/results', '/work'],
    estimateSeconds: 90,
    checkpoint: { mode: 'interval', intervalSeconds: 10 },
    cpus: 0.5,
    memoryMB: 256,
    timeoutSeconds: 3600,
  });
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(Object.keys(r.spec.env), ['A', 'Z', '_U'], 'env keys in sorted order');
  t.same(r.spec.outputs, ['/work/model.bin', '/work/out/log.txt', '/work/results', '/work']);
  t.same(r.spec.checkpoint, { mode: 'interval', intervalSeconds: 10 });
  t.equal(r.spec.cpus, 0.5);
  const nulls = validateJobSpec({ command: ['true'], image: null, env: null, cpus: null, checkpoint: null });
  t.ok(nulls.ok, 'explicit nulls mean "not given"');
});

t.test('unknown fields are rejected, not ignored, at the top level and inside checkpoint', async (t) => {
  rejects(t, { cmd: ['x'] }, 'cmd', /unknown field.*command/);
  rejects(t, { checkpoint: { mode: 'auto', every: 5 } }, 'checkpoint.every', /unknown field/);
});

t.test('every bad field is reported at once, each by name', async (t) => {
  const errors = errorsOf({ command: 'echo hi', env: [], cpus: -1, memoryMB: 1.5, timeoutSeconds: 0, extra: 1 });
  t.same(errors.map((e) => e.field).sort(), ['command', 'cpus', 'env', 'extra', 'memoryMB', 'timeoutSeconds']);
});

t.test('a spec that is not an object is rejected', async (t) => {
  for (const input of [null, 'x', 3, ['command']]) t.same(errorsOf(input).map((e) => e.field), ['spec']);
});

t.test('image: a reference, at most 255 bytes, no spaces', async (t) => {
  rejects(t, { image: 5 }, 'image', /string/);
  rejects(t, { image: 'has space' }, 'image', /not an image reference/);
  rejects(t, { image: '-x' }, 'image', /not an image reference/);
  rejects(t, { image: 'a'.repeat(256) }, 'image', /more than 255/);
  t.ok(validateJobSpec({ command: ['true'], image: 'registry.local:5000/team/app@sha256:abc' }).ok);
});

t.test('command: required, a non-empty array of strings, bounded', async (t) => {
  t.same(errorsOf({}).map((e) => e.field), ['command'], 'missing command');
  rejects(t, { command: [] }, 'command', /must not be empty/);
  rejects(t, { command: 'sh job.sh' }, 'command', /array of strings/);
  rejects(t, { command: ['sh', 3] }, 'command[1]', /string/);
  rejects(t, { command: [''] }, 'command[0]', /program name/);
  rejects(t, { command: ['sh', 'a\0b'] }, 'command[1]', /NUL/);
  rejects(t, { command: Array.from({ length: SPEC_LIMITS.commandArgs + 1 }, () => 'x') }, 'command', /more than 256/);
  rejects(t, { command: ['echo', 'x'.repeat(SPEC_LIMITS.stringBytes + 1)] }, 'command[1]', /more than 65536/);
  t.ok(validateJobSpec({ command: ['echo', 'é'.repeat(SPEC_LIMITS.stringBytes / 2)] }).ok, 'the bound is in UTF-8 bytes: 32768 × "é" is exactly 64 KiB');
  rejects(t, { command: ['echo', ...Array.from({ length: 5 }, () => 'x'.repeat(60_000))] }, 'command', /together are .* more than 262144/);
});

t.test('env: an object of string values with variable-name keys, bounded', async (t) => {
  rejects(t, { env: ['A=1'] }, 'env', /object of strings/);
  rejects(t, { env: { N: 10 } }, 'env.N', /string/);
  rejects(t, { env: { '1X': 'a' } }, 'env.1X', /not a variable name/);
  rejects(t, { env: { 'A-B': 'a' } }, 'env.A-B', /not a variable name/);
  rejects(t, { env: { A: 'x\0' } }, 'env.A', /NUL/);
  rejects(t, { env: JSON.parse('{"__proto__": "x"}') as unknown }, 'env.__proto__', /reserved/);
  rejects(t, { env: Object.fromEntries(Array.from({ length: SPEC_LIMITS.envKeys + 1 }, (_, i) => [`K${i}`, 'v'])) }, 'env', /more than 256/);
});

t.test('files: distinct plain file names placed in /work', async (t) => {
  rejects(t, { files: 'a.sh' }, 'files', /array of file names/);
  rejects(t, { files: ['dir/a.sh'] }, 'files[0]', /not a file name/);
  rejects(t, { files: ['..'] }, 'files[0]', /not a file name/);
  rejects(t, { files: [''] }, 'files[0]', /not a file name/);
  rejects(t, { files: ['a', 'a'] }, 'files[1]', /listed twice/);
  rejects(t, { files: ['__proto__'] }, 'files[0]', /reserved/);
});

t.test('outputs: relative to /work or absolute under it; never outside', async (t) => {
  rejects(t, { outputs: '/work/x' }, 'outputs', /array of paths/);
  rejects(t, { outputs: ['/etc/passwd'] }, 'outputs[0]', /not under \/work/);
  rejects(t, { outputs: ['../etc'] }, 'outputs[0]', /leaves \/work/);
  rejects(t, { outputs: ['a/../../x'] }, 'outputs[0]', /leaves \/work/);
  rejects(t, { outputs: ['/work/../etc'] }, 'outputs[0]', /not under \/work/);
  rejects(t, { outputs: ['/workspace/x'] }, 'outputs[0]', /not under \/work/);
  rejects(t, { outputs: [''] }, 'outputs[0]', /empty/);
  rejects(t, { outputs: ['x', '/work/x'] }, 'outputs[1]', /listed already/);
  t.same(normalizeOutputPath('/../work//a/./b/'), { ok: true, path: '/work/a/b' }, '".." at the root stays at the root');
});

t.test('estimateSeconds and timeoutSeconds: numbers greater than 0, at most 366 days', async (t) => {
  rejects(t, { estimateSeconds: 0 }, 'estimateSeconds', /greater than 0/);
  rejects(t, { estimateSeconds: -5 }, 'estimateSeconds', /greater than 0/);
  rejects(t, { estimateSeconds: '90s' }, 'estimateSeconds', /number of seconds/);
  rejects(t, { estimateSeconds: Number.POSITIVE_INFINITY }, 'estimateSeconds', /number of seconds/);
  rejects(t, { timeoutSeconds: 400 * 86400 }, 'timeoutSeconds', /at most/);
  t.ok(validateJobSpec({ command: ['true'], estimateSeconds: 0.5 }).ok, 'fractions are fine');
});

t.test('checkpoint: mode auto|off|interval; intervalSeconds ≥ 1 required for interval and refused otherwise', async (t) => {
  rejects(t, { checkpoint: 'auto' }, 'checkpoint', /must be an object/);
  rejects(t, { checkpoint: {} }, 'checkpoint.mode', /one of "auto", "off", "interval"/);
  rejects(t, { checkpoint: { mode: 'sometimes' } }, 'checkpoint.mode', /one of/);
  rejects(t, { checkpoint: { mode: 'interval' } }, 'checkpoint.intervalSeconds', /required when mode is "interval"/);
  rejects(t, { checkpoint: { mode: 'interval', intervalSeconds: 0.5 } }, 'checkpoint.intervalSeconds', /at least 1/);
  rejects(t, { checkpoint: { mode: 'off', intervalSeconds: 10 } }, 'checkpoint.intervalSeconds', /only allowed when mode is "interval"/);
  const off = validateJobSpec({ command: ['true'], checkpoint: { mode: 'off' } });
  t.same(off.ok && off.spec.checkpoint, { mode: 'off', intervalSeconds: null });
});

t.test('cpus: a number in (0, 1024]; memoryMB: a whole number from 6', async (t) => {
  rejects(t, { cpus: 0 }, 'cpus', /greater than 0/);
  rejects(t, { cpus: 2000 }, 'cpus', /at most 1024/);
  rejects(t, { cpus: '2' }, 'cpus', /number of CPUs/);
  rejects(t, { memoryMB: 4 }, 'memoryMB', /from 6/);
  rejects(t, { memoryMB: 100.5 }, 'memoryMB', /whole number/);
});

t.test('validating a normalized spec again gives it back unchanged', async (t) => {
  const first = validateJobSpec({ command: ['a'], env: { B: '1', A: '2' }, outputs: ['x/../y'], checkpoint: { mode: 'interval', intervalSeconds: 5 } });
  t.ok(first.ok);
  if (!first.ok) return;
  const second = validateJobSpec(first.spec);
  t.same(second, first);
});
