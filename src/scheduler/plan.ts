// The scheduler: a pure function of the replicated state and the leader's lease
// table to the commands the leader should propose. It decides; the state machine
// re-checks every decision when the command applies (epoch, capacity, node state),
// so a stale or duplicated plan is rejected there, never applied twice.
//
// Idempotence: plan() on the same input returns the same commands, and once those
// commands have applied, plan() on the same lease table returns none.
import type { Command } from '../state/commands.js';
import { type ClusterState, compareIds, fits, type NodeUsage } from '../state/machine.js';
import type { CheckpointRecord, JobRecord, NodeRecord, NodeState } from '../state/records.js';

export interface PlanInput {
  /** The leader's monotonic clock, ms. */
  now: number;
  /**
   * The leader's in-memory lease table, on the same clock: per node, the latest moment
   * a lease it may still hold can have begun (src/node/leases.ts: its last renewal to
   * this leader, or this leader's election plus the contact window). A node missing
   * from it is never declared lost or suspect.
   */
  lastSeenMs: ReadonlyMap<string, number>;
  /** A node whose last possible lease began longer ago than this is lost: its jobs are re-queued. */
  nodeTimeoutMs: number;
  /** A node silent for longer than this (and not yet lost) is suspect: no new jobs. */
  suspectAfterMs: number;
}

/** The reason recorded on a job's first attempt. */
export const REASON_NEW = 'new job';

/**
 * Returns, in order: node state changes (by node id), then assignments (oldest job
 * first). Propose them in this order: an assignment may rely on a nodeLost before it
 * (which turned the job pending) or a nodeAlive (which made the node placeable).
 */
export function plan(state: ClusterState, input: PlanInput): Command[] {
  const commands: Command[] = [];
  const nodes = [...state.nodes.values()].sort((a, b) => compareIds(a.id, b.id));

  // 1. Leases. `after` is each node's state once these commands apply.
  const after = new Map<string, NodeState>();
  for (const node of nodes) {
    const next = leaseState(node, input);
    after.set(node.id, next);
    if (next === node.state) continue;
    if (next === 'lost') commands.push({ type: 'nodeLost', node: node.id });
    else if (next === 'suspect') commands.push({ type: 'nodeSuspect', node: node.id });
    else commands.push({ type: 'nodeAlive', node: node.id });
  }

  // 2. Usage counts only what keeps running: not the jobs of a node being declared
  // lost (nodeLost turns them pending). A draining node takes nothing new (its worker
  // is moving its jobs off).
  const usage = state.usageByNode();
  const gone = nodes.filter((n) => after.get(n.id) === 'lost' || after.get(n.id) === 'left');
  for (const node of gone) usage.delete(node.id);
  const candidates = nodes.filter((n) => after.get(n.id) === 'alive' && !n.draining);
  // Every job takes a slot: once no candidate has one free, no job fits anywhere, and
  // the rest need not be looked at. A full cluster with a long queue then costs a
  // round nothing per queued job (in bench-raft's 256-client run ~40,000 were queued,
  // and sorting and scanning them took ~10 ms of the leader every 200 ms).
  const room = (): boolean => candidates.some((n) => usageOf(usage, n.id).running < n.slots);
  if (!room()) return commands;

  // 3. The jobs to place: pending ones, and the running ones of nodes being declared
  // lost, from the state's indexes.
  const toPlace: Array<Readonly<JobRecord>> = [...state.pendingJobs()];
  for (const node of gone) toPlace.push(...state.runningOn(node.id));
  toPlace.sort((a, b) => a.order - b.order);

  // 4. Placement, oldest job first. A job that fits nowhere stays pending and does
  // not block younger jobs that do fit (e.g. smaller memory).
  for (const job of toPlace) {
    const from = resumePoint(state, job, after);
    const holders = from === null ? [] : holdersOf(state, from);
    let best: Readonly<NodeRecord> | null = null;
    for (const node of candidates) {
      if (!fits(node, usageOf(usage, node.id), job.spec)) continue;
      if (best === null || better(node, best, holders, usage)) best = node;
    }
    if (best === null) continue;
    const u = usageOf(usage, best.id);
    usage.set(best.id, { running: u.running + 1, memoryMB: u.memoryMB + (job.spec.memoryMB ?? 0) });
    commands.push({
      type: 'assignJob',
      jobId: job.id,
      node: best.id,
      epoch: job.epoch + 1,
      fromCheckpoint: from === null ? null : { seq: from.seq, epoch: from.epoch },
      reason: reasonFor(state, job, after),
    });
    if (!room()) break;
  }
  return commands;
}

/** What the lease says a node's state should be. Nodes that left, or are not in the lease table, keep their state. */
function leaseState(node: Readonly<NodeRecord>, input: PlanInput): NodeState {
  const seen = input.lastSeenMs.get(node.id);
  if (node.state === 'left' || seen === undefined) return node.state;
  const silentMs = input.now - seen;
  if (silentMs > input.nodeTimeoutMs) return 'lost';
  // A lost node heard from again comes back (empty-handed: its attempts were ended,
  // and fencing rejects their late reports).
  if (silentMs > input.suspectAfterMs) return node.state === 'lost' ? 'lost' : 'suspect';
  return 'alive';
}

/**
 * Where the job's next attempt resumes: its newest committed checkpoint that a node
 * still up (alive or suspect) holds. If every holder of the newest one is lost, an
 * older reachable checkpoint is better than none; if none is reachable, it starts
 * over from the image rather than wait for holders that may never return.
 */
function resumePoint(state: ClusterState, job: Readonly<JobRecord>, after: ReadonlyMap<string, NodeState>): Readonly<CheckpointRecord> | null {
  const list = state.checkpoints.get(job.id) ?? [];
  for (let i = list.length - 1; i >= 0; i--) {
    const c = list[i]!;
    if (holdersOf(state, c).some((h) => after.get(h) === 'alive' || after.get(h) === 'suspect')) return c;
  }
  return null;
}

/** A checkpoint whose blob was forgotten (retention) has no holders: its chunks are gone. */
function holdersOf(state: ClusterState, c: Readonly<CheckpointRecord>): readonly string[] {
  return state.blobs.get(c.blob)?.holders ?? [];
}

function usageOf(usage: ReadonlyMap<string, NodeUsage>, id: string): NodeUsage {
  return usage.get(id) ?? { running: 0, memoryMB: 0 };
}

/**
 * Whether `a` is a better home than `b`: a holder of the resume checkpoint first
 * (restore without pulling it), then the lower load (running / slots, compared
 * exactly by cross-multiplying), then the smaller id.
 */
function better(a: Readonly<NodeRecord>, b: Readonly<NodeRecord>, holders: readonly string[], usage: ReadonlyMap<string, NodeUsage>): boolean {
  const ah = holders.includes(a.id);
  const bh = holders.includes(b.id);
  if (ah !== bh) return ah;
  const load = usageOf(usage, a.id).running * b.slots - usageOf(usage, b.id).running * a.slots;
  if (load !== 0) return load < 0;
  return compareIds(a.id, b.id) < 0;
}

function reasonFor(state: ClusterState, job: Readonly<JobRecord>, after: ReadonlyMap<string, NodeState>): string {
  if (job.epoch === 0) return REASON_NEW;
  const last = state.currentAttempt(job.id);
  if (last === null) return REASON_NEW;
  // Still open: its node is being declared lost in this same plan.
  const end = last.end ?? (after.get(last.node) === 'left' ? 'nodeLeft' : 'nodeLost');
  switch (end) {
    case 'nodeLost':
      return `node ${last.node} lost`;
    case 'nodeLeft':
      return `node ${last.node} left`;
    case 'drained':
      return `node ${last.node} drained`;
    default:
      return `attempt ${last.epoch} ended (${end})`;
  }
}
