// Helpers for checking untrusted decoded values (JSON or msgpackr output) before they
// are trusted as typed records. Pure: no I/O, no clock.

/** A plain object as JSON.parse and msgpackr produce: not null, not an array, not bytes. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The keys of `obj` that are not in `allowed`, in the object's order. */
export function unknownKeys(obj: Record<string, unknown>, allowed: readonly string[]): string[] {
  return Object.keys(obj).filter((k) => !allowed.includes(k));
}

/**
 * Length of a string in UTF-8 bytes: the bound that matters for the log and for argv.
 * Counted without encoding (a lone surrogate counts 3, as its replacement character).
 */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** A field's path below its parent: `parent.key`, or `parent[index]`. */
export function joinPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent === '' ? key : `${parent}.${key}`;
}
