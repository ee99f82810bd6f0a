// A job's spec as docs/api.md defines it, validated field by field and normalized, so the
// log and every node hold one canonical form. Unknown fields are rejected, not ignored.
import { isPlainObject, joinPath, unknownKeys, utf8Bytes } from '../util/parse.js';
import type { FieldError } from './parse.js';

export type CheckpointMode = 'auto' | 'off' | 'interval';

export interface JobSpec {
  image: string;
  command: string[];
  /** Keys sorted, so equal environments encode to equal bytes. */
  env: Record<string, string>;
  /** Names of the uploaded files; each appears as /work/<name> in the container. */
  files: string[];
  /** Normalized absolute paths under /work (`/work` itself means the whole directory). */
  outputs: string[];
  estimateSeconds: number | null;
  checkpoint: { mode: CheckpointMode; intervalSeconds: number | null };
  cpus: number | null;
  memoryMB: number | null;
  timeoutSeconds: number | null;
  /**
   * A name to refer to the job by (`workrs status NAME`), unique among the jobs not yet
   * final (the state machine refuses a second one, NAME_IN_USE); null: none. Records
   * from before names get null when a snapshot is read (snapshot.ts).
   */
  name: string | null;
  /** Free-form labels to filter lists by (`GET /v1/jobs?label=k=v`), keys sorted; `{}` in records from before labels. */
  labels: Record<string, string>;
}

export type SpecResult = { ok: true; spec: JobSpec } | { ok: false; errors: FieldError[] };

export const DEFAULT_IMAGE = 'workrs/busybox:1';
export const WORK_DIR = '/work';

// Bounds. They keep a submitJob entry small in the Raft log (every voter stores and
// replicates it) and inside what Linux accepts for argv and the environment.
export const SPEC_LIMITS = {
  imageBytes: 255,
  commandArgs: 256,
  envKeys: 256,
  envKeyBytes: 256,
  stringBytes: 64 * 1024,
  /** command arguments + env keys and values together. */
  argvEnvTotalBytes: 256 * 1024,
  files: 256,
  fileNameBytes: 255,
  outputs: 256,
  outputPathBytes: 4096,
  /** estimateSeconds, timeoutSeconds and checkpoint.intervalSeconds: at most 366 days. */
  maxSeconds: 366 * 24 * 3600,
  minIntervalSeconds: 1,
  maxCpus: 1024,
  /** Docker refuses a memory limit under 6 MB. */
  minMemoryMB: 6,
  maxMemoryMB: 16 * 1024 * 1024,
  /** A job's name: a DNS label / Docker name, at most this many characters. */
  nameChars: 63,
  labels: 64,
  labelKeyChars: 63,
  labelValueBytes: 256,
} as const;

const SPEC_FIELDS = ['image', 'command', 'env', 'files', 'outputs', 'estimateSeconds', 'checkpoint', 'cpus', 'memoryMB', 'timeoutSeconds', 'name', 'labels'] as const;
const CHECKPOINT_FIELDS = ['mode', 'intervalSeconds'] as const;
const CHECKPOINT_MODES: readonly CheckpointMode[] = ['auto', 'off', 'interval'];
const IMAGE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/;
const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A job name: what Docker accepts for a container name, as long as a DNS label. */
export const JOB_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** A label key: the same alphabet plus `/` (a prefix such as `team/`). */
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
/** Label values are printable: no control characters (C0, DEL, C1), which a table or a terminal would show garbled. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
// msgpackr decodes a map key "__proto__" as "__proto_" (a guard against prototype
// pollution), so such a key would not survive the Raft log: refuse it up front.
const RESERVED_NAME = '__proto__';

/**
 * Validates a spec as received (JSON body or the `spec` part) and returns it
 * normalized: defaults filled in, absent optional fields as null, env keys sorted,
 * outputs as absolute paths under /work. On failure, every bad field is reported.
 */
export function validateJobSpec(input: unknown): SpecResult {
  const errors: FieldError[] = [];
  if (!isPlainObject(input)) {
    return { ok: false, errors: [{ field: 'spec', message: 'must be a JSON object' }] };
  }
  for (const key of unknownKeys(input, SPEC_FIELDS)) {
    errors.push({ field: key, message: `unknown field (allowed: ${SPEC_FIELDS.join(', ')})` });
  }
  const image = parseImage(input.image, errors);
  const command = parseCommand(input.command, errors);
  const env = parseEnv(input.env, errors);
  const files = parseFiles(input.files, errors);
  const outputs = parseOutputs(input.outputs, errors);
  const estimateSeconds = parseSeconds(input.estimateSeconds, 'estimateSeconds', errors);
  const checkpoint = parseCheckpoint(input.checkpoint, errors);
  const cpus = parseCpus(input.cpus, errors);
  const memoryMB = parseMemory(input.memoryMB, errors);
  const timeoutSeconds = parseSeconds(input.timeoutSeconds, 'timeoutSeconds', errors);
  const name = parseName(input.name, errors);
  const labels = parseLabels(input.labels, errors);

  if (command !== null && env !== null) {
    const total = command.reduce((n, a) => n + utf8Bytes(a), 0) + Object.entries(env).reduce((n, [k, v]) => n + utf8Bytes(k) + utf8Bytes(v), 0);
    if (total > SPEC_LIMITS.argvEnvTotalBytes) {
      errors.push({ field: 'command', message: `command and env together are ${total} bytes, more than ${SPEC_LIMITS.argvEnvTotalBytes}` });
    }
  }
  if (errors.length > 0 || image === null || command === null || env === null || files === null || outputs === null || checkpoint === null || labels === null) {
    return { ok: false, errors };
  }
  return { ok: true, spec: { image, command, env, files, outputs, estimateSeconds, checkpoint, cpus, memoryMB, timeoutSeconds, name, labels } };
}

/** Whether a value is absent: a missing field and an explicit null mean the same. */
function absent(value: unknown): boolean {
  return value === undefined || value === null;
}

/** A bounded string without NUL bytes (argv and env cannot carry them), or an error message. */
function checkString(value: unknown, maxBytes: number): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.includes('\0')) return 'must not contain a NUL character';
  const bytes = utf8Bytes(value);
  if (bytes > maxBytes) return `is ${bytes} bytes, more than ${maxBytes}`;
  return null;
}

function parseImage(value: unknown, errors: FieldError[]): string | null {
  if (absent(value)) return DEFAULT_IMAGE;
  const bad = checkString(value, SPEC_LIMITS.imageBytes);
  if (bad !== null) {
    errors.push({ field: 'image', message: bad });
    return null;
  }
  const image = value as string;
  if (!IMAGE_PATTERN.test(image)) {
    errors.push({ field: 'image', message: `"${image}" is not an image reference (letters, digits and . _ - / : @, starting with a letter or digit)` });
    return null;
  }
  return image;
}

function parseCommand(value: unknown, errors: FieldError[]): string[] | null {
  if (absent(value)) {
    errors.push({ field: 'command', message: 'is required: an array of strings, e.g. ["sh", "job.sh"]' });
    return null;
  }
  if (!Array.isArray(value)) {
    errors.push({ field: 'command', message: 'must be an array of strings, e.g. ["sh", "job.sh"]' });
    return null;
  }
  if (value.length === 0) {
    errors.push({ field: 'command', message: 'must not be empty' });
    return null;
  }
  const command = parseList<string>(value, 'command', SPEC_LIMITS.commandArgs, 'arguments', errors, (arg) => {
    const bad = checkString(arg, SPEC_LIMITS.stringBytes);
    return bad === null ? { value: arg as string } : { error: bad };
  });
  if (command !== null && command[0] === '') {
    errors.push({ field: 'command[0]', message: 'the program name must not be empty' });
    return null;
  }
  return command;
}

/** The result of checking one element of a list: the value to keep, or why it is refused. */
type Checked<T> = { value: T } | { error: string };

/**
 * The elements of a list field, at most `max` of them (`noun` says what they are),
 * each checked with `check` given the elements kept before it; null after recording
 * every refused element in `errors`.
 */
function parseList<T>(value: unknown[], field: string, max: number, noun: string, errors: FieldError[], check: (item: unknown, kept: readonly T[]) => Checked<T>): T[] | null {
  if (value.length > max) {
    errors.push({ field, message: `has ${value.length} ${noun}, more than ${max}` });
    return null;
  }
  let ok = true;
  const kept: T[] = [];
  value.forEach((item: unknown, i) => {
    const checked = check(item, kept);
    if ('error' in checked) {
      errors.push({ field: joinPath(field, i), message: checked.error });
      ok = false;
    } else {
      kept.push(checked.value);
    }
  });
  return ok ? kept : null;
}

/**
 * An object of strings (env, labels): at most `max` entries (`noun`), each key checked by
 * `keyProblem` and each value by `valueProblem` (null: fine), returned with its keys
 * sorted so that equal maps encode to equal bytes; null after recording what is wrong.
 */
function parseStringMap(value: unknown, field: string, max: number, noun: string, example: string, errors: FieldError[], keyProblem: (key: string) => string | null, valueProblem: (v: unknown) => string | null): Record<string, string> | null {
  if (absent(value)) return {};
  if (!isPlainObject(value)) {
    errors.push({ field, message: `must be an object of strings, e.g. ${example}` });
    return null;
  }
  const entries = Object.entries(value);
  if (entries.length > max) {
    errors.push({ field, message: `has ${entries.length} ${noun}, more than ${max}` });
    return null;
  }
  let ok = true;
  for (const [key, v] of entries) {
    const bad = keyProblem(key) ?? valueProblem(v);
    if (bad !== null) {
      errors.push({ field: joinPath(field, key), message: bad });
      ok = false;
    }
  }
  if (!ok) return null;
  // Object.fromEntries defines own properties, so even a key like "__proto__" stays data.
  const sorted = entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) as Array<[string, string]>;
  return Object.fromEntries(sorted);
}

function parseEnv(value: unknown, errors: FieldError[]): Record<string, string> | null {
  const keyProblem = (key: string): string | null => {
    if (key === RESERVED_NAME) return `"${RESERVED_NAME}" is reserved`;
    if (!ENV_KEY_PATTERN.test(key) || utf8Bytes(key) > SPEC_LIMITS.envKeyBytes) return `"${key.slice(0, 64)}" is not a variable name (letters, digits, _, not starting with a digit, at most ${SPEC_LIMITS.envKeyBytes} bytes)`;
    return null;
  };
  return parseStringMap(value, 'env', SPEC_LIMITS.envKeys, 'variables', '{"N": "10"}', errors, keyProblem, (v) => checkString(v, SPEC_LIMITS.stringBytes));
}

function parseName(value: unknown, errors: FieldError[]): string | null {
  if (absent(value)) return null;
  if (typeof value !== 'string' || !JOB_NAME_PATTERN.test(value)) {
    const shown = typeof value === 'string' ? `"${value.slice(0, 64)}" is not a job name: ` : 'must be a string: ';
    errors.push({ field: 'name', message: `${shown}1 to ${SPEC_LIMITS.nameChars} letters, digits and _ . -, starting with a letter or digit` });
    return null;
  }
  return value;
}

function parseLabels(value: unknown, errors: FieldError[]): Record<string, string> | null {
  const keyProblem = (key: string): string | null =>
    LABEL_KEY_PATTERN.test(key) ? null : `"${key.slice(0, 64)}" is not a label key (1 to ${SPEC_LIMITS.labelKeyChars} letters, digits and _ . / -, starting with a letter or digit)`;
  const valueProblem = (v: unknown): string | null => checkString(v, SPEC_LIMITS.labelValueBytes) ?? (CONTROL_CHARS.test(v as string) ? 'must not contain control characters' : null);
  return parseStringMap(value, 'labels', SPEC_LIMITS.labels, 'labels', '{"team": "vision"}', errors, keyProblem, valueProblem);
}

function parseFiles(value: unknown, errors: FieldError[]): string[] | null {
  if (absent(value)) return [];
  if (!Array.isArray(value)) {
    errors.push({ field: 'files', message: 'must be an array of file names' });
    return null;
  }
  return parseList<string>(value, 'files', SPEC_LIMITS.files, 'files', errors, (name, kept) => {
    const bad = checkString(name, SPEC_LIMITS.fileNameBytes);
    if (bad !== null) return { error: bad };
    const file = name as string;
    if (file === '' || file === '.' || file === '..' || file.includes('/')) {
      return { error: `"${file}" is not a file name (files are placed directly in ${WORK_DIR}; no "/", not "", "." or "..")` };
    }
    if (file === RESERVED_NAME) return { error: `"${RESERVED_NAME}" is reserved` };
    if (kept.includes(file)) return { error: `"${file}" is listed twice` };
    return { value: file };
  });
}

/**
 * Resolves an output path to its absolute normalized form under /work, or explains
 * why it is not under /work. Relative paths are relative to /work.
 */
export function normalizeOutputPath(path: string): { ok: true; path: string } | { ok: false; message: string } {
  if (path === '') return { ok: false, message: 'must not be empty' };
  const absolute = path.startsWith('/');
  const stack: string[] = absolute ? [] : ['work'];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      // For a relative path, stepping above /work is leaving it; for an absolute
      // one, ".." at the root stays at the root (POSIX), and the check below decides.
      if (!absolute && stack.length === 1) return { ok: false, message: `"${path}" leaves ${WORK_DIR}` };
      stack.pop();
      continue;
    }
    stack.push(segment);
  }
  if (stack[0] !== 'work') return { ok: false, message: `"${path}" is not under ${WORK_DIR}` };
  return { ok: true, path: `/${stack.join('/')}` };
}

/** The result archive's own files (src/worker/result-archive.ts) sit where these outputs would. */
const RESERVED_OUTPUTS = [`${WORK_DIR}/stdout.log`, `${WORK_DIR}/exit-code`];

function parseOutputs(value: unknown, errors: FieldError[]): string[] | null {
  if (absent(value)) return [];
  if (!Array.isArray(value)) {
    errors.push({ field: 'outputs', message: `must be an array of paths (relative to ${WORK_DIR}, or absolute under it)` });
    return null;
  }
  return parseList<string>(value, 'outputs', SPEC_LIMITS.outputs, 'paths', errors, (p, kept) => {
    const bad = checkString(p, SPEC_LIMITS.outputPathBytes);
    if (bad !== null) return { error: bad };
    const norm = normalizeOutputPath(p as string);
    if (!norm.ok) return { error: norm.message };
    if (RESERVED_OUTPUTS.includes(norm.path)) return { error: `"${p as string}" is reserved: the result archive has its own ${norm.path.slice(WORK_DIR.length + 1)}` };
    if (kept.includes(norm.path)) return { error: `"${p as string}" names ${norm.path}, which is listed already` };
    return { value: norm.path };
  });
}

/** A positive, finite number of seconds up to a bound; null when absent. */
function parseSeconds(value: unknown, field: string, errors: FieldError[], min = 0): number | null {
  if (absent(value)) return null;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    errors.push({ field, message: 'must be a number of seconds' });
    return null;
  }
  if (value <= 0 || value < min) {
    errors.push({ field, message: min > 0 ? `must be at least ${min} second(s), got ${value}` : `must be greater than 0, got ${value}` });
    return null;
  }
  if (value > SPEC_LIMITS.maxSeconds) {
    errors.push({ field, message: `must be at most ${SPEC_LIMITS.maxSeconds} seconds (366 days), got ${value}` });
    return null;
  }
  return value;
}

function parseCheckpoint(value: unknown, errors: FieldError[]): JobSpec['checkpoint'] | null {
  if (absent(value)) return { mode: 'auto', intervalSeconds: null };
  if (!isPlainObject(value)) {
    errors.push({ field: 'checkpoint', message: 'must be an object {"mode": "auto"|"off"|"interval", "intervalSeconds": N}' });
    return null;
  }
  let ok = true;
  for (const key of unknownKeys(value, CHECKPOINT_FIELDS)) {
    errors.push({ field: joinPath('checkpoint', key), message: `unknown field (allowed: ${CHECKPOINT_FIELDS.join(', ')})` });
    ok = false;
  }
  const mode = value.mode;
  if (typeof mode !== 'string' || !(CHECKPOINT_MODES as readonly string[]).includes(mode)) {
    errors.push({ field: 'checkpoint.mode', message: `must be one of ${CHECKPOINT_MODES.map((m) => `"${m}"`).join(', ')}` });
    return null;
  }
  if (mode === 'interval') {
    if (absent(value.intervalSeconds)) {
      errors.push({ field: 'checkpoint.intervalSeconds', message: 'is required when mode is "interval"' });
      return null;
    }
    const intervalSeconds = parseSeconds(value.intervalSeconds, 'checkpoint.intervalSeconds', errors, SPEC_LIMITS.minIntervalSeconds);
    return ok && intervalSeconds !== null ? { mode, intervalSeconds } : null;
  }
  if (!absent(value.intervalSeconds)) {
    errors.push({ field: 'checkpoint.intervalSeconds', message: `is only allowed when mode is "interval" (mode is "${mode}")` });
    return null;
  }
  return ok ? { mode: mode as CheckpointMode, intervalSeconds: null } : null;
}

function parseCpus(value: unknown, errors: FieldError[]): number | null {
  if (absent(value)) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > SPEC_LIMITS.maxCpus) {
    errors.push({ field: 'cpus', message: `must be a number of CPUs greater than 0 and at most ${SPEC_LIMITS.maxCpus} (e.g. 0.5, 2)` });
    return null;
  }
  return value;
}

function parseMemory(value: unknown, errors: FieldError[]): number | null {
  if (absent(value)) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < SPEC_LIMITS.minMemoryMB || value > SPEC_LIMITS.maxMemoryMB) {
    errors.push({ field: 'memoryMB', message: `must be a whole number of MB from ${SPEC_LIMITS.minMemoryMB} to ${SPEC_LIMITS.maxMemoryMB}` });
    return null;
  }
  return value;
}

/** A node's ceiling on what one job may ask for (`workrs start --max-job-memory-mb`, `--max-job-cpus`). */
export interface ResourceMaxima {
  memoryMB: number;
  cpus: number;
}

/**
 * The fields of a valid spec that ask for more than `max`; empty when it fits. A node
 * setting, not part of validateJobSpec: the state machine must decide the same on
 * every node, so the gateway checks before proposing and the worker before starting.
 */
export function resourcesAboveMaximum(spec: Pick<JobSpec, 'memoryMB' | 'cpus'>, max: ResourceMaxima): FieldError[] {
  const errors: FieldError[] = [];
  if (spec.memoryMB !== null && spec.memoryMB > max.memoryMB) {
    errors.push({ field: 'memoryMB', message: `asks for ${spec.memoryMB} MB, more than this node's maximum of ${max.memoryMB} MB per job (--max-job-memory-mb)` });
  }
  if (spec.cpus !== null && spec.cpus > max.cpus) {
    errors.push({ field: 'cpus', message: `asks for ${spec.cpus} CPUs, more than this node's maximum of ${max.cpus} per job (--max-job-cpus)` });
  }
  return errors;
}

/**
 * A spec as submitJob carries it in the log: the fields added after the first version
 * (`name`, `labels`) only when they say something. A node of a version before them
 * refuses unknown fields, so a job without a name or labels stays an entry every node
 * of a mixed-version cluster applies; decoding (validateJobSpec) and apply put the
 * neutral values back.
 */
export type WireJobSpec = Omit<JobSpec, 'name' | 'labels'> & Partial<Pick<JobSpec, 'name' | 'labels'>>;

export function wireSpec(spec: JobSpec): WireJobSpec {
  const { name, labels, ...rest } = spec;
  return { ...rest, ...(name === null ? {} : { name }), ...(Object.keys(labels).length === 0 ? {} : { labels }) };
}

/** The whole spec from its wire form: the neutral values of the fields left out, in their place (last). */
export function fullSpec(spec: WireJobSpec): JobSpec {
  return { ...spec, name: spec.name ?? null, labels: spec.labels ?? {} };
}

/** A deep copy, so views handed to the API cannot reach the state machine's records. */
export function cloneSpec(spec: JobSpec): JobSpec {
  return {
    image: spec.image,
    command: spec.command.slice(),
    env: Object.fromEntries(Object.entries(spec.env)),
    files: spec.files.slice(),
    outputs: spec.outputs.slice(),
    estimateSeconds: spec.estimateSeconds,
    checkpoint: { mode: spec.checkpoint.mode, intervalSeconds: spec.checkpoint.intervalSeconds },
    cpus: spec.cpus,
    memoryMB: spec.memoryMB,
    timeoutSeconds: spec.timeoutSeconds,
    name: spec.name,
    labels: { ...spec.labels },
  };
}
