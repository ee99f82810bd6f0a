// Blobs the cluster can count on: a file or folder stored on this node, copied to
// other nodes until k hold it, and registered in the replicated blobs table; pulled
// from its holders when this node needs it; and copied again when holders are lost
// (repair.ts picks which). Inputs, results, checkpoints and images all go through here,
// so there is one rule for "too few copies" (TOO_FEW_COPIES_POLICY below).
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { WorkrsError } from '../errors.js';
import type { Command } from '../state/commands.js';
import type { ClusterState } from '../state/machine.js';
import type { ApplyResult } from '../state/result.js';
import { systemClock, type Clock } from '../util/clock.js';
import { SingleFlight } from '../util/single-flight.js';
import type { BlobKind } from './manifest.js';
import { repairsFor, ResumeYield } from './repair.js';
import type { BlobStore, PutResult } from './store.js';

/** A blob stored here and copied: `holders` are the nodes that have it, this one first. */
export interface PlacedBlob extends PutResult {
  holders: string[];
}

export interface PutFileOptions {
  /** Images: the references the blob provides, and whether they may move from other images. */
  name?: string;
  replace?: boolean;
  /** Runs after the blob is stored here and before any copy is made; throwing stops the put. */
  beforeCopies?: (put: PutResult) => Promise<void>;
}

export interface ReplicatedBlobs {
  /** Copies every blob should have, this node's included (k). */
  readonly replicas: number;
  /**
   * Stores the file at `path` here, copies it to k−1 other nodes and proposes blobAdded
   * with the holders. `registered` is the state machine's answer; the caller decides
   * what a refusal means to it.
   */
  putFile(path: string, kind: Exclude<BlobKind, 'checkpoint'>, opts?: PutFileOptions): Promise<{ blob: PlacedBlob; registered: ApplyResult }>;
  /**
   * Stores a folder here, copies it to k−1 other nodes and calls `register` with it
   * (a checkpoint's record carries its holders, so the caller proposes it). The blob
   * stays out of this node's gc until `register` settles (see ClusterBlobs).
   */
  putFolder<T>(dir: string, kind: 'checkpoint', register: (blob: PlacedBlob) => Promise<T>): Promise<{ blob: PlacedBlob; registered: T }>;
  /** Pulls a blob from its holders unless it is here; true when it pulled it. */
  ensure(blobId: string): Promise<boolean>;
  /** Adds this node to a blob's holders (it has a copy now); best effort. */
  recordHolder(blobId: string): Promise<void>;
  /** One repair pass (or one more after the running one): new copies of blobs whose holders were lost. */
  repair(): Promise<void>;
  /** Deletes local chunks no live blob needs. */
  collectGarbage(): Promise<void>;
  readStream(blobId: string): Promise<Readable>;
  exportFolder(blobId: string, dir: string): Promise<void>;
}

/**
 * Too few copies. The rule: a blob counts once min(k, alive nodes) nodes hold it, i.e.
 * every copy the cluster can hold right now. When alive nodes could have taken a copy
 * and the pushes failed, the put fails with this error (503: the caller may retry),
 * since an acknowledged job, import or checkpoint must not depend on one box's disk
 * while another box was there to hold it. When the cluster has fewer alive nodes than
 * k (a one-node cluster, or nodes lost), insisting would stop all work, so the blob
 * counts with fewer copies, the shortfall is counted in a metric, and the repair loop
 * adds the missing copies once nodes are alive again.
 */
export class TooFewCopiesError extends WorkrsError {
  constructor(blobId: string, wanted: number, got: number) {
    super('REPLICATION_FAILED', 503, `could not place ${wanted} more copies of ${blobId} (placed ${got})`);
    this.name = 'TooFewCopiesError';
  }
}

/** What the blob service needs from the cluster member it serves. */
export interface BlobCluster {
  nodeId: string;
  /** The replicated state as this node has applied it. */
  state(): ClusterState;
  propose(cmd: Command): Promise<ApplyResult>;
  /** This node has applied everything it knows to be committed (the gc keeps blobs a pending entry may name). */
  caughtUp(): boolean;
}

/** Moves blobs between nodes (BlobPeer over the peer port in production). */
export interface BlobTransfer {
  /** Asks node `to` to pull blob `id` from this one; resolves once it holds it. */
  push(id: string, to: string): Promise<unknown>;
  /** Pulls blob `id` from the first of `holders` that has it. */
  fetch(id: string, holders: readonly string[]): Promise<unknown>;
}

/** Counters the blob service keeps (node-metrics.ts); all optional. */
export interface BlobMetrics {
  repairs?: { inc(labels?: Record<string, string>, by?: number): void };
  gcDeletedBytes?: { inc(labels?: Record<string, string>, by?: number): void };
  underReplicated?: { inc(labels?: Record<string, string>, by?: number): void };
}

/** The node-local store the service needs (BlobStore on disk; an in-memory one in the simulator). */
export type LocalBlobs = Pick<BlobStore, 'putStream' | 'putFolder' | 'has' | 'gc' | 'readStream' | 'exportFolder'>;

export interface ClusterBlobsOptions {
  cluster: BlobCluster;
  store: LocalBlobs;
  transfer: BlobTransfer;
  replicas: number;
  /**
   * Blobs stored or fetched within this long are kept by the gc regardless; and a blob
   * whose registration's outcome is unknown is kept this long after its proposer gave up.
   */
  gcMinAgeMs: number;
  metrics?: BlobMetrics;
  logger: Logger;
  /** Times the holds of undecided registrations; the system clock by default. */
  clock?: Clock;
}

/**
 * ReplicatedBlobs on this node's BlobStore and the peer transfer.
 *
 * What the gc keeps. The table (liveBlobs) says what the cluster needs; but a blob is
 * stored and copied before the entry that registers it (blobAdded, checkpointCommitted)
 * is committed, and that can take any time (an entry on a majority may be committed by
 * a later leader after an outage). A committed checkpoint whose data the gc deleted
 * meanwhile is a resume point nobody can resume from. So, besides the table:
 * - The node that puts a blob pins it from the moment it is stored until its
 *   registration is settled: answered (accepted: the table now keeps it; refused: it
 *   will never be registered through this entry), or, when the proposer gave up with
 *   the outcome unknown, for gcMinAgeMs more. Only this node knows when that is.
 * - A node that received a pushed copy cannot see the pusher's proposal: its copy is
 *   kept by age only (gcMinAgeMs since it arrived, the store's rule). If the
 *   registration lands later than that, the copy may be gone while the record names
 *   this node as a holder: the gc pass notices (the store reports kept ids it lacks)
 *   and fetches such a blob again from the other holders, the pusher among them (its
 *   pin kept its copy). What no rule here can save: the pusher's copy too, when its
 *   process restarts (pins live in memory) or it is lost before the fetch; gcMinAgeMs
 *   (10 min by default) is the backstop for those.
 */
export class ClusterBlobs implements ReplicatedBlobs {
  readonly replicas: number;
  private readonly opts: ClusterBlobsOptions;
  private readonly log: Logger;
  private readonly repairs: SingleFlight;
  /** Checkpoints a job is resuming from are copied after it resumed (repair.ts). */
  private readonly resumeYield = new ResumeYield();
  private readonly gc: SingleFlight;
  private readonly clock: Clock;
  /** Blobs put here whose registration is not settled, with how many puts hold each. */
  private readonly pinned = new Map<string, number>();
  /** Puts storing here whose id is not known (nor pinned) yet: no gc pass starts meanwhile. */
  private storing = 0;
  /** Blobs whose registration's outcome is unknown, kept until this clock.monotonic(). */
  private readonly undecided = new Map<string, number>();

  constructor(opts: ClusterBlobsOptions) {
    this.opts = opts;
    this.replicas = opts.replicas;
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.repairs = new SingleFlight(() => this.repairPass(), (err) => this.log.debug({ err }, 'blob repair round interrupted'));
    this.gc = new SingleFlight(() => this.gcPass(), (err) => this.log.warn({ err }, 'blob gc failed'));
  }

  private get nodeId(): string {
    return this.opts.cluster.nodeId;
  }

  async putFile(path: string, kind: Exclude<BlobKind, 'checkpoint'>, opts: PutFileOptions = {}): Promise<{ blob: PlacedBlob; registered: ApplyResult }> {
    const put = await this.storePinned(() => this.opts.store.putStream(createReadStream(path), kind));
    return this.registerPinned(
      put,
      async () => {
        if (opts.beforeCopies) await opts.beforeCopies(put);
        return this.spread(put);
      },
      (blob) =>
        this.opts.cluster.propose({
          type: 'blobAdded',
          id: put.id,
          kind,
          bytes: put.bytes,
          holders: blob.holders,
          ...(opts.name === undefined ? {} : { name: opts.name }),
          ...(opts.replace === undefined ? {} : { replace: opts.replace }),
        }),
    );
  }

  async putFolder<T>(dir: string, kind: 'checkpoint', register: (blob: PlacedBlob) => Promise<T>): Promise<{ blob: PlacedBlob; registered: T }> {
    const put = await this.storePinned(() => this.opts.store.putFolder(dir, kind));
    return this.registerPinned(put, () => this.spread(put), register);
  }

  /** Stores with `store` and pins what it stored; a gc pass cannot run between the two (`storing`). */
  private async storePinned(store: () => Promise<PutResult>): Promise<PutResult> {
    this.storing += 1;
    try {
      const put = await store();
      this.pinned.set(put.id, (this.pinned.get(put.id) ?? 0) + 1);
      return put;
    } finally {
      this.storing -= 1;
    }
  }

  /**
   * Places a pinned blob's copies, then registers it; unpins it once that is settled.
   * A registration that threw may still commit (the proposer gave up, the entry did not
   * necessarily): the blob is then kept gcMinAgeMs more.
   */
  private async registerPinned<T>(put: PutResult, place: () => Promise<PlacedBlob>, register: (blob: PlacedBlob) => Promise<T>): Promise<{ blob: PlacedBlob; registered: T }> {
    let outcomeUnknown = false;
    try {
      const blob = await place();
      outcomeUnknown = true;
      const registered = await register(blob);
      outcomeUnknown = false;
      return { blob, registered };
    } finally {
      const holds = (this.pinned.get(put.id) ?? 1) - 1;
      if (holds > 0) this.pinned.set(put.id, holds);
      else this.pinned.delete(put.id);
      if (outcomeUnknown) this.undecided.set(put.id, this.clock.monotonic() + this.opts.gcMinAgeMs);
    }
  }

  /** Copies a blob stored here to other alive nodes until k hold it, under the rule of TooFewCopiesError. */
  private async spread(put: PutResult): Promise<PlacedBlob> {
    const wanted = this.replicas - 1;
    const others = this.aliveOthers();
    const copies = await this.pushTo(put.id, others, wanted, 'replica push failed; trying another node');
    const possible = Math.min(wanted, others.length);
    if (copies.length < possible) throw new TooFewCopiesError(put.id, wanted, copies.length);
    if (copies.length < wanted) {
      this.opts.metrics?.underReplicated?.inc();
      this.log.debug({ blob: put.id, holders: copies.length + 1, replicas: this.replicas }, 'fewer alive nodes than copies wanted: the blob counts with fewer, repair adds the rest');
    }
    return { ...put, holders: [this.nodeId, ...copies] };
  }

  /** Pushes `blobId` to `targets` in order until `count` took it; the ones that did. */
  private async pushTo(blobId: string, targets: readonly string[], count: number, failure: string): Promise<string[]> {
    const done: string[] = [];
    for (const target of targets) {
      if (done.length >= count) break;
      try {
        await this.opts.transfer.push(blobId, target);
        done.push(target);
      } catch (err) {
        this.log.warn({ err, blob: blobId, node: target }, failure);
      }
    }
    return done;
  }

  private aliveOthers(): string[] {
    return [...this.opts.cluster.state().nodes.values()]
      .filter((n) => n.id !== this.nodeId && n.state === 'alive')
      .map((n) => n.id)
      .sort((a, b) => a.localeCompare(b));
  }

  /** Whether node `id` is in the node table and has not left (its peer address is known). */
  private reachable(id: string): boolean {
    const n = this.opts.cluster.state().nodes.get(id);
    return n !== undefined && n.state !== 'left';
  }

  async ensure(blobId: string): Promise<boolean> {
    if (await this.opts.store.has(blobId, { verify: false })) return false;
    const record = this.opts.cluster.state().blobs.get(blobId);
    const holders = (record?.holders ?? []).filter((h) => h !== this.nodeId && this.reachable(h));
    if (holders.length === 0) throw new WorkrsError('BLOB_UNAVAILABLE', 503, `no reachable holder of ${blobId}`);
    await this.opts.transfer.fetch(blobId, holders);
    return true;
  }

  async recordHolder(blobId: string): Promise<void> {
    const blob = this.opts.cluster.state().blobs.get(blobId);
    if (!blob || blob.holders.includes(this.nodeId)) return;
    try {
      const r = await this.opts.cluster.propose({ type: 'blobAdded', id: blob.id, kind: blob.kind, bytes: blob.bytes, holders: [this.nodeId] });
      if (!r.ok) this.log.warn({ blob: blobId, code: r.code }, 'recording this node as a holder was refused');
    } catch (err) {
      this.log.warn({ err, blob: blobId }, 'cannot record this node as a holder');
    }
  }

  repair(): Promise<void> {
    return this.repairs.run();
  }

  /**
   * Gives the blobs still needed whose live copies fell below k new copies on alive
   * nodes (repair.ts picks which, and one node per blob). The holders are recorded
   * only once the copy is there. A checkpoint a job is resuming from waits (repair.ts
   * ResumeYield): a later pass (the member runs one every second) copies it.
   */
  private async repairPass(): Promise<void> {
    const tasks = repairsFor(this.opts.cluster.state(), this.nodeId, this.replicas);
    const { now, waiting } = this.resumeYield.due(tasks, this.clock.monotonic());
    if (waiting.length > 0) this.log.debug({ blobs: waiting.map((t) => t.blob.id) }, 'checkpoint repair waits for the resume of its job');
    for (const task of now) {
      if (!(await this.opts.store.has(task.blob.id, { verify: false }))) continue;
      const targets = task.targets.filter((id) => this.reachable(id));
      const added = await this.pushTo(task.blob.id, targets, task.missing, 'repair copy failed; trying another node');
      if (added.length === 0) continue;
      this.opts.metrics?.repairs?.inc({}, added.length);
      const { id, kind, bytes } = task.blob;
      const r = await this.opts.cluster.propose({ type: 'blobAdded', id, kind, bytes, holders: added });
      if (r.ok) this.log.info({ blob: id, kind, bytes, added }, 'blob re-replicated after a holder was lost');
      else this.log.warn({ blob: id, code: r.code }, 'recording a repaired copy was refused');
    }
  }

  /**
   * Skipped while this node applies the log (an entry not applied yet may name a blob
   * the table does not have) and while a put is storing a blob it has not pinned yet.
   */
  collectGarbage(): Promise<void> {
    if (this.gc.busy || this.storing > 0 || !this.opts.cluster.caughtUp()) return Promise.resolve();
    return this.gc.run();
  }

  /** The ids this node keeps whatever the table says: pinned, or undecided and not yet past their hold. */
  private held(): string[] {
    const now = this.clock.monotonic();
    for (const [id, until] of this.undecided) if (until <= now) this.undecided.delete(id);
    return [...this.pinned.keys(), ...this.undecided.keys()];
  }

  private async gcPass(): Promise<void> {
    const state = this.opts.cluster.state();
    const keep = state.liveBlobs();
    for (const id of this.held()) keep.add(id);
    const r = await this.opts.store.gc(keep, { minAgeMs: this.opts.gcMinAgeMs });
    this.opts.metrics?.gcDeletedBytes?.inc({}, r.deletedBytes);
    if (r.deletedChunks > 0) this.log.info({ deletedChunks: r.deletedChunks, deletedBytes: r.deletedBytes, keptBytes: r.keptBytes }, 'blob gc');
    await this.refetchMissing(r.absentKept);
  }

  /**
   * Live blobs whose record names this node as a holder but that are not here: a copy
   * pushed here that the gc deleted by age before its registration was applied (see
   * the class comment). Fetched again from the other holders; one that cannot be yet
   * is tried at the next pass.
   */
  private async refetchMissing(absent: readonly string[]): Promise<void> {
    for (const id of absent) {
      const record = this.opts.cluster.state().blobs.get(id);
      if (record === undefined || !record.holders.includes(this.nodeId)) continue;
      const from = record.holders.filter((h) => h !== this.nodeId && this.reachable(h));
      if (from.length === 0) continue;
      try {
        if (await this.opts.store.has(id, { verify: false })) continue;
        await this.opts.transfer.fetch(id, from);
        this.log.warn({ blob: id, kind: record.kind }, 'a blob this node is recorded as holding was missing (gc before its registration applied): fetched it again');
      } catch (err) {
        this.log.warn({ err, blob: id }, 'a blob this node is recorded as holding is missing and could not be fetched yet');
      }
    }
  }

  readStream(blobId: string): Promise<Readable> {
    return this.opts.store.readStream(blobId);
  }

  exportFolder(blobId: string, dir: string): Promise<void> {
    return this.opts.store.exportFolder(blobId, dir);
  }
}
