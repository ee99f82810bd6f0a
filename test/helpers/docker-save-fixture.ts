// `docker save`-shaped tars for the tests that must not need Docker: a manifest.json
// naming, per image, a config file and layer tars (legacy layout), written with the
// repo's own tar writer. Options break them in the ways an upload can be wrong.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { tarStream, type TarEntry } from '../../src/worker/tar-pack.js';

export interface FixtureImage {
  /** RepoTags; null as docker writes for an image saved by id. */
  tags: string[] | null;
  /** Content of the image's one layer. */
  layer: Buffer;
  /** Where the layer goes in the tar (default `<id>/layer.tar`). */
  layerPath?: string;
}

export interface FixtureOptions {
  /** manifest.json's text instead of the generated one; null leaves manifest.json out. */
  manifest?: string | null;
  /** Leave the layer files out (the manifest still names them). */
  omitLayers?: boolean;
}

/** Writes a docker-save-like tar to `out`; returns the manifest it wrote. */
export async function writeDockerSaveTar(out: string, images: FixtureImage[], opts: FixtureOptions = {}): Promise<unknown[]> {
  const work = await mkdtemp(`${out}.parts-`);
  try {
    const entries: TarEntry[] = [];
    const manifest: unknown[] = [];
    for (const [i, img] of images.entries()) {
      const id = createHash('sha256').update(img.layer).update(String(i)).digest('hex');
      const config = `${id}.json`;
      const layerPath = img.layerPath ?? `${id}/layer.tar`;
      await writeFile(join(work, `config-${i}`), JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
      await writeFile(join(work, `layer-${i}`), img.layer);
      entries.push({ kind: 'file', name: config, mode: 0o644, sourcePath: join(work, `config-${i}`) });
      if (!opts.omitLayers) {
        const dir = layerPath.slice(0, layerPath.lastIndexOf('/'));
        if (dir !== '') entries.push({ kind: 'dir', name: dir, mode: 0o755 });
        entries.push({ kind: 'file', name: layerPath, mode: 0o644, sourcePath: join(work, `layer-${i}`) });
      }
      manifest.push({ Config: config, RepoTags: img.tags, Layers: [layerPath] });
    }
    if (opts.manifest !== null) {
      await writeFile(join(work, 'manifest'), opts.manifest ?? JSON.stringify(manifest));
      entries.push({ kind: 'file', name: 'manifest.json', mode: 0o644, sourcePath: join(work, 'manifest') });
    }
    await mkdir(join(out, '..'), { recursive: true });
    // A fixed time in the headers: the same images give the same bytes whenever they are
    // written (the wall clock's second changing between two writes made them differ).
    await pipeline(tarStream(entries, { now: () => 0 }), createWriteStream(out));
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Bytes that differ from one call (seed) to another and do not compress away. */
export function layerBytes(seed: string, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < bytes; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}
