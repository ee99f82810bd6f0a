// validateJobSpec (src/state/spec.ts), the parser every submitted spec goes through
// (the JSON body or the multipart `spec` part) before the gateway answers 400
// INVALID_SPEC with its field errors. On random JSON values, and on valid specs with
// a field replaced, removed or added, it returns a spec or a non-empty list of field
// errors, never throws. A valid spec is accepted with its values kept. The normal
// form is a fixed point: parsing an accepted spec again, after the JSON wire, and out
// of the Raft log (msgpack) gives the same spec.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { decodeEnvelopeBytes, encodeEnvelope, type Envelope } from '../../../src/state/commands.js';
import { DEFAULT_IMAGE, fullSpec, type JobSpec, validateJobSpec, wireSpec } from '../../../src/state/spec.js';
import type { FuzzTarget } from '../target.js';

const MAX_SECONDS = 366 * 24 * 3600;

const textArb = fc.string({ maxLength: 24, unit: 'binary' }).filter((s) => !s.includes('\0'));
const envKeyArb = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/).filter((k) => k !== '__proto__');
const fileNameArb = fc.string({ minLength: 1, maxLength: 24, unit: 'binary' }).filter((n) => !n.includes('/') && !n.includes('\0') && n !== '.' && n !== '..' && n !== '__proto__');
const segmentArb = fc.stringMatching(/^[a-z0-9_]{1,8}$/);
const outputArb = fc.tuple(fc.constantFrom('', './', '/work/'), fc.array(segmentArb, { minLength: 1, maxLength: 3 })).map(([prefix, segs]) => ({ raw: `${prefix}${segs.join('/')}`, normal: `/work/${segs.join('/')}` }));
const secondsArb = fc.double({ min: 0.001, max: MAX_SECONDS, noNaN: true });

/** A spec the parser must accept, as a client would write it: optional fields absent, null or set. */
const validSpecArb = fc.record(
  {
    image: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,40}$/)),
    command: fc.tuple(textArb.filter((s) => s !== ''), fc.array(textArb, { maxLength: 4 })).map(([first, rest]) => [first, ...rest]),
    env: fc.dictionary(envKeyArb, textArb, { maxKeys: 5 }),
    files: fc.uniqueArray(fileNameArb, { maxLength: 4 }),
    outputs: fc.uniqueArray(outputArb, { maxLength: 4, selector: (o) => o.normal }).map((os) => os.map((o) => o.raw)),
    estimateSeconds: fc.option(secondsArb),
    checkpoint: fc.option(
      fc.oneof(
        fc.constant({ mode: 'auto' }),
        fc.constant({ mode: 'off' }),
        fc.double({ min: 1, max: MAX_SECONDS, noNaN: true }).map((s) => ({ mode: 'interval', intervalSeconds: s })),
      ),
    ),
    cpus: fc.option(fc.double({ min: 0.01, max: 8, noNaN: true })),
    memoryMB: fc.option(fc.integer({ min: 64, max: 65_536 })),
    timeoutSeconds: fc.option(secondsArb),
    name: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/)),
    labels: fc.dictionary(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_./-]{0,20}$/), fc.string({ maxLength: 24 }).filter((v) => !/[\u0000-\u001f\u007f-\u009f]/.test(v)), { maxKeys: 5 }),
  },
  { requiredKeys: ['command'] },
);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Values that probe the parser's edges, beside random JSON. */
const hostileValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom<unknown>(null, '', '\0', 'a\0b', '__proto__', '.', '..', '/', '/work', '/work/stdout.log', 'exit-code', '../x', -1, 0, -0, 0.5, 5, 6, 1e308, MAX_SECONDS + 1, 'x'.repeat(70_000), {}, [], [''], ['__proto__']),
  fc.constantFrom<unknown>(Number.NaN, Number.POSITIVE_INFINITY, undefined, 10n),
  fc.array(fc.constant('a'), { minLength: 250, maxLength: 300 }),
);

type Mutation =
  | { kind: 'set'; key: string; value: unknown }
  | { kind: 'delete'; key: string }
  | { kind: 'setIn'; field: 'command' | 'files' | 'outputs' | 'env' | 'checkpoint' | 'labels'; key: string | number; value: unknown };

const topKeyArb = fc.constantFrom('image', 'command', 'env', 'files', 'outputs', 'estimateSeconds', 'checkpoint', 'cpus', 'memoryMB', 'timeoutSeconds', 'name', 'labels', 'colour', '__proto__', 'constructor');
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: topKeyArb, value: hostileValueArb }),
  fc.record({ kind: fc.constant('delete' as const), key: topKeyArb }),
  fc.record({
    kind: fc.constant('setIn' as const),
    field: fc.constantFrom('command' as const, 'files' as const, 'outputs' as const, 'env' as const, 'checkpoint' as const, 'labels' as const),
    key: fc.oneof(fc.nat({ max: 5 }), fc.constantFrom('mode', 'intervalSeconds', '__proto__', 'PATH', '1BAD', 'extra', 'team/a', '-k', 'k'.repeat(64))),
    value: hostileValueArb,
  }),
);

/** Sets an own property, so that "__proto__" is a key like any other (as JSON.parse makes it). */
function put(target: object, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function applyMutation(spec: Record<string, unknown>, m: Mutation): Record<string, unknown> {
  const copy = structuredClone(spec);
  if (m.kind === 'set') put(copy, m.key, m.value);
  else if (m.kind === 'delete') delete copy[m.key];
  else {
    const inner = copy[m.field];
    // Arrays stay dense, as JSON.parse and msgpack make them: an index past the end appends.
    if (Array.isArray(inner)) inner[typeof m.key === 'number' ? Math.min(m.key, inner.length) : inner.length] = m.value;
    else if (typeof inner === 'object' && inner !== null) put(inner, m.key, m.value);
    else put(copy, m.field, { [String(m.key)]: m.value });
  }
  return copy;
}

/** The value as it arrives over HTTP: JSON text parsed again (undefined dropped, NaN as null). */
function overTheWire(value: unknown): unknown {
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  return text === undefined ? undefined : (JSON.parse(text) as Json);
}

/** A spec as it comes back out of the Raft log, in the submitJob command that carries it. */
function throughTheLog(spec: JobSpec): JobSpec {
  const envelope: Envelope = {
    v: 1,
    clientId: 'fuzz',
    requestId: 1,
    at: 0,
    cmd: { type: 'submitJob', job: { id: 'j-fuzz', spec: wireSpec(spec), createdAt: 0, ...(spec.files.length > 0 ? { inputs: Object.fromEntries(spec.files.map((f, i) => [f, `b-${i}`])) } : {}) } },
  };
  const decoded = decodeEnvelopeBytes(encodeEnvelope(envelope));
  if (decoded.cmd.type !== 'submitJob') throw new Error(`the log gave back a ${decoded.cmd.type} command`);
  // Decoding makes it whole again; fullSpec only narrows the type.
  return fullSpec(decoded.cmd.job.spec);
}

/** Checks one parse; returns the spec when it was accepted. */
function check(input: unknown, what: string): JobSpec | null {
  const r = validateJobSpec(input);
  if (!r.ok) {
    if (r.errors.length === 0) throw new Error(`${what}: refused without a field error`);
    for (const e of r.errors) {
      if (typeof e.field !== 'string' || typeof e.message !== 'string' || e.message === '') throw new Error(`${what}: a malformed field error ${JSON.stringify(e)}`);
    }
    return null;
  }
  const again = validateJobSpec(r.spec);
  if (!again.ok || !isDeepStrictEqual(again.spec, r.spec)) throw new Error(`${what}: the accepted spec does not parse to itself: ${JSON.stringify(again)}`);
  const wire = validateJobSpec(overTheWire(r.spec));
  if (!wire.ok || !isDeepStrictEqual(wire.spec, r.spec)) throw new Error(`${what}: the accepted spec changes over JSON: ${JSON.stringify(wire)}`);
  const logged = throughTheLog(r.spec);
  if (!isDeepStrictEqual(logged, r.spec)) throw new Error(`${what}: the accepted spec changes through the log: ${JSON.stringify(logged)}`);
  return r.spec;
}

function checkValuesKept(input: Record<string, unknown>, spec: JobSpec): void {
  const kept = (field: string, got: unknown, want: unknown): void => {
    if (!isDeepStrictEqual(got, want)) throw new Error(`${field}: sent ${JSON.stringify(want)}, parsed as ${JSON.stringify(got)}`);
  };
  kept('image', spec.image, input.image ?? DEFAULT_IMAGE);
  kept('command', spec.command, input.command);
  kept('env', Object.entries(spec.env).sort(), Object.entries((input.env ?? {}) as Record<string, string>).sort());
  kept('files', spec.files, input.files ?? []);
  kept('outputs count', spec.outputs.length, ((input.outputs ?? []) as unknown[]).length);
  for (const field of ['estimateSeconds', 'cpus', 'memoryMB', 'timeoutSeconds'] as const) {
    if (input[field] !== undefined && input[field] !== null) kept(field, spec[field], input[field]);
  }
  kept('name', spec.name, input.name ?? null);
  kept('labels', Object.entries(spec.labels).sort(), Object.entries((input.labels ?? {}) as Record<string, string>).sort());
  const checkpoint = input.checkpoint as { mode: string } | null | undefined;
  if (checkpoint) kept('checkpoint.mode', spec.checkpoint.mode, checkpoint.mode);
}

type Case = { kind: 'spec'; spec: Record<string, unknown>; mutations: Mutation[] } | { kind: 'random'; raw: unknown };

export const target: FuzzTarget = {
  name: 'job-spec',
  property() {
    const caseArb: fc.Arbitrary<Case> = fc.oneof(
      { weight: 2, arbitrary: validSpecArb.map((spec): Case => ({ kind: 'spec', spec, mutations: [] })) },
      { weight: 4, arbitrary: fc.tuple(validSpecArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 })).map(([spec, mutations]): Case => ({ kind: 'spec', spec, mutations })) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((raw): Case => ({ kind: 'random', raw })) },
    );
    return fc.property(caseArb, (c) => {
      if (c.kind === 'random') {
        check(c.raw, 'a random JSON value');
        check(overTheWire(c.raw), 'a random JSON value over JSON');
        return;
      }
      const input = c.mutations.reduce(applyMutation, c.spec);
      const parsed = check(input, 'the spec');
      check(overTheWire(input), 'the spec over JSON');
      if (c.mutations.length === 0) {
        if (parsed === null) throw new Error(`a valid spec was refused: ${JSON.stringify(validateJobSpec(input))}`);
        checkValuesKept(input, parsed);
      }
    });
  },
};
