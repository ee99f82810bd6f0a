// Re-replication: a blob the cluster still needs (views.ts liveBlobs) whose copies on
// live nodes fell below the replica count, because the boxes holding them died, gets
// new copies before the last one goes too. Without it two losses in a row (the box
// running a job, then the box it resumed on) take a job's only checkpoint with them
// and the job starts over. Pure: the node pushes the copies and records the holders.
import type { ClusterState } from '../state/machine.js';
import type { BlobRecord } from '../state/records.js';

export interface RepairTask {
  blob: Readonly<BlobRecord>;
  /** Alive nodes without a copy, in the order to try. */
  targets: string[];
  /** How many more copies are wanted. */
  missing: number;
}

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
    tasks.push({ blob, targets, missing: replicas - holders.length });
  }
  return tasks.sort((a, b) => PRIORITY[a.blob.kind] - PRIORITY[b.blob.kind] || a.blob.addedAt - b.blob.addedAt);
}
