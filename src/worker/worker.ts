// The worker half of a node: runs what the replicated state assigns to this node and
// nothing else (Nomad-style reconciliation), reports starts and exits, and fences
// itself when it cannot renew its lease with the leader.
import type { Logger } from 'pino';
import type { Assignment } from '../state/views.js';
import type { Proposer } from '../node/proposer.js';
import { rm } from 'node:fs/promises';
import type { Checkpointer } from './checkpointer.js';
import { runKey, type ContainerRuntime, type RunKey } from './runtime.js';
import { UnstartableError } from './unstartable.js';

export interface WorkerOptions {
  nodeId: string;
  runtime: ContainerRuntime;
  proposer: Proposer;
  /** The attempts the replicated state assigns to this node now. */
  assignments: () => Assignment[];
  /** Whether this node holds a valid lease (heard from the leader within leaseTimeoutMs). */
  leaseValid: () => boolean;
  /** Makes the attempt's input files available locally: file name → path. */
  prepareInputs: (a: Assignment) => Promise<Map<string, string>>;
  /** Called once the runtime has copied the input files into the container. */
  releaseInputs: (a: Assignment) => Promise<void>;
  /** Docker only: takes checkpoints of running attempts. */
  checkpointer?: Checkpointer;
  /** Docker only: fetches the attempt's resume checkpoint and unpacks it; returns the bundle folder. */
  prepareCheckpoint?: (a: Assignment) => Promise<string>;
  /** Docker only: resumes an attempt from an unpacked checkpoint bundle. */
  restore?: (a: Assignment, bundleDir: string, onExit: (exitCode: number) => void) => Promise<{ restored: true } | { restored: false; reason: string }>;
  logger: Logger;
}

export class Worker {
  private readonly opts: WorkerOptions;
  private readonly log: Logger;
  /** Exits not yet applied: the attempt stays assigned until then, and must not run again. */
  private readonly exited = new Map<string, { key: RunKey; exitCode: number }>();
  private readonly startedReported = new Set<string>();
  private reconciling = false;
  private again = false;
  private fenced = false;

  constructor(opts: WorkerOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'worker' });
  }

  /** Call on every applied change and periodically; runs are serialized. */
  poke(): void {
    if (this.reconciling) {
      this.again = true;
      return;
    }
    this.reconciling = true;
    void this.reconcile()
      .catch((err: unknown) => this.log.error({ err }, 'reconcile failed'))
      .finally(() => {
        this.reconciling = false;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }

  private async reconcile(): Promise<void> {
    const { runtime } = this.opts;
    const leaseValid = this.opts.leaseValid();
    const desired = leaseValid ? this.opts.assignments() : [];
    const running = await runtime.running();
    if (!leaseValid && !this.fenced && running.length > 0) this.log.warn('lease lost: stopping every job on this node (self-fencing)');
    this.fenced = !leaseValid;
    const want = new Map(desired.map((a) => [runKey(a), a]));
    for (const id of [...this.exited.keys()]) if (!want.has(id)) this.exited.delete(id);
    const runningIds = new Set(running.map(runKey));

    for (const key of running) {
      if (!want.has(runKey(key))) {
        this.log.info({ job: key.jobId, epoch: key.epoch }, 'stopping a run no longer assigned here');
        this.opts.checkpointer?.untrack(key);
        await runtime.stop(key);
      }
    }
    for (const [id, a] of want) {
      if (runningIds.has(id) || this.exited.has(id)) continue;
      this.log.info({ job: a.jobId, epoch: a.epoch }, 'starting');
      let files: Map<string, string>;
      try {
        files = await this.opts.prepareInputs(a);
      } catch (err) {
        // No holder reachable right now: try again at the next reconcile.
        this.log.warn({ err, job: a.jobId, epoch: a.epoch }, 'input files not available yet');
        continue;
      }
      const onExit = (exitCode: number): void => this.onExit({ jobId: a.jobId, epoch: a.epoch }, exitCode);
      try {
        if (!(await this.tryRestore(a, onExit))) await runtime.start(a, onExit, files);
      } catch (err) {
        if (err instanceof UnstartableError) {
          // Retrying would never end: the attempt fails, with the reason here.
          this.log.error({ job: a.jobId, epoch: a.epoch, exitCode: err.exitCode, reason: err.message }, 'the job cannot start: its attempt fails');
          await this.opts.releaseInputs(a);
          onExit(err.exitCode);
        } else {
          // Other assignments still start; this one is tried again at the next reconcile.
          this.log.warn({ err, job: a.jobId, epoch: a.epoch }, 'start failed; trying again');
        }
        continue;
      }
      await this.opts.releaseInputs(a);
      this.opts.checkpointer?.track(a);
      if (!this.startedReported.has(id)) {
        this.startedReported.add(id);
        void this.report(() => this.opts.proposer.send({ type: 'jobStarted', jobId: a.jobId, epoch: a.epoch, node: this.opts.nodeId }), 'jobStarted', a);
      }
    }
  }

  /**
   * Resumes from the attempt's checkpoint when it has one. A restore that fails (no
   * holder reachable, an incompatible kernel, a CRIU error) falls back to a start from
   * scratch: the job still completes, only the work since its start is redone.
   */
  private async tryRestore(a: Assignment, onExit: (exitCode: number) => void): Promise<boolean> {
    const from = a.fromCheckpoint;
    if (!from || !this.opts.restore || !this.opts.prepareCheckpoint) return false;
    let bundleDir: string | null = null;
    try {
      bundleDir = await this.opts.prepareCheckpoint(a);
      const r = await this.opts.restore(a, bundleDir, onExit);
      if (r.restored) {
        this.log.warn({ job: a.jobId, epoch: a.epoch, from }, 'resumed from checkpoint');
        return true;
      }
      this.log.warn({ job: a.jobId, epoch: a.epoch, reason: r.reason }, 'restore failed: starting from scratch');
    } catch (err) {
      this.log.warn({ err, job: a.jobId, epoch: a.epoch }, 'restore failed: starting from scratch');
    } finally {
      if (bundleDir) await rm(bundleDir, { recursive: true, force: true });
    }
    return false;
  }

  /** An exit the runtime saw outside a run started here (an adopted container). */
  adoptedExit(key: RunKey, exitCode: number): void {
    this.onExit(key, exitCode);
  }

  private onExit(key: RunKey, exitCode: number): void {
    this.opts.checkpointer?.untrack(key);
    const id = runKey(key);
    this.exited.set(id, { key, exitCode });
    void this.reportExit(id, key, exitCode);
  }

  /** An exit is a result: keep proposing it while the attempt is still ours and unreported. */
  private async reportExit(id: string, key: RunKey, exitCode: number): Promise<void> {
    while (this.exited.has(id)) {
      try {
        const r = await this.opts.proposer.send({ type: 'jobExited', jobId: key.jobId, epoch: key.epoch, node: this.opts.nodeId, exitCode }, 30_000);
        if (!r.ok) this.log.info({ job: key.jobId, epoch: key.epoch, code: r.code }, 'jobExited not accepted');
        // The exit is decided (accepted, or fenced): the container is no longer needed.
        await this.opts.runtime.stop(key).catch((err: unknown) => this.log.warn({ err, job: key.jobId }, 'removing the exited container failed'));
        return;
      } catch (err) {
        this.log.warn({ err, job: key.jobId, epoch: key.epoch }, 'jobExited could not be reported yet; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async report(send: () => Promise<{ ok: boolean; code?: string }>, what: string, key: RunKey): Promise<void> {
    try {
      const r = await send();
      // A fenced report (STALE_EPOCH, JOB_FINISHED) is the system working: this attempt is over.
      if (!r.ok) this.log.info({ job: key.jobId, epoch: key.epoch, code: r.code }, `${what} not accepted`);
    } catch (err) {
      this.log.warn({ err, job: key.jobId, epoch: key.epoch }, `${what} could not be reported`);
    }
  }
}
