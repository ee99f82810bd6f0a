// Blobs: the node-local content-addressed store and the peer-to-peer bulk transfer
// that moves checkpoints, images, inputs and results between nodes.
export { BlobStore, syncDirs, type BlobStoreOptions, type ByteSource, type GcOptions, type GcResult, type PutResult, type StoreStat, type VerifyOptions } from './store.js';
export { BlobPeer, BULK_PREFIX, type BlobPeerOptions, type BlobPeerStats, type FetchOptions, type FetchProgress, type FetchResult, type PullAnswer } from './peer.js';
export { AUTH_HEADER, BulkVerifier, DEFAULT_MAX_NONCES, DEFAULT_MAX_SKEW_MS, EMPTY_BODY_SHA256, bodyMatches, bodySha256, signBulkRequest, type AuthCheck, type BulkRequestSubject } from './bulk-auth.js';
export { Chunker, DEFAULT_CHUNKING, MAX_CHUNK_BYTES, type ChunkingParams } from './chunker.js';
export { MANIFEST_VERSION, MAX_MANIFEST_BYTES, blobIdOf, isBlobId, isChunkHash, parseManifest, uniqueChunks, type BlobKind, type ChunkRef, type FileEntry, type Manifest } from './manifest.js';
export { BlobCorruptError, BlobFetchError, BlobIncompleteError, BlobManifestError, BlobNotFoundError, BlobUnsupportedFileError } from './errors.js';
