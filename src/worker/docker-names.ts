// Names and labels of the Docker objects one attempt of a job owns. Labels carry the
// exact job id and epoch (Docker is the truth about what runs); names are for people
// and for a direct lookup, so they only need to be valid and distinct.
import { createHash } from 'node:crypto';
import type { RunKey } from './runtime.js';

export const LABEL_JOB = 'workrs.job';
export const LABEL_EPOCH = 'workrs.epoch';
export const LABEL_NODE = 'workrs.node';
/** The cluster the node belongs to: node ids are only unique within one cluster. */
export const LABEL_CLUSTER = 'workrs.cluster';
/**
 * On a standby container (docker-standby.ts): made ahead of a takeover from a job's
 * checkpoint, before any epoch exists to label it with. Its value names the checkpoint.
 * Claimed by renaming it to the attempt's name, which then carries the epoch.
 */
export const LABEL_STANDBY = 'workrs.standby';

/** Repository of the images `docker commit` makes at a checkpoint. */
export const SNAPSHOT_REPO_PREFIX = 'workrs-snap/';

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 10);
}

/**
 * `text` reduced to `allowed` characters and at most `maxChars`; when anything had to
 * change, a hash of the original keeps distinct ids distinct.
 */
function safePart(text: string, disallowed: RegExp, maxChars: number): string {
  const cleaned = text.replace(disallowed, '_');
  if (cleaned === text && text.length <= maxChars) return text;
  return `${cleaned.slice(0, maxChars - 11)}_${shortHash(text)}`;
}

/** Container names: [a-zA-Z0-9][a-zA-Z0-9_.-]*; a job id may hold any printable ASCII. */
export function containerName(key: RunKey): string {
  return `workrs-${safePart(key.jobId, /[^a-zA-Z0-9_.-]/g, 128)}-e${key.epoch}`;
}

/**
 * The name of a job's standby container on this engine, before an attempt claims it.
 * It ends in `-standby` where an attempt's ends in `-e<epoch>`: no job's standby can
 * take the name of any attempt, whatever the job ids.
 */
export function standbyName(jobId: string): string {
  return `workrs-${safePart(jobId, /[^a-zA-Z0-9_.-]/g, 128)}-standby`;
}

/** A job id as a folder name under the staging folder. */
export function jobFolderName(jobId: string): string {
  return safePart(jobId, /[^a-zA-Z0-9_.-]/g, 128);
}

/**
 * The snapshot image reference of a checkpoint: `workrs-snap/<job>:e<epoch>-<name>`.
 * Repository components are lowercase letters and digits joined by single `.`, `_`
 * or `-`; tags are up to 128 of [A-Za-z0-9_.-].
 */
export function snapshotImageRef(key: RunKey, checkpointName: string): { repo: string; tag: string } {
  let job = key.jobId.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  if (job !== key.jobId || job.length > 100) job = `${job.slice(0, 88)}-${shortHash(key.jobId)}`.replace(/^-+/, '');
  return { repo: `${SNAPSHOT_REPO_PREFIX}${job}`, tag: `e${key.epoch}-${checkpointName}`.slice(0, 128) };
}

export function runLabels(key: RunKey, nodeId: string, clusterId?: string): Record<string, string> {
  return { [LABEL_JOB]: key.jobId, [LABEL_EPOCH]: String(key.epoch), [LABEL_NODE]: nodeId, ...(clusterId === undefined ? {} : { [LABEL_CLUSTER]: clusterId }) };
}

/**
 * The attempt a container belongs to: from its labels, or for a claimed standby
 * container (labelled with its job but no epoch) from its name, which must then be
 * exactly the attempt's name. Null when it is not ours, malformed, or an unclaimed standby.
 */
export function runKeyOf(labels: Record<string, string> | undefined, name: string | undefined): RunKey | null {
  const labelled = runKeyFromLabels(labels);
  if (labelled !== null || labels?.[LABEL_STANDBY] === undefined || labels[LABEL_EPOCH] !== undefined || name === undefined) return labelled;
  const jobId = labels[LABEL_JOB];
  const epochText = /-e([1-9][0-9]{0,15})$/.exec(name)?.[1];
  if (jobId === undefined || jobId === '' || epochText === undefined) return null;
  const key = { jobId, epoch: Number(epochText) };
  return Number.isSafeInteger(key.epoch) && containerName(key) === name.replace(/^\//, '') ? key : null;
}

/** The attempt a container belongs to, from its labels; null when they are not ours or malformed. */
export function runKeyFromLabels(labels: Record<string, string> | undefined): RunKey | null {
  const jobId = labels?.[LABEL_JOB];
  const epochText = labels?.[LABEL_EPOCH];
  if (jobId === undefined || jobId === '' || epochText === undefined || !/^[1-9][0-9]{0,15}$/.test(epochText)) return null;
  const epoch = Number(epochText);
  return Number.isSafeInteger(epoch) ? { jobId, epoch } : null;
}
