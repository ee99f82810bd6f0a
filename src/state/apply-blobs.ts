// Applying the blob commands and retention: blobs added and their holders, image
// references (one image blob per reference), and forgetting finished jobs and the
// blobs no job needs any more.
import type { Cmd, LiveTables } from './live-tables.js';
import { type BlobRecord, imageReferences, isFinal } from './records.js';
import { accepted, type ApplyResult, rejected } from './result.js';
import { liveBlobs } from './views.js';

/** Adds a blob, or more holders of a known one (content-addressed: same id, same bytes). */
export function blobAdded(live: LiveTables, at: number, cmd: Cmd<'blobAdded'>): ApplyResult {
  const conflict = blobConflict(live, cmd.id, cmd.kind, cmd.bytes);
  if (conflict !== null) return conflict;
  if (cmd.kind === 'image' && cmd.replace === false) {
    const taken = imageReferencesElsewhere(live, cmd.id, imageReferences(cmd.name ?? null));
    if (taken.length > 0) {
      const list = taken.map(([ref, blob]) => `${ref} names image ${blob}`).join(', ');
      return rejected('IMAGE_EXISTS', `${list}; without replace a reference keeps its image`);
    }
  }
  const blob = upsertBlob(live, at, cmd);
  return accepted({ blob: blob.id, holders: blob.holders.slice() });
}

/** Replaces a blob's holders; an empty list forgets the blob (garbage collected everywhere). */
export function blobHolders(live: LiveTables, _at: number, cmd: Cmd<'blobHolders'>): ApplyResult {
  const blob = live.t.blobs.get(cmd.id);
  if (blob === undefined) return rejected('BLOB_UNKNOWN', `blob ${cmd.id} is not known`);
  if (cmd.holders.length === 0) {
    live.t.blobs.delete(cmd.id);
    return accepted({ blob: cmd.id, holders: [] });
  }
  blob.holders = cmd.holders.slice();
  return accepted({ blob: blob.id, holders: blob.holders.slice() });
}

export function forgetJobs(live: LiveTables, _at: number, cmd: Cmd<'forgetJobs'>): ApplyResult {
  const { t } = live;
  const forgotten: string[] = [];
  for (const id of cmd.jobIds) {
    const job = t.jobs.get(id);
    if (job === undefined || !isFinal(job.state) || job.finishedAt === null || job.finishedAt > cmd.finishedBefore) continue;
    t.jobs.delete(id);
    t.attempts.delete(id);
    t.checkpoints.delete(id);
    live.open.delete(id);
    forgotten.push(id);
  }
  if (forgotten.length > 0) live.byOrder = live.byOrder.filter((job) => t.jobs.has(job.id));
  return accepted({ forgotten });
}

export function forgetBlobs(live: LiveTables, _at: number, cmd: Cmd<'forgetBlobs'>): ApplyResult {
  const needed = liveBlobs(live.t);
  const forgotten: string[] = [];
  for (const id of cmd.ids) {
    const blob = live.t.blobs.get(id);
    if (blob === undefined || needed.has(id) || blob.addedAt > cmd.addedBefore) continue;
    live.t.blobs.delete(id);
    forgotten.push(id);
  }
  return accepted({ forgotten });
}

export function blobConflict(live: LiveTables, id: string, kind: BlobRecord['kind'], bytes: number): ApplyResult | null {
  const known = live.t.blobs.get(id);
  if (known === undefined || (known.kind === kind && known.bytes === bytes)) return null;
  return rejected('BLOB_CONFLICT', `blob ${id} is known as a ${known.kind} of ${known.bytes} bytes, not a ${kind} of ${bytes} bytes`);
}

export function upsertBlob(live: LiveTables, at: number, b: { id: string; kind: BlobRecord['kind']; bytes: number; holders: string[]; name?: string }): BlobRecord {
  const known = live.t.blobs.get(b.id);
  let blob: BlobRecord;
  if (known !== undefined) {
    for (const h of b.holders) if (!known.holders.includes(h)) known.holders.push(h);
    if (b.name !== undefined) known.name = b.name;
    // Added again (the same bytes uploaded for a new job): retention must not forget
    // it before the job that will need it is committed.
    if (known.kind !== 'image') known.addedAt = Math.max(known.addedAt, at);
    blob = known;
  } else {
    blob = { id: b.id, kind: b.kind, bytes: b.bytes, holders: b.holders.slice(), name: b.name ?? null, addedAt: at };
    live.t.blobs.set(blob.id, blob);
  }
  if (blob.kind === 'image' && b.name !== undefined) claimImageReferences(live, blob);
  return blob;
}

/** Which of `refs` name an image blob other than `id` now, as [reference, blob id] pairs. */
function imageReferencesElsewhere(live: LiveTables, id: string, refs: readonly string[]): Array<[string, string]> {
  const wanted = new Set(refs);
  const out: Array<[string, string]> = [];
  if (wanted.size === 0) return out;
  for (const other of live.t.blobs.values()) {
    if (other.id === id || other.kind !== 'image') continue;
    for (const ref of imageReferences(other.name)) if (wanted.has(ref)) out.push([ref, other.id]);
  }
  return out;
}

/**
 * A reference names one image blob at a time: the blob whose blobAdded named it
 * last (the newest import wins, as a `docker load` retags). Other image blobs lose
 * it; one left with no reference keeps name null until it is forgotten.
 */
function claimImageReferences(live: LiveTables, owner: BlobRecord): void {
  const claimed = new Set(imageReferences(owner.name));
  if (claimed.size === 0) return;
  for (const other of live.t.blobs.values()) {
    if (other === owner || other.kind !== 'image' || other.name === null) continue;
    const refs = imageReferences(other.name);
    const kept = refs.filter((r) => !claimed.has(r));
    if (kept.length < refs.length) other.name = kept.length > 0 ? kept.join(' ') : null;
  }
}
