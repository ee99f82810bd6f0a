// Re-replication: a blob the cluster still needs (views.ts liveBlobs) whose copies on
// live nodes fell below the replica count, because the boxes holding them died, gets
// new copies before the last one goes too. Without it two losses in a row (the box
// running a job, then the box it resumed on) take a job's only checkpoint with them
// and the job starts over. Pure: the node pushes the copies and records the holders.
//
// A checkpoint a job is resuming from yields for a while: right after a box is lost its
// jobs resume, often on the last holder of their checkpoint, and a copy made meanwhile
// reads, sends and writes the same bytes the restore needs, on the same CPU. Its repair
// waits until the job's new attempt started (restored, or from scratch after a failed
// restore), at most RESUME_YIELD_MAX_MS. The price: for that long the checkpoint has
// fewer copies, and a box lost in the window costs the job its progress (it resumes from
// an older checkpoint or starts over), never the job. Inputs, results and images never
// wait: without them an acknowledged job could not run or its result would be gone.
import type { CheckpointRef } from '../state/commands.js';
import type { ClusterState } from '../state/machine.js';
import type { BlobRecord } from '../state/records.js';

export interface RepairTask {
  blob: Readonly<BlobRecord>;
  /** Alive nodes without a copy, in the order to try. */
  targets: string[];
  /** How many more copies are wanted. */
  missing: number;
  /** A checkpoint a job is resuming from (its attempt has not started yet): the copy may yield (ResumeYield). */
  resuming: boolean;
}

/** The longest a checkpoint's repair waits for the resume of its job. */
export const RESUME_YIELD_MAX_MS = 10_000;

/** Resume points first: losing one costs a job its progress; an input or a result can wait a round. */
const PRIORITY: Record<BlobRecord['kind'], number> = { checkpoint: 0, input: 1, result: 2, image: 3 };

/**
 * The repairs `nodeId` should make now: live blobs with fewer than `replicas` holders
 * on live (alive or suspect) nodes, for which `nodeId` is the first alive holder by id,
 * so that exactly one node works on each. A blob with no live holder cannot be repaired
 * (it is gone until a holder comes back).
 */
export function repairsFor(state: ClusterState, nodeId: string, replicas: number): RepairTask[] {
  const nodes = state.nodes;
  const live = (id: string): boolean => {
    const s = nodes.get(id)?.state;
    return s === 'alive' || s === 'suspect';
  };
  const alive = [...nodes.values()].filter((n) => n.state === 'alive').map((n) => n.id).sort();
  const tasks: RepairTask[] = [];
  for (const id of state.liveBlobs()) {
    const blob = state.blobs.get(id);
    if (!blob) continue;
    const holders = blob.holders.filter(live);
    if (holders.length >= replicas) continue;
    const repairer = holders.filter((h) => nodes.get(h)?.state === 'alive').sort()[0];
    if (repairer !== nodeId) continue;
    const targets = alive.filter((n) => !blob.holders.includes(n));
    if (targets.length === 0) continue;
    tasks.push({ blob, targets, missing: replicas - holders.length, resuming: false });
  }
  if (tasks.some((t) => t.blob.kind === 'checkpoint')) {
    const resuming = resumingCheckpoints(state);
    for (const t of tasks) t.resuming = t.blob.kind === 'checkpoint' && resuming.has(t.blob.id);
  }
  return tasks.sort((a, b) => PRIORITY[a.blob.kind] - PRIORITY[b.blob.kind] || a.blob.addedAt - b.blob.addedAt);
}

/**
 * The blobs of the checkpoints jobs are about to resume from: a job waiting for a node
 * (its node was lost), or whose current attempt has not reported its start, resumes
 * from its newest committed checkpoint or the one its attempt was assigned.
 */
export function resumingCheckpoints(state: ClusterState): Set<string> {
  const blobs = new Set<string>();
  const add = (jobId: string, ref: CheckpointRef | null): void => {
    if (ref === null) return;
    const cp = state.checkpoints.get(jobId)?.find((c) => c.epoch === ref.epoch && c.seq === ref.seq);
    if (cp !== undefined) blobs.add(cp.blob);
  };
  for (const job of state.openJobs()) {
    const attempt = state.currentAttempt(job.id);
    if (job.state === 'running' && attempt?.startedAt != null) continue;
    add(job.id, job.latestCheckpoint);
    if (job.state === 'running') add(job.id, attempt?.fromCheckpoint ?? null);
  }
  return blobs;
}

/**
 * Which repairs yield now: a task marked `resuming` waits, from the first pass that
 * saw it so, until it is no longer marked or RESUME_YIELD_MAX_MS passed. Decides on the
 * time it is given (the caller's monotonic clock), so a test drives it step by step.
 */
export class ResumeYield {
  /** Per checkpoint blob held back: when its repair first yielded (ms, the caller's clock). */
  private readonly since = new Map<string, number>();

  constructor(private readonly maxMs: number = RESUME_YIELD_MAX_MS) {}

  /** The tasks to do now, in their order; the others wait for a later pass. */
  due(tasks: readonly RepairTask[], nowMs: number): { now: RepairTask[]; waiting: RepairTask[] } {
    const marked = new Set(tasks.filter((t) => t.resuming).map((t) => t.blob.id));
    for (const id of this.since.keys()) if (!marked.has(id)) this.since.delete(id);
    const now: RepairTask[] = [];
    const waiting: RepairTask[] = [];
    for (const task of tasks) {
      if (!task.resuming) {
        now.push(task);
        continue;
      }
      const since = this.since.get(task.blob.id) ?? nowMs;
      this.since.set(task.blob.id, since);
      (nowMs - since < this.maxMs ? waiting : now).push(task);
    }
    return { now, waiting };
  }
}
