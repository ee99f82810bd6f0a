// Image references as the cluster keeps them, and the two reads of the replicated
// blobs table the rest of the node needs: which imported blob provides a reference
// (a node loading an image on demand) and the list GET /v1/images shows.
//
// References are stored normalized, so that a job's `image: busybox` finds a tar
// whose manifest says `busybox:latest`, and `docker.io/library/busybox:latest` too.
import { imageReferences, type BlobRecord } from '../state/records.js';
import type { ImageView } from './views.js';

/** What a stored reference may look like: as a job spec's image, without a digest. */
const REFERENCE = /^[A-Za-z0-9][A-Za-z0-9._/:-]*$/;
export const MAX_REFERENCE_BYTES = 255;

/** Docker Hub's names for its own images, dropped as `docker images` shows them. */
const HUB_PREFIXES = ['docker.io/library/', 'index.docker.io/library/', 'docker.io/', 'index.docker.io/'];

/**
 * The repository namespace of the images every node builds into its own engine
 * (`make setup`: the default job image workrs/busybox:1, workrs/python:3). A node
 * uses its engine's copy and loads an import only when its engine lacks the
 * reference, so an import under one of these names would run in place of the real
 * image wherever that copy is missing. No import may use it.
 */
export const RESERVED_NAMESPACE = 'workrs/';

/** Whether `ref` (normalized or not) names an image of the nodes' own build, which no import may provide. */
export function isReservedReference(ref: string): boolean {
  return normalizeReference(ref).startsWith(RESERVED_NAMESPACE);
}

/** Whether `ref` can be stored as an image reference (the caller normalizes it first or after). */
export function isReference(ref: string): boolean {
  return Buffer.byteLength(ref) <= MAX_REFERENCE_BYTES && REFERENCE.test(ref);
}

/**
 * The familiar form Docker shows: Docker Hub prefixes dropped, `:latest` added when
 * the reference has no tag (the last path component has no `:`). A digest reference
 * is returned as is: `docker save` never names images by digest.
 */
export function normalizeReference(ref: string): string {
  let r = ref;
  const hub = HUB_PREFIXES.find((p) => r.startsWith(p));
  if (hub !== undefined) r = r.slice(hub.length);
  if (r.includes('@')) return r;
  const last = r.slice(r.lastIndexOf('/') + 1);
  return last.includes(':') ? r : `${r}:latest`;
}

/** The image blob that provides `ref` now (at most one does: src/state's blobAdded), or null. */
export function findImageBlob(blobs: ReadonlyMap<string, Readonly<BlobRecord>>, ref: string): Readonly<BlobRecord> | null {
  const wanted = normalizeReference(ref);
  for (const blob of blobs.values()) {
    if (blob.kind === 'image' && imageReferences(blob.name).includes(wanted)) return blob;
  }
  return null;
}

export type { ImageView } from './views.js';

/**
 * One row per reference, sorted by reference, then one row per image blob that
 * provides none any more (name null, oldest first): it still takes disk space on its
 * holders until it is garbage-collected.
 */
export function imageRows(blobs: ReadonlyMap<string, Readonly<BlobRecord>>): ImageView[] {
  const named: ImageView[] = [];
  const unnamed: ImageView[] = [];
  for (const blob of blobs.values()) {
    if (blob.kind !== 'image') continue;
    const row = { blob: blob.id, bytes: blob.bytes, holders: blob.holders.slice(), addedAt: blob.addedAt };
    const refs = imageReferences(blob.name);
    if (refs.length === 0) unnamed.push({ name: null, ...row });
    for (const name of refs) named.push({ name, ...row, holders: row.holders.slice() });
  }
  named.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : 1));
  return [...named, ...unnamed];
}
