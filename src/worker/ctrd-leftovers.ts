// containerd 1.6 unpacks every checkpoint it restores from into a fresh
// `ctrd-checkpoint*` folder under its $XDG_RUNTIME_DIR, else the temp folder, and never
// removes it (docs/host.md): each restore would leave a full copy of the job's memory on
// disk. Several engines and restores may share this folder, so only the copies of the
// checkpoint we restored are removed: the ones whose files are the same as ours.
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RESTORE_NONCE_FILE } from './docker-checkpoint.js';
import { PAGES_IMAGE } from './pages-by-reference.js';

export const LEFTOVER_PREFIX = 'ctrd-checkpoint';

/** Small files are compared by content, large ones by size only. */
const HASHED_MAX_BYTES = 64 * 1024;

export function leftoverFolders(): string[] {
  const candidates = [process.env.XDG_RUNTIME_DIR, tmpdir(), '/tmp'];
  return [...new Set(candidates.filter((d): d is string => typeof d === 'string' && d !== ''))];
}

/**
 * Names, sizes and small files' contents of a flat CRIU image folder, as one digest.
 * The nonce a start adds (startFromCheckpoint) is left out: the copy containerd made
 * has one, the bundle's folder it is compared with does not. Memory page images count
 * by name alone: in containerd's copy they may be links to the bundle's files
 * (pages-by-reference.ts).
 */
export async function checkpointFingerprint(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const entries = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.name !== RESTORE_NONCE_FILE)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (PAGES_IMAGE.test(entry.name)) {
      hash.update(`${entry.name}\0pages\0`);
      continue;
    }
    const sizeBytes = entry.isFile() ? (await stat(path)).size : -1;
    hash.update(`${entry.name}\0${sizeBytes}\0`);
    if (sizeBytes >= 0 && sizeBytes <= HASHED_MAX_BYTES) hash.update(await readFile(path));
  }
  return hash.digest('hex');
}

/**
 * Removes the `ctrd-checkpoint*` copies of the CRIU images in folder `checkpoint` (or
 * of the images with this checkpointFingerprint) from `folders`; returns the paths removed.
 */
export async function removeCheckpointLeftovers(checkpoint: string | { fingerprint: string }, folders: readonly string[] = leftoverFolders()): Promise<string[]> {
  const ours = typeof checkpoint === 'string' ? await checkpointFingerprint(checkpoint) : checkpoint.fingerprint;
  const removed: string[] = [];
  for (const folder of folders) {
    let names: string[];
    try {
      names = await readdir(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Error(`cannot list ${folder} for containerd's checkpoint copies`, { cause: err });
    }
    for (const name of names.filter((n) => n.startsWith(LEFTOVER_PREFIX))) {
      const path = join(folder, name);
      let theirs: string;
      try {
        if (!(await stat(path)).isDirectory()) continue;
        theirs = await checkpointFingerprint(path);
      } catch (err) {
        // Another restore's copy may vanish (or still be written) while we look: not ours.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if (theirs !== ours) continue;
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}
