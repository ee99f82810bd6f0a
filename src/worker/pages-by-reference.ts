// A restore's memory pages read where the node keeps them, not through Docker's copies.
//
// `docker start --checkpoint` tars the engine's checkpoint folder into containerd's
// content store, and containerd unpacks that tar into a folder of its own for CRIU:
// the job's memory is written twice before CRIU reads it once. At 500 MB that was 8 of
// the 10 seconds of a raw restore here (CRIU's own restore log: 2 s). So the memory page
// images (pages-N.img, nearly all of a checkpoint's bytes) go into the engine's folder
// as symbolic links to the bundle's files: both copies are then a few kilobytes, and
// CRIU opens the links in containerd's folder and reads the pages from the bundle.
//
// CRIU opens a page image after the restored task moved into the container's root,
// where an absolute path names the container's own files (such a link fails). A link
// of the form `../../…/abs/path` works: resolved from containerd's folder, the climb
// stops at the host's root and descends from there to the bundle's file. Where that
// fails too (containerd in another mount namespace than the node, say), the start
// fails; the restore then puts the files themselves in place, starts again, and stops
// linking on this node (docker-restore.ts startWithPages).
import { lstat, readdir, realpath, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { linkOrCopy } from '../util/link-tree.js';

/** CRIU's memory page images: almost all of a checkpoint's bytes. */
export const PAGES_IMAGE = /^pages-\d+\.img$/;

/** Enough `..` to climb from any folder containerd may unpack into up to the root. */
const CLIMB = '../'.repeat(64);

/** The link text that names `absolute` from any folder of the host, whatever its depth. */
export function referenceFor(absolute: string): string {
  if (!absolute.startsWith('/')) throw new Error(`'${absolute}' is not an absolute path`);
  return CLIMB + absolute.slice(1);
}

/**
 * Makes the page images of `source` (a bundle's CRIU images) links in `target`, in
 * place of any files of those names there; `source` must stay until the start
 * returned. Returns how many links it made.
 */
export async function referencePages(target: string, source: string): Promise<number> {
  const real = await realpath(source);
  let n = 0;
  for (const name of await pageImages(source)) {
    // Only the bundle's own files: a link in a bundle (from another node) could name any
    // file of this host, which CRIU, as root, would read into the job's memory.
    if (!(await lstat(join(real, name))).isFile()) throw new Error(`${join(source, name)} is not a regular file: not linked`);
    const to = join(target, name);
    await rm(to, { force: true });
    await symlink(referenceFor(join(real, name)), to);
    n++;
  }
  return n;
}

/** Puts `source`'s page images back into `target` in place of the links referencePages made; how many. */
export async function unreferencePages(target: string, source: string): Promise<number> {
  let n = 0;
  for (const name of await pageImages(target)) {
    const to = join(target, name);
    if (!(await lstat(to)).isSymbolicLink()) continue;
    await rm(to);
    await linkOrCopy(join(source, name), to);
    n++;
  }
  return n;
}

async function pageImages(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => PAGES_IMAGE.test(name));
}
