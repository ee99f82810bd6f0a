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
import { WorkrsError } from '../errors.js';
import { COMMAND_LIMITS, type Command } from '../state/commands.js';
import type { BlobRecord } from '../state/records.js';
import type { ApplyResult } from '../state/result.js';
import { InvalidImageError, readDockerSave } from './docker-save.js';
import { findImageBlob, imageRows, type ImageView } from './references.js';

export interface ClusterImagesOptions {
  nodeId: string;
  blobs: BlobStore;
  /** The replicated blobs table as this node has applied it. */
  table: () => ReadonlyMap<string, Readonly<BlobRecord>>;
  /** Asks up to `count` other nodes to pull the blob from this one; those that hold it. */
  replicate: (blobId: string, count: number) => Promise<string[]>;
  /** Copies before an import is acknowledged, this node's included. */
  replicas: number;
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

export class ClusterImages {
  private readonly opts: ClusterImagesOptions;
  private readonly log: Logger;

  constructor(opts: ClusterImagesOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'images' });
  }

  /** Imports the tar at `path` (the caller removes the file). Importing the same bytes again gives the same blob. */
  async importTar(path: string): Promise<ImportResult> {
    const { blobs, nodeId } = this.opts;
    const contents = await readDockerSave(path);
    const name = contents.references.join(' ');
    if (Buffer.byteLength(name) > COMMAND_LIMITS.nameBytes) {
      throw new InvalidImageError(`the tar names ${contents.references.length} references (${Buffer.byteLength(name)} bytes); at most ${COMMAND_LIMITS.nameBytes} bytes of references per import`);
    }
    const started = performance.now();
    const put = await blobs.putStream(createReadStream(path), 'image');
    const holders = [nodeId, ...(await this.opts.replicate(put.id, this.opts.replicas - 1))];
    const r = await this.opts.propose({ type: 'blobAdded', id: put.id, kind: 'image', bytes: put.bytes, holders, name });
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
