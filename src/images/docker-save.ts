// What a `docker save` tar holds, read from its manifest.json: the images in it, each
// with its config, its layers and the references (RepoTags) it was saved under. This
// is the check that an uploaded body is an image Docker can load, done before it is
// stored: a tar without a manifest, with a manifest naming files it does not
// contain, or with no named image is refused with 400 INVALID_IMAGE.
//
// Both layouts Docker writes carry manifest.json at the top: the legacy one (Docker
// ≤ 24: `<id>/layer.tar`, `<id>.json`) and the OCI one (Docker ≥ 25: `blobs/sha256/…`,
// `index.json`). Shared legacy layers may be symlinks to another image's layer.tar.
import { open } from 'node:fs/promises';
import { InvalidImageError } from './errors.js';
import { isReference, normalizeReference } from './references.js';
import { readMember, TarFormatError, tarMembers, type TarMember } from './tar-index.js';

export const MANIFEST_NAME = 'manifest.json';
const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_IMAGES = 1000;
/** Bounds the member names kept in memory; a docker save tar has a few per layer. */
const MAX_MEMBERS = 200_000;

export { InvalidImageError };

export interface SavedImage {
  config: string;
  layers: string[];
  /** RepoTags, normalized (references.ts); empty for an image saved by id. */
  references: string[];
}

export interface DockerSaveContents {
  images: SavedImage[];
  /** Every image's references, each once, in manifest order. */
  references: string[];
}

/** Reads and checks the manifest of the `docker save` tar at `path`. */
export async function readDockerSave(path: string): Promise<DockerSaveContents> {
  const file = await open(path, 'r');
  try {
    const present = new Set<string>();
    let manifest: TarMember | null = null;
    try {
      for await (const m of tarMembers(file)) {
        if (m.type === 'dir' || m.type === 'other') continue;
        if (present.size >= MAX_MEMBERS) throw new InvalidImageError(`the tar has more than ${MAX_MEMBERS} members: not a docker save archive`);
        present.add(m.name);
        if (m.name === MANIFEST_NAME) manifest = m;
      }
      if (manifest === null) throw new InvalidImageError(`the tar has no ${MANIFEST_NAME}: send the output of docker save`);
      return parseManifest(await readMember(file, manifest, MAX_MANIFEST_BYTES), present);
    } catch (err) {
      if (err instanceof TarFormatError) throw new InvalidImageError(`not a tar archive from docker save: ${err.message}`);
      throw err;
    }
  } finally {
    await file.close();
  }
}

/** Checks manifest.json against the tar's member names (`present`). */
export function parseManifest(bytes: Buffer, present: ReadonlySet<string>): DockerSaveContents {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new InvalidImageError(`${MANIFEST_NAME} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!Array.isArray(doc) || doc.length === 0 || doc.length > MAX_IMAGES) {
    throw new InvalidImageError(`${MANIFEST_NAME} must be a list of 1 to ${MAX_IMAGES} images`);
  }
  const member = (value: unknown, where: string): string => {
    if (typeof value !== 'string' || value === '') throw new InvalidImageError(`${MANIFEST_NAME}: ${where} must be a file name`);
    if (!present.has(value)) throw new InvalidImageError(`${MANIFEST_NAME}: ${where} names ${value}, which the tar does not contain`);
    return value;
  };
  const images = doc.map((entry: unknown, i): SavedImage => {
    const at = `image ${i}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new InvalidImageError(`${MANIFEST_NAME}: ${at} is not an object`);
    const e = entry as Record<string, unknown>;
    const config = member(e.Config, `${at} Config`);
    if (!Array.isArray(e.Layers)) throw new InvalidImageError(`${MANIFEST_NAME}: ${at} Layers must be a list`);
    const layers = e.Layers.map((l: unknown, j) => member(l, `${at} Layers[${j}]`));
    const tags = e.RepoTags ?? [];
    if (!Array.isArray(tags)) throw new InvalidImageError(`${MANIFEST_NAME}: ${at} RepoTags must be a list or null`);
    const references = tags.map((tag: unknown, j) => {
      const ref = typeof tag === 'string' ? normalizeReference(tag) : '';
      if (!isReference(ref)) throw new InvalidImageError(`${MANIFEST_NAME}: ${at} RepoTags[${j}] is not an image reference: ${JSON.stringify(tag)}`);
      return ref;
    });
    return { config, layers, references };
  });
  const references = [...new Set(images.flatMap((img) => img.references))];
  if (references.length === 0) {
    throw new InvalidImageError('the images in this tar have no name (RepoTags): save them by reference, e.g. docker save repo:tag > image.tar');
  }
  return { images, references };
}
