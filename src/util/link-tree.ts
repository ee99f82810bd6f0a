// A folder of files another party reads but never changes (CRIU images) given a second
// name without copying its bytes: each file hard-linked into the new folder, copied
// only where a link cannot be made (another filesystem, one without hard links). At a
// few hundred MB of memory pages the copy was seconds of a checkpoint and of a restore.
import { copyFile, link, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from './errno.js';

/** Errors of rename and link that a copy gets around: another filesystem (or a mount point in between), links not supported or too many. */
export const COPY_INSTEAD = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

/**
 * Makes `dest` (which must not exist) hold the files and folders of `src`: regular
 * files hard-linked (or copied), folders made anew, names `skip` accepts left out.
 * Anything else (links, devices) is refused: an image folder holds none.
 */
export async function linkTree(src: string, dest: string, skip?: (name: string) => boolean): Promise<void> {
  await mkdir(dest);
  for (const entry of await readdir(src, { withFileTypes: true })) {
    if (skip?.(entry.name) === true) continue;
    const from = join(src, entry.name);
    const to = join(dest, entry.name);
    if (entry.isDirectory()) await linkTree(from, to, skip);
    else if (entry.isFile()) await linkOrCopy(from, to);
    else throw new Error(`${from} is neither a file nor a folder: not linked`);
  }
}

/** Hard-links `from` as `to`, or copies it where a link cannot be made. */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    if (!COPY_INSTEAD.has(errnoOf(err) ?? '')) throw err;
    await copyFile(from, to);
  }
}
