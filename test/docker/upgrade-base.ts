// The earlier build the upgrade tests start from, and how they get its executable.
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The last commit whose build carries no protocol version: it speaks protocol version
 * 1 and announces no build to the others. A cluster of it is what a real upgrade to
 * cluster versions starts from, so the tests upgrade from it.
 */
export const UPGRADE_BASE_COMMIT = 'b200c2621d32b0e702cc12beeaef96f55fcef28c';

/**
 * Builds `commit`'s executable with scripts/build-at.mjs (kept in .cache/build-at/ once
 * built: a second call only copies it) and returns `out`. A failure says why, with the
 * script's own message (e.g. a shallow clone that lacks the commit).
 */
export async function buildAt(commit: string, out: string): Promise<string> {
  try {
    await promisify(execFile)(process.execPath, [join(root, 'scripts/build-at.mjs'), commit, out], { cwd: root, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    const why = typeof stderr === 'string' ? stderr.trim().split('\n').slice(-5).join('\n') : String(err);
    throw new Error(`building ${commit} with scripts/build-at.mjs failed:\n${why}`, { cause: err });
  }
  return out;
}
