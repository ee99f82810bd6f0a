// Images in the cluster, for one node. Importing: a `docker save` tar is checked,
// stored as one content-addressed blob of kind 'image', copied to `replicas` nodes,
// and only then recorded (blobAdded with the references it provides), so an
// acknowledged import survives the loss of a box. Loading on demand: when a job
// needs an image this node's engine lacks, the blob that provides it is fetched from
// a holder and streamed to `docker load` (src/worker/docker-images.ts); this node
// then counts as a holder too.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { BlobStore } from '../blobs/index.js';
import { HttpError } from '../api/http.js';
import { WorkrsError } from '../errors.js';
import { COMMAND_LIMITS, type Command } from '../state/commands.js';
import type { BlobRecord } from '../state/records.js';
import type { ApplyResult } from '../state/result.js';
import { InvalidImageError, readDockerSave } from './docker-save.js';
import { findImageBlob, imageRows, isReservedReference, RESERVED_NAMESPACE, type ImageView } from './references.js';

export interface ClusterImagesOptions {
  nodeId: string;
  blobs: BlobStore;
  /** The replicated blobs table as this node has applied it. */
  table: () => ReadonlyMap<string, Readonly<BlobRecord>>;
  /** Asks up to `count` other nodes to pull the blob from this one; those that hold it. */
  replicate: (blobId: string, count: number) => Promise<string[]>;
  /** Copies before an import is acknowledged, this node's included. */
  replicas: number;
  /** Resolves once this node has applied everything committed before the call (a linearizable read). */
  readBarrier: () => Promise<void>;
  /** Pulls a blob from its holders unless this node has it. */
  ensureBlob: (blobId: string) => Promise<void>;
  propose: (cmd: Command) => Promise<ApplyResult>;
  logger: Logger;
}

/** The answer to POST /v1/images. */
export interface ImportResult {
  /** The references the tar provides, normalized; each now names this blob. */
  images: string[];
  blob: string;
  bytes: number;
  holders: string[];
}

/** 403 IMAGE_RESERVED: the tar names an image of the nodes' own build (references.ts RESERVED_NAMESPACE). */
export class ImageReservedError extends HttpError {
  constructor(references: string[]) {
    super(403, 'IMAGE_RESERVED', `${references.join(', ')}: references under ${RESERVED_NAMESPACE} name the images every node builds for itself; no import may provide them, with replace or not. Save the image under another name`);
    this.name = 'ImageReservedError';
  }
}

/** 409 IMAGE_EXISTS: an import without replace names a reference that names other bytes. */
export class ImageExistsError extends HttpError {
  constructor(message: string) {
    super(409, 'IMAGE_EXISTS', `${message}. Import with replace (POST /v1/images?replace=1, workrs images import --replace) to move the name to this image`);
    this.name = 'ImageExistsError';
  }
}

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
    const { blobs, nodeId } = this.opts;
    const contents = await readDockerSave(path);
    const reserved = contents.references.filter(isReservedReference);
    if (reserved.length > 0) throw new ImageReservedError(reserved);
    const name = contents.references.join(' ');
    if (Buffer.byteLength(name) > COMMAND_LIMITS.nameBytes) {
      throw new InvalidImageError(`the tar names ${contents.references.length} references (${Buffer.byteLength(name)} bytes); at most ${COMMAND_LIMITS.nameBytes} bytes of references per import`);
    }
    const started = performance.now();
    const put = await blobs.putStream(createReadStream(path), 'image');
    if (!opts.replace) {
      // Refuse before copying to other nodes (the bytes stored here go with the blob gc).
      await this.opts.readBarrier();
      const taken = contents.references.map((ref) => ({ ref, blob: findImageBlob(this.opts.table(), ref) })).filter((t) => t.blob !== null && t.blob.id !== put.id);
      if (taken.length > 0) throw new ImageExistsError(`${taken.map((t) => `${t.ref} names image ${t.blob?.id}`).join(', ')}; without replace a reference keeps its image`);
    }
    const holders = [nodeId, ...(await this.opts.replicate(put.id, this.opts.replicas - 1))];
    const r = await this.opts.propose({ type: 'blobAdded', id: put.id, kind: 'image', bytes: put.bytes, holders, name, replace: opts.replace });
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
    const { nodeId, blobs } = this.opts;
    const fields = { image: ref, blob: blob.id, bytes: blob.bytes, holders: blob.holders };
    if (!(await blobs.has(blob.id, { verify: false }))) {
      this.log.info(fields, 'fetching an imported image from its holders');
      await this.opts.ensureBlob(blob.id);
    }
    if (!blob.holders.includes(nodeId)) {
      // Best effort: one more holder for the scheduler and for other nodes to fetch from.
      const r = await this.opts.propose({ type: 'blobAdded', id: blob.id, kind: 'image', bytes: blob.bytes, holders: [nodeId] }).catch((err: unknown) => {
        this.log.warn({ ...fields, err }, 'cannot record this node as a holder of the image');
        return null;
      });
      if (r !== null && !r.ok) this.log.warn({ ...fields, code: r.code }, 'recording this node as a holder of the image was refused');
    }
    return blobs.readStream(blob.id);
  }
}
