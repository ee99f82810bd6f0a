// What the state machine's parsers share: the error they report per field, and the
// shape of an id. The generic checks of untrusted values are in src/util/parse.ts.

export interface FieldError {
  /** Dotted path of the offending field inside the value, e.g. `checkpoint.mode`, `command[2]`. */
  field: string;
  message: string;
}

/** Identifiers (job, node, blob, client ids): printable ASCII without spaces, 1 to 256 bytes. */
const ID_PATTERN = /^[\x21-\x7e]{1,256}$/;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
