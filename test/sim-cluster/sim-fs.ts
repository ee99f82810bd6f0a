import fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';

/**
 * On simulated time nothing may wait on the real disk: a promise that settles when
 * the thread pool is done lands at an arbitrary point of the simulation, and two such
 * promises can settle in either order. The code under test uses node:fs/promises for
 * scratch folders (staging, restores, result archives). In the simulator's process
 * those calls run synchronously and return settled promises, so they complete at the
 * instant they are made, in program order: the run stays a function of its seed.
 * Named imports of a builtin are live bindings, so modules that imported them before
 * this ran see the synchronous versions too (syncBuiltinESMExports).
 */
const SYNC_CALLS = [
  'access', 'appendFile', 'chmod', 'copyFile', 'cp', 'lstat', 'mkdir', 'mkdtemp', 'readdir', 'readFile',
  'readlink', 'realpath', 'rename', 'rm', 'rmdir', 'stat', 'symlink', 'truncate', 'unlink', 'utimes', 'writeFile',
] as const;

let installed = false;

export function makeFsPromisesSynchronous(): void {
  if (installed) return;
  installed = true;
  const require = createRequire(import.meta.url);
  const promises = require('node:fs/promises') as Record<string, unknown>;
  const sync = fs as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of SYNC_CALLS) {
    const syncCall = sync[`${name}Sync`];
    if (typeof syncCall !== 'function') continue;
    promises[name] = (...args: unknown[]): Promise<unknown> => {
      try {
        return Promise.resolve(syncCall(...args));
      } catch (err) {
        return Promise.reject(err);
      }
    };
  }
  syncBuiltinESMExports();
}
