// The gateway's staging folder (<data>/uploads): each multipart submission is received
// into a folder of its own (upload-*), each image tar into a file (image-*.tar), and
// both are removed when their request ends. A node killed in the middle of a request
// leaves them behind; since nothing staged outlives the process that received it, a
// starting node removes every one it finds.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Prefix of the folder mkdtemp makes for each multipart submission. */
export const UPLOAD_DIR_PREFIX = 'upload-';
/** Prefix of the file each POST /v1/images body is streamed to. */
export const IMAGE_FILE_PREFIX = 'image-';

/** Creates the folder if needed and removes what an earlier run staged in it; returns the names removed. */
export async function prepareUploadDir(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const leftovers = (await readdir(dir)).filter((name) => name.startsWith(UPLOAD_DIR_PREFIX) || name.startsWith(IMAGE_FILE_PREFIX));
  for (const name of leftovers) await rm(join(dir, name), { recursive: true, force: true });
  return leftovers;
}
