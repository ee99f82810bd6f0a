// The end of a job's log as a file, for results and checkpoint bundles: what a
// resumed attempt inherited, then what its container printed, cut to its last
// `keepBytes` bytes. Streamed through a file beside the target, never held in memory.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Opens one piece of the log when its turn comes; null when there is none. */
export type LogPart = () => Promise<Readable | null>;

/**
 * Writes the pieces one after the other to `path`, keeping their last `keepBytes`
 * bytes; returns the bytes kept. The disk holds the whole of them once, for a moment:
 * each piece is bounded (a rotated container log, a tail kept before).
 */
export async function writeLogTail(parts: readonly LogPart[], path: string, keepBytes: number): Promise<number> {
  if (!Number.isSafeInteger(keepBytes) || keepBytes < 0) throw new Error(`writeLogTail: keepBytes must be a whole number >= 0, got ${keepBytes}`);
  const whole = `${path}.whole`;
  try {
    await writeFile(whole, '');
    for (const open of parts) {
      const part = await open();
      if (part !== null) await pipeline(part, createWriteStream(whole, { flags: 'a' }));
    }
    const sizeBytes = (await stat(whole)).size;
    if (sizeBytes <= keepBytes) {
      await rename(whole, path);
      return sizeBytes;
    }
    if (keepBytes === 0) await writeFile(path, '');
    else await pipeline(createReadStream(whole, { start: sizeBytes - keepBytes }), createWriteStream(path));
    return keepBytes;
  } finally {
    await rm(whole, { force: true });
  }
}

/** A file's bytes `[0, endBytes)` as a stream, or null when the file does not exist. */
export async function openFileHead(path: string, endBytes = Infinity): Promise<Readable | null> {
  try {
    await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (endBytes <= 0) return null;
  return createReadStream(path, Number.isFinite(endBytes) ? { end: endBytes - 1 } : {});
}
