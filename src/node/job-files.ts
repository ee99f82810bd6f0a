// The files of the attempts this node runs: input blobs written out as files before
// a start, a resume checkpoint unpacked before a restore, and the result archive
// stored on k nodes after an exit. All under the member's work folder.
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ReplicatedBlobs } from '../blobs/replicated.js';
import { WorkrsError } from '../errors.js';
import type { ClusterState } from '../state/machine.js';
import type { Assignment } from '../state/views.js';
import type { ContainerRuntime, RunKey } from '../worker/runtime.js';
import { refusalStatus } from './errors.js';
import type { StandbyRestores } from './standby-restores.js';

export interface JobFilesOptions {
  blobs: ReplicatedBlobs;
  runtime: Pick<ContainerRuntime, 'exportResult'>;
  state: () => ClusterState;
  /** Holds work/ (inputs per attempt) and staging/ (result archives, unpacked checkpoints). */
  dir: string;
  /** Makes the names of staged files unique. */
  random: () => number;
  /** Takeovers prepared ahead: a resume checkpoint already unpacked (standby-restores.ts). */
  standbys?: Pick<StandbyRestores, 'take'> | null;
}

export class JobFiles {
  constructor(private readonly opts: JobFilesOptions) {}

  private inputsDir(a: Assignment): string {
    return join(this.opts.dir, 'work', `${a.jobId}-e${a.epoch}`);
  }

  /** A fresh name part: staged files of attempts that ran here before must not collide. */
  private unique(): string {
    return Math.floor(this.opts.random() * 2 ** 48).toString(16).padStart(12, '0');
  }

  private get stagingDir(): string {
    return join(this.opts.dir, 'staging');
  }

  /** Fetches an attempt's input blobs from their holders if needed and writes them as files. */
  async prepareInputs(a: Assignment): Promise<Map<string, string>> {
    const files = new Map<string, string>();
    const entries = Object.entries(a.inputs);
    if (entries.length === 0) return files;
    const dir = this.inputsDir(a);
    await mkdir(dir, { recursive: true });
    for (const [name, blobId] of entries) {
      await this.opts.blobs.ensure(blobId);
      const path = join(dir, name);
      await pipeline(await this.opts.blobs.readStream(blobId), createWriteStream(path));
      files.set(name, path);
    }
    return files;
  }

  /** Once the runtime has copied the inputs into the container. */
  releaseInputs(a: Assignment): Promise<void> {
    return rm(this.inputsDir(a), { recursive: true, force: true });
  }

  /**
   * Fetches the attempt's resume checkpoint from its holders and unpacks it into a fresh
   * folder; or hands over the folder a standby of it was made from (standby-restores.ts).
   */
  async prepareCheckpoint(a: Assignment): Promise<string> {
    const from = a.fromCheckpoint;
    if (!from) throw new Error(`attempt ${a.jobId}@${a.epoch} has no checkpoint to resume from`);
    const standby = await this.opts.standbys?.take(a);
    if (standby) return standby;
    // A copy fetched to resume from is one more copy: recorded, so that losing the
    // holder it came from does not leave this node's copy unknown to the cluster.
    if (await this.opts.blobs.ensure(from.blob)) void this.opts.blobs.recordHolder(from.blob);
    const dir = join(this.stagingDir, `restore-${a.jobId}-e${a.epoch}-${this.unique()}`);
    await this.opts.blobs.exportFolder(from.blob, dir);
    return dir;
  }

  /**
   * The exited attempt's result archive as a blob on k nodes, registered in the blobs
   * table; its id goes into jobExited, with the reason the attempt fails when its
   * outputs exceed the node's result cap. A fenced exit leaves an unreferenced blob
   * for the garbage collector.
   */
  async publishResult(key: RunKey, exitCode: number): Promise<{ blob: string; failure: string | null }> {
    const outputs = this.opts.state().jobs.get(key.jobId)?.spec.outputs ?? [];
    await mkdir(this.stagingDir, { recursive: true });
    const tarPath = join(this.stagingDir, `result-${this.unique()}.tar`);
    try {
      const { failure } = await this.opts.runtime.exportResult(key, exitCode, outputs, tarPath);
      const { blob, registered } = await this.opts.blobs.putFile(tarPath, 'result');
      if (!registered.ok) throw new WorkrsError(registered.code, refusalStatus(registered.code), registered.message);
      return { blob: blob.id, failure };
    } finally {
      await rm(tarPath, { force: true });
    }
  }
}
