// What applying a command returns. The same on every node: it is part of the
// replicated state (the dedupe table caches it) and goes back to the proposer.

/** Why a command was applied as a no-op. Stable: the HTTP layer maps them to statuses. */
export type RejectCode =
  | 'JOB_NOT_FOUND'
  | 'JOB_EXISTS'
  | 'JOB_FINISHED'
  | 'STALE_EPOCH'
  | 'NODE_UNKNOWN'
  | 'NODE_NOT_ALIVE'
  | 'NODE_LEFT'
  | 'NODE_FULL'
  | 'CHECKPOINT_UNKNOWN'
  | 'CHECKPOINT_OUT_OF_ORDER'
  | 'BLOB_UNKNOWN'
  | 'BLOB_CONFLICT'
  | 'STALE_REQUEST'
  | 'INVALID_COMMAND'
  /** submitJob with `maxPending`: that many jobs are pending already. */
  | 'TOO_MANY_PENDING'
  /** blobAdded of an image with `replace: false`: a reference it names already names another image. */
  | 'IMAGE_EXISTS'
  /** aclBootstrap once the first admin token was made. */
  | 'ACL_BOOTSTRAPPED'
  | 'TOKEN_EXISTS'
  | 'TOKEN_UNKNOWN'
  | 'TOO_MANY_TOKENS'
  /** submitJob with a name a pending or running job has. */
  | 'NAME_IN_USE'
  /** assignJob to a node being drained. */
  | 'NODE_DRAINING'
  /** setClusterVersion to a version the cluster runs at already, or below it. */
  | 'VERSION_NOT_RAISED';

export type ApplyValue = { readonly [key: string]: string | number | boolean | null | readonly string[] };

/** A rejected command changed nothing (except the dedupe table). `value` is always present on success. */
export type ApplyResult = { ok: true; value: ApplyValue } | { ok: false; code: RejectCode; message: string };

export function accepted(value: ApplyValue): ApplyResult {
  return { ok: true, value };
}

export function rejected(code: RejectCode, message: string): ApplyResult {
  return { ok: false, code, message };
}
