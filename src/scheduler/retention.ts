// Retention: what the leader proposes so that the replicated tables (and every
// snapshot) stop growing with history. A pure function of the state and the clock,
// like plan(); the state machine re-checks each id when the command applies, so a
// stale or repeated proposal forgets nothing it should keep.
//
// - Final jobs that finished more than `jobRetentionMs` ago: forgetJobs (the job,
//   its attempts and checkpoints). 0 keeps jobs for good.
// - Blobs no job needs any more (views.ts liveBlobs: superseded checkpoints, inputs
//   of finished jobs, results of forgotten jobs) and not (re-)added within
//   `blobMinAgeMs` (a checkpoint whose record is not committed yet, an input whose
//   job is not): forgetBlobs. Their chunks then go with every node's blob gc.
//   Images are kept: they are removed by name, not by age.
import { COMMAND_LIMITS, type Command } from '../state/commands.js';
import type { ClusterState } from '../state/machine.js';
import { isFinal } from '../state/records.js';

export interface RetentionInput {
  /** The leader's clock, ms since the epoch. */
  now: number;
  jobRetentionMs: number;
  blobMinAgeMs: number;
  /** Ids per command (at most COMMAND_LIMITS.forgetBatch). */
  batch?: number;
}

export function planRetention(state: ClusterState, input: RetentionInput): Command[] {
  const batch = Math.min(input.batch ?? COMMAND_LIMITS.forgetBatch, COMMAND_LIMITS.forgetBatch);
  const commands: Command[] = [];
  if (input.jobRetentionMs > 0) {
    const finishedBefore = input.now - input.jobRetentionMs;
    const jobIds: string[] = [];
    for (const job of state.jobs.values()) {
      if (isFinal(job.state) && job.finishedAt !== null && job.finishedAt <= finishedBefore) jobIds.push(job.id);
      if (jobIds.length === batch) break;
    }
    if (jobIds.length > 0) {
      commands.push({ type: 'forgetJobs', jobIds, finishedBefore });
      // Their blobs become unneeded only once this applies: the next round forgets them.
      return commands;
    }
  }
  const addedBefore = input.now - input.blobMinAgeMs;
  const live = state.liveBlobs();
  const ids: string[] = [];
  for (const blob of state.blobs.values()) {
    if (blob.kind === 'image' || live.has(blob.id) || blob.addedAt > addedBefore) continue;
    ids.push(blob.id);
    if (ids.length === batch) break;
  }
  if (ids.length > 0) commands.push({ type: 'forgetBlobs', ids, addedBefore });
  return commands;
}
