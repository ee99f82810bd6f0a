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
import { SingleFlight } from '../util/single-flight.js';
import type { BlobKind } from './manifest.js';
import { repairsFor } from './repair.js';
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
  /** Stores a folder here and copies it to k−1 other nodes; the caller registers it (a checkpoint's record carries its holders). */
  putFolder(dir: string, kind: 'checkpoint'): Promise<PlacedBlob>;
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
  /** Blobs stored or fetched within this long are kept by the gc regardless. */
  gcMinAgeMs: number;
  metrics?: BlobMetrics;
  logger: Logger;
}

/** ReplicatedBlobs on this node's BlobStore and the peer transfer. */
export class ClusterBlobs implements ReplicatedBlobs {
  readonly replicas: number;
  private readonly opts: ClusterBlobsOptions;
  private readonly log: Logger;
  private readonly repairs: SingleFlight;
  private readonly gc: SingleFlight;

  constructor(opts: ClusterBlobsOptions) {
    this.opts = opts;
    this.replicas = opts.replicas;
    this.log = opts.logger;
    this.repairs = new SingleFlight(() => this.repairPass(), (err) => this.log.debug({ err }, 'blob repair round interrupted'));
    this.gc = new SingleFlight(() => this.gcPass(), (err) => this.log.warn({ err }, 'blob gc failed'));
  }

  private get nodeId(): string {
    return this.opts.cluster.nodeId;
  }

  async putFile(path: string, kind: Exclude<BlobKind, 'checkpoint'>, opts: PutFileOptions = {}): Promise<{ blob: PlacedBlob; registered: ApplyResult }> {
    const put = await this.opts.store.putStream(createReadStream(path), kind);
    if (opts.beforeCopies) await opts.beforeCopies(put);
    const blob = await this.spread(put);
    const registered = await this.opts.cluster.propose({
      type: 'blobAdded',
      id: put.id,
      kind,
      bytes: put.bytes,
      holders: blob.holders,
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...(opts.replace === undefined ? {} : { replace: opts.replace }),
    });
    return { blob, registered };
  }

  async putFolder(dir: string, kind: 'checkpoint'): Promise<PlacedBlob> {
    return this.spread(await this.opts.store.putFolder(dir, kind));
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
   * only once the copy is there.
   */
  private async repairPass(): Promise<void> {
    for (const task of repairsFor(this.opts.cluster.state(), this.nodeId, this.replicas)) {
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

  /** Skipped while this node applies the log: an entry not applied yet may name a blob the table does not have. */
  collectGarbage(): Promise<void> {
    if (this.gc.busy || !this.opts.cluster.caughtUp()) return Promise.resolve();
    return this.gc.run();
  }

  private async gcPass(): Promise<void> {
    const r = await this.opts.store.gc(this.opts.cluster.state().liveBlobs(), { minAgeMs: this.opts.gcMinAgeMs });
    this.opts.metrics?.gcDeletedBytes?.inc({}, r.deletedBytes);
    if (r.deletedChunks > 0) this.log.info({ deletedChunks: r.deletedChunks, deletedBytes: r.deletedBytes, keptBytes: r.keptBytes }, 'blob gc');
  }

  readStream(blobId: string): Promise<Readable> {
    return this.opts.store.readStream(blobId);
  }

  exportFolder(blobId: string, dir: string): Promise<void> {
    return this.opts.store.exportFolder(blobId, dir);
  }
}
