// Small helpers for parsing untrusted decoded values (JSON or msgpackr output) into
// typed records. Pure: no I/O, no clock.

export interface FieldError {
  /** Dotted path of the offending field inside the value, e.g. `checkpoint.mode`, `command[2]`. */
  field: string;
  message: string;
}

/** A plain object as JSON.parse and msgpackr produce: not null, not an array, not bytes. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const encoder = new TextEncoder();

/** Length of a string in UTF-8 bytes: the bound that matters for the log and for argv. */
export function utf8Bytes(s: string): number {
  return encoder.encode(s).length;
}

/** Identifiers (job, node, blob, client ids): printable ASCII without spaces, 1 to 256 bytes. */
const ID_PATTERN = /^[\x21-\x7e]{1,256}$/;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

export function joinPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent === '' ? key : `${parent}.${key}`;
}

/** The keys of `obj` that are not in `allowed`, in the object's order. */
export function unknownKeys(obj: Record<string, unknown>, allowed: readonly string[]): string[] {
  return Object.keys(obj).filter((k) => !allowed.includes(k));
}
