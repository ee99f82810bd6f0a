import { WorkrsError } from '../errors.js';

/** No manifest for this blob id in the store. */
export class BlobNotFoundError extends WorkrsError {
  constructor(readonly blobId: string) {
    super('BLOB_NOT_FOUND', 404, `blob ${blobId} is not in this node's store`);
    this.name = 'BlobNotFoundError';
  }
}

/** The manifest is here but some chunks are not: fetch the blob from a holder first. */
export class BlobIncompleteError extends WorkrsError {
  constructor(
    readonly blobId: string,
    readonly missingHashes: string[],
    readonly totalChunks: number,
  ) {
    const first = missingHashes[0] ?? '?';
    super('BLOB_INCOMPLETE', 409, `blob ${blobId} is incomplete: ${missingHashes.length} of ${totalChunks} chunks missing (first: ${first}); fetch it from a holder first`);
    this.name = 'BlobIncompleteError';
  }
}

/** Stored or received bytes do not hash to their address. */
export class BlobCorruptError extends WorkrsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BLOB_CORRUPT', 500, message, options);
    this.name = 'BlobCorruptError';
  }
}

/** A manifest that does not parse into a valid blob description. */
export class BlobManifestError extends WorkrsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BLOB_BAD_MANIFEST', 400, message, options);
    this.name = 'BlobManifestError';
  }
}

/** Something in a folder put that a blob cannot carry (symlink, device, socket). */
export class BlobUnsupportedFileError extends WorkrsError {
  constructor(readonly path: string, what: string) {
    super('BLOB_UNSUPPORTED_FILE', 400, `${path}: ${what} cannot be stored in a blob (regular files and directories only)`);
    this.name = 'BlobUnsupportedFileError';
  }
}

/** A fetch from peers that did not end with the whole blob. */
export class BlobFetchError extends WorkrsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BLOB_FETCH_FAILED', 502, message, options);
    this.name = 'BlobFetchError';
  }
}
