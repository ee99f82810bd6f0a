// A checkpoint's filesystem snapshot without the layers of the job's own image.
//
// `docker commit` at a checkpoint makes an image of the job's image plus one layer of
// what the job changed; `docker save` of it carries every layer, so a Python job's
// bundle would hold the ~100 MB Python image at every checkpoint, to be chunked,
// copied to the first holder and unpacked again by `docker load` at each restore.
// The restoring engine has (or loads, src/worker/docker-images.ts) the job's image
// anyway, and `docker load` only reads the file of a layer it does not already have
// (moby image/tarexport: a layer whose chain id exists is not loaded again). So the
// base layers' layer.tar files are dropped here, and the restore makes sure the base
// image is present first.
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extractTar, safeRelativeName } from '../util/tar-extract.js';
import { tarStream, type TarEntry } from './tar-pack.js';

interface SavedManifest {
  Config: string;
  Layers: string[];
}

async function entriesUnder(dir: string, rel = ''): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  const list = await readdir(join(dir, rel), { withFileTypes: true });
  for (const e of list.sort((a, b) => a.name.localeCompare(b.name))) {
    const name = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push({ kind: 'dir', name, mode: 0o755 }, ...(await entriesUnder(dir, name)));
    else if (e.isFile()) out.push({ kind: 'file', name, mode: 0o644, sourcePath: join(dir, name) });
  }
  return out;
}

/**
 * Rewrites the `docker save` tar at `savedPath` into `outPath` without the layer files
 * of the first layers that equal `baseDiffIds` (the job image's RootFS.Layers), using
 * `workDir` (removed after). Returns how many layers it left out: 0 when the snapshot
 * does not start with the base layers (the whole tar is kept then).
 */
export async function slimSavedImage(savedPath: string, outPath: string, baseDiffIds: readonly string[], workDir: string): Promise<number> {
  try {
    await extractTar(createReadStream(savedPath), workDir);
    const manifests = JSON.parse(await readFile(join(workDir, 'manifest.json'), 'utf8')) as SavedManifest[];
    const [m] = manifests;
    if (manifests.length !== 1 || !m || typeof m.Config !== 'string' || !Array.isArray(m.Layers)) throw new Error('docker save wrote a manifest.json of an unexpected shape');
    const configPath = safeRelativeName(m.Config);
    if (configPath === null) throw new Error(`manifest.json names an unsafe config path ${m.Config}`);
    const config = JSON.parse(await readFile(join(workDir, configPath), 'utf8')) as { rootfs?: { diff_ids?: unknown } };
    const diffIds = Array.isArray(config.rootfs?.diff_ids) ? (config.rootfs.diff_ids as unknown[]) : [];
    let omit = 0;
    while (omit < baseDiffIds.length && omit < m.Layers.length - 1 && diffIds[omit] === baseDiffIds[omit]) omit++;
    if (omit < baseDiffIds.length) omit = 0; // not built on the base image as we know it: keep everything
    for (const layer of m.Layers.slice(0, omit)) {
      const rel = safeRelativeName(layer);
      if (rel !== null) await rm(join(workDir, rel), { force: true });
    }
    await pipeline(tarStream(await entriesUnder(workDir)), createWriteStream(outPath));
    return omit;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
