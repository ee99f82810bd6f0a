// Images in the cluster, for one node. Importing: a `docker save` tar is checked,
// stored as one content-addressed blob of kind 'image', copied to k nodes (src/blobs/replicated.ts),
// and only then recorded (blobAdded with the references it provides), so an
// acknowledged import survives the loss of a box. Loading on demand: when a job
// needs an image this node's engine lacks, the blob that provides it is fetched from
// a holder and streamed to `docker load` (src/worker/docker-images.ts); this node
// then counts as a holder too.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { ReplicatedBlobs } from '../blobs/replicated.js';
import { WorkrsError } from '../errors.js';
import { COMMAND_LIMITS } from '../state/commands.js';
import type { BlobRecord } from '../state/records.js';
import { readDockerSave } from './docker-save.js';
import { ImageExistsError, ImageReservedError, InvalidImageError } from './errors.js';
import { findImageBlob, imageRows, isReservedReference } from './references.js';
import type { ImageView, ImportResult } from './views.js';

export { ImageExistsError, ImageReservedError };

export interface ClusterImagesOptions {
  nodeId: string;
  /** Stores, copies and registers the image blobs (k copies before an import is acknowledged). */
  blobs: Pick<ReplicatedBlobs, 'putFile' | 'ensure' | 'recordHolder' | 'readStream'>;
  /** The replicated blobs table as this node has applied it. */
  table: () => ReadonlyMap<string, Readonly<BlobRecord>>;
  /** Resolves once this node has applied everything committed before the call (a linearizable read). */
  readBarrier: () => Promise<void>;
  logger: Logger;
}

export type { ImportResult } from './views.js';

export class ClusterImages {
  private readonly opts: ClusterImagesOptions;
  private readonly log: Logger;

  constructor(opts: ClusterImagesOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'images' });
  }

  /**
   * Imports the tar at `path` (the caller removes the file). Importing the same bytes
   * again gives the same blob. Without `replace`, a reference that names other bytes
   * refuses the import (IMAGE_EXISTS): checked here before the copies are made, and
   * decided by the state machine in log order, so two racing imports cannot both
   * take a name. References of the nodes' own images are refused (IMAGE_RESERVED)
   * before anything is stored.
   */
  async importTar(path: string, opts: { replace: boolean } = { replace: false }): Promise<ImportResult> {
    const contents = await readDockerSave(path);
    const reserved = contents.references.filter(isReservedReference);
    if (reserved.length > 0) throw new ImageReservedError(reserved);
    const name = contents.references.join(' ');
    if (Buffer.byteLength(name) > COMMAND_LIMITS.nameBytes) {
      throw new InvalidImageError(`the tar names ${contents.references.length} references (${Buffer.byteLength(name)} bytes); at most ${COMMAND_LIMITS.nameBytes} bytes of references per import`);
    }
    const started = performance.now();
    // Without replace, refused before copying to other nodes (the bytes stored here go with the blob gc).
    const beforeCopies = opts.replace
      ? undefined
      : async (put: { id: string }): Promise<void> => {
          await this.opts.readBarrier();
          const taken = contents.references.map((ref) => ({ ref, blob: findImageBlob(this.opts.table(), ref) })).filter((t) => t.blob !== null && t.blob.id !== put.id);
          if (taken.length > 0) throw new ImageExistsError(`${taken.map((t) => `${t.ref} names image ${t.blob?.id}`).join(', ')}; without replace a reference keeps its image`);
        };
    const { blob: put, registered: r } = await this.opts.blobs.putFile(path, 'image', { name, replace: opts.replace, ...(beforeCopies ? { beforeCopies } : {}) });
    const { holders } = put;
    if (!r.ok && r.code === 'IMAGE_EXISTS') throw new ImageExistsError(r.message);
    if (!r.ok) throw new WorkrsError(r.code, 409, r.message);
    // The holders after the merge with earlier imports of the same bytes.
    const merged = Array.isArray(r.value.holders) ? (r.value.holders as string[]) : holders;
    const result = { images: contents.references, blob: put.id, bytes: put.bytes, holders: merged };
    this.log.info({ ...result, newBytes: put.newBytes, durationMs: Math.round(performance.now() - started) }, 'image imported');
    return result;
  }

  list(): ImageView[] {
    return imageRows(this.opts.table());
  }

  /**
   * A `docker save` stream providing `ref`, fetched from a holder if this node lacks
   * the blob; null when no import provides `ref`. A holder that cannot be reached
   * throws (the caller tries again later: the blob exists, its holders may return).
   */
  async open(ref: string): Promise<Readable | null> {
    const blob = findImageBlob(this.opts.table(), ref);
    if (blob === null) return null;
    const fields = { image: ref, blob: blob.id, bytes: blob.bytes, holders: blob.holders };
    // Pulled from a holder unless here; then this node counts as one more holder, for
    // the scheduler and for other nodes to fetch from (best effort).
    if (await this.opts.blobs.ensure(blob.id)) this.log.info(fields, 'fetched an imported image from its holders');
    if (!blob.holders.includes(this.opts.nodeId)) await this.opts.blobs.recordHolder(blob.id);
    return this.opts.blobs.readStream(blob.id);
  }
}
