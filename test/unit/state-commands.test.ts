// decodeEnvelope: the boundary between a log entry's bytes and a typed command.
import t from 'tap';
import { Packr } from 'msgpackr';
import { type Command, decodeEnvelope, decodeEnvelopeBytes, encodeEnvelope, type Envelope, InvalidCommandError, UnknownCommandError } from '../../src/state/commands.js';
import { join, spec, submit, T0 } from './state-fixtures.js';

const env = (cmd: Command, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ v: 1, clientId: 'gw-n1', requestId: 1, at: T0, cmd, ...extra });

/** The error decodeEnvelope throws for `value`, which must be of class `kind`. */
function thrown<E extends Error>(kind: new (...args: never[]) => E, value: unknown): E {
  try {
    decodeEnvelope(value);
  } catch (err) {
    if (err instanceof kind) return err;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(value).slice(0, 200)} to be refused with ${kind.name}`);
}
const rejection = (value: unknown): InvalidCommandError => thrown(InvalidCommandError, value);
/** What a newer build's entry is to this one: unknown, never merely invalid (docs/upgrading.md). */
const unknown = (value: unknown): UnknownCommandError => thrown(UnknownCommandError, value);

t.test('every command type survives encode then decode unchanged', async (t) => {
  const commands: Command[] = [
    { type: 'submitJob', job: { id: 'j1', spec: spec({ files: ['a.sh'] }), createdAt: T0, inputs: { 'a.sh': 'sha256:aa' } } },
    { type: 'cancelJob', jobId: 'j1' },
    { type: 'assignJob', jobId: 'j1', node: 'n1', epoch: 2, fromCheckpoint: { seq: 3, epoch: 1 }, reason: 'node n2 lost' },
    { type: 'assignJob', jobId: 'j1', node: 'n1', epoch: 1, fromCheckpoint: null, reason: 'new job' },
    { type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' },
    { type: 'jobStarted', jobId: 'j1', epoch: 2, node: 'n1', restoreError: 'criu: restore failed: incompatible kernel' },
    { type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 0, resultBlob: 'sha256:bb' },
    { type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 137 },
    { type: 'checkpointCommitted', jobId: 'j1', epoch: 1, node: 'n1', seq: 1, blob: 'sha256:cc', bytes: 4096, durationMs: 812.5, logOffset: 120, holders: ['n1', 'n2'] },
    { type: 'setPolicy', jobId: 'j1', policy: { mode: 'auto', intervalSeconds: 42, reason: 'Young/Daly' } },
    join('n1'),
    { type: 'nodeJoined', node: { ...(join('n2') as Extract<Command, { type: 'nodeJoined' }>).node, role: 'voter' } },
    { type: 'nodeAlive', node: 'n1' },
    { type: 'nodeSuspect', node: 'n1' },
    { type: 'nodeLost', node: 'n1' },
    { type: 'nodeLeft', node: 'n1' },
    { type: 'setRole', node: 'n1', role: 'voter' },
    { type: 'blobAdded', id: 'sha256:dd', kind: 'image', bytes: 1 << 20, holders: ['n1'], name: 'workrs/busybox:1' },
    { type: 'blobHolders', id: 'sha256:dd', holders: [] },
    { type: 'setClusterVersion', version: 2 },
    { type: 'checkState' },
  ];
  for (const cmd of commands) {
    const e: Envelope = { v: 1, clientId: 'gw-n1', requestId: 7, at: T0, cmd };
    t.same(decodeEnvelopeBytes(encodeEnvelope(e)), e, cmd.type);
  }
});

t.test('a submitted spec is normalized by decoding, so every node stores the canonical form', async (t) => {
  const raw = env({ type: 'submitJob', job: { id: 'j1', spec: { command: ['x'], env: { B: '1', A: '2' }, outputs: ['o'] } as never, createdAt: T0 } });
  const decoded = decodeEnvelope(raw);
  t.equal(decoded.cmd.type, 'submitJob');
  if (decoded.cmd.type !== 'submitJob') return;
  t.same(Object.keys(decoded.cmd.job.spec.env), ['A', 'B']);
  t.same(decoded.cmd.job.spec.outputs, ['/work/o']);
  t.same(decoded.cmd.job.inputs, {});
});

t.test('an invalid spec inside submitJob is an invalid command naming the spec field', async (t) => {
  const err = rejection(env({ type: 'submitJob', job: { id: 'j1', spec: { command: [], colour: 'red' } as never, createdAt: T0 } }));
  t.same(err.errors.map((e) => e.field).sort(), ['cmd.job.spec.colour', 'cmd.job.spec.command']);
  t.equal(err.code, 'INVALID_COMMAND');
});

t.test('uploaded files need an input blob each, and inputs name only uploaded files', async (t) => {
  const job = (inputs?: Record<string, string>) => env({ type: 'submitJob', job: { id: 'j1', spec: spec({ files: ['a', 'b'] }), createdAt: T0, ...(inputs ? { inputs } : {}) } });
  t.match(rejection(job()).message, /no blob for "a", "b"/);
  t.match(rejection(job({ a: 'sha256:1' })).message, /no blob for "b"/);
  t.match(rejection(job({ a: 'sha256:1', b: 'sha256:2', c: 'sha256:3' })).message, /cmd\.job\.inputs\.c: is not one of spec\.files/);
  const ok = decodeEnvelope(job({ b: 'sha256:2', a: 'sha256:1' }));
  t.same(ok.cmd.type === 'submitJob' && Object.keys(ok.cmd.job.inputs ?? {}), ['a', 'b'], 'inputs in spec.files order');
});

t.test('the envelope: version 1, an id-like clientId, a positive integer requestId, a non-negative integer time', async (t) => {
  const cmd: Command = { type: 'cancelJob', jobId: 'j1' };
  t.match(unknown(env(cmd, { v: 2 })).message, /envelope version 2/);
  t.match(rejection(env(cmd, { v: 0 })).message, /unsupported command version 0/);
  t.match(rejection({ clientId: 'c', requestId: 1, at: 0, cmd }).message, /v: must be 1/);
  t.match(rejection(env(cmd, { clientId: '' })).message, /clientId/);
  t.match(rejection(env(cmd, { clientId: 'has space' })).message, /clientId/);
  t.match(rejection(env(cmd, { requestId: 0 })).message, /requestId: must be an integer from 1/);
  t.match(rejection(env(cmd, { requestId: 1.5 })).message, /requestId/);
  t.match(rejection(env(cmd, { at: -1 })).message, /at: must be an integer from 0/);
  t.match(unknown(env(cmd, { extra: true })).message, /field extra/);
  t.match(rejection(null).message, /must be an object/);
});

t.test("unknown command types and fields are a newer build's, not invalid; wrong field types are invalid commands", async (t) => {
  t.match(unknown(env({ type: 'dropTables' } as never)).message, /command type "dropTables"/);
  t.match(unknown(env({ type: 'cancelJob', jobId: 'j1', force: true } as never)).message, /field cmd\.force/);
  t.match(unknown(env({ type: 'nodeJoined', node: { id: 'n1', api: 'a', peer: 'p', slots: 1, memoryMB: 1, versions: { docker: '', criu: '', kernel: '' }, build: {} } } as never)).message, /field cmd\.node\.build/);
  t.match(rejection(env({ type: 7 } as never)).message, /cmd\.type: must be a string/);
  t.match(rejection(env({ type: 'setClusterVersion', version: 1 })).message, /cmd\.version: must be an integer from 2/);
  t.match(rejection(env({ type: 'jobStarted', jobId: 'j1', epoch: 0, node: 'n1' })).message, /cmd\.epoch/);
  t.match(rejection(env({ type: 'jobExited', jobId: 'j1', epoch: 1, node: 'n1', exitCode: 'ok' } as never)).message, /cmd\.exitCode/);
  t.match(rejection(env({ type: 'assignJob', jobId: 'j1', node: 'n1', epoch: 1, fromCheckpoint: { seq: 1 }, reason: 'x' } as never)).message, /cmd\.fromCheckpoint\.epoch/);
  t.match(rejection(env({ type: 'checkpointCommitted', jobId: 'j', epoch: 1, node: 'n1', seq: 1, blob: 'b', bytes: 1, durationMs: 1, logOffset: 0, holders: [] })).message, /holders: must list 1 to 256/);
  t.match(rejection(env({ type: 'blobAdded', id: 'b', kind: 'image', bytes: 1, holders: ['n1', 'n1'] })).message, /holders\[1\]: "n1" is listed twice/);
  t.match(rejection(env({ type: 'blobAdded', id: 'b', kind: 'video', bytes: 1, holders: ['n1'] } as never)).message, /kind: must be one of image, input, result, checkpoint/);
  t.match(rejection(env({ type: 'setPolicy', jobId: 'j', policy: { mode: 'off', intervalSeconds: 5, reason: '' } })).message, /must be null when mode is off/);
  t.match(rejection(env({ type: 'nodeJoined', node: { id: 'n1', api: 'a', peer: 'p', slots: -1, memoryMB: 1, versions: { docker: '', criu: '', kernel: '' } } })).message, /slots/);
  t.match(rejection(env({ type: 'nodeJoined', node: { id: 'n1', api: 'a', peer: 'p', slots: 1, memoryMB: 1, versions: { docker: '' } } } as never)).message, /versions\.criu/);
});

t.test('bytes that are not msgpack are an invalid command, with the decoder error as cause', async (t) => {
  const err = (() => {
    try {
      decodeEnvelopeBytes(new Uint8Array([0x92, 0x01])); // an array of two, cut short
    } catch (e) {
      return e;
    }
    return null;
  })();
  t.ok(err instanceof InvalidCommandError);
  t.match((err as Error).message, /not msgpack/);
});

t.test('a 64-bit integer beyond the safe range (decoded as a BigInt) is refused, not rounded', async (t) => {
  const packr = new Packr({ useRecords: false });
  const bytes = packr.pack({ v: 1, clientId: 'c', requestId: 2n ** 63n, at: T0, cmd: { type: 'cancelJob', jobId: 'j1' } });
  t.throws(() => decodeEnvelopeBytes(bytes), /requestId/);
});
