// Reading untrusted decoded objects field by field, for the command decoder
// (command-decode.ts): each reader method returns the typed value or throws
// InvalidCommandError naming the field's full path.
import { isPlainObject, joinPath, unknownKeys, utf8Bytes } from '../util/parse.js';
import { COMMAND_LIMITS, InvalidCommandError, UnknownCommandError } from './command-types.js';
import { isId } from './parse.js';

export class Fields {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly path: string,
  ) {}

  static of(value: unknown, path: string, allowed: readonly string[]): Fields {
    if (!isPlainObject(value)) fail(path, 'must be an object');
    const extra = unknownKeys(value, allowed);
    // A field this build does not know comes from a newer one (versions.ts).
    if (extra.length > 0) throw new UnknownCommandError(`field ${joinPath(path, extra[0]!)} (this build knows ${allowed.join(', ')})`);
    return new Fields(value, path);
  }

  raw(key: string): unknown {
    return this.obj[key];
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  at(key: string): string {
    return joinPath(this.path, key);
  }

  id(key: string): string {
    const v = this.obj[key];
    if (!isId(v)) fail(this.at(key), 'must be an id (1 to 256 printable ASCII characters, no spaces)');
    return v;
  }

  text(key: string, maxBytes: number): string {
    const v = this.obj[key];
    if (typeof v !== 'string') fail(this.at(key), 'must be a string');
    if (utf8Bytes(v) > maxBytes) fail(this.at(key), `must be at most ${maxBytes} bytes`);
    return v;
  }

  /** A safe integer in [min, max]. */
  pattern(key: string, re: RegExp, what: string): string {
    const v = this.raw(key);
    if (typeof v !== 'string' || !re.test(v)) fail(this.at(key), `must be ${what}`);
    return v;
  }

  int(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(this.at(key), `must be an integer from ${min} to ${max}`);
    return v;
  }

  /** A finite number ≥ 0. */
  nonNegative(key: string): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(this.at(key), 'must be a finite number ≥ 0');
    return v;
  }

  bool(key: string): boolean {
    const v = this.obj[key];
    if (typeof v !== 'boolean') fail(this.at(key), 'must be true or false');
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T {
    const v = this.obj[key];
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) fail(this.at(key), `must be one of ${values.join(', ')}`);
    return v as T;
  }

  /** A list of distinct node ids. */
  holders(key: string, minCount: number): string[] {
    return this.ids(key, minCount, COMMAND_LIMITS.holders, 'node');
  }

  /** An array of distinct ids, minCount to maxCount of them. */
  ids(key: string, minCount: number, maxCount: number, what = ''): string[] {
    const v = this.obj[key];
    const field = this.at(key);
    const noun = what ? `${what} ids` : 'ids';
    if (!Array.isArray(v)) fail(field, `must be an array of ${noun}`);
    if (v.length < minCount || v.length > maxCount) fail(field, `must list ${minCount} to ${maxCount} ${what ? `${what}s` : 'ids'}`);
    const seen = new Set<string>();
    v.forEach((h: unknown, i) => {
      if (!isId(h)) fail(joinPath(field, i), `must be ${what ? `a ${what} id` : 'an id'}`);
      if (seen.has(h)) fail(joinPath(field, i), `"${h}" is listed twice`);
      seen.add(h);
    });
    return v.slice() as string[];
  }
}

export function fail(field: string, message: string): never {
  throw new InvalidCommandError([{ field, message }]);
}
