// An attempt's log on Docker. A resumed attempt's container only has what it wrote
// since the restore; what came before, up to the checkpoint, is kept in a file of the
// staging folder (from the bundle's log) and shown first. Each line of the job's
// output thus appears once.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { NodeContainers } from './docker-containers.js';
import { jobFolderName } from './docker-names.js';
import { logKeepBytes, type JobLimits } from './job-limits.js';
import { openFileHead, writeLogTail } from './log-tail.js';
import type { LogRead, RunKey } from './runtime.js';

export class AttemptLogs {
  constructor(
    private readonly containers: NodeContainers,
    private readonly stagingDir: string,
    private readonly limits: Readonly<JobLimits>,
  ) {}

  /**
   * The attempt's output, what it inherited first; with `follow`, it ends when the
   * container stops. With `sinceMs`, the container's lines from then on (Docker's own
   * time of each line), and the inherited part only when `withInherited`.
   */
  async stream(key: RunKey, opts: LogRead): Promise<Readable> {
    const container = await this.containers.get(key);
    const prefix = opts.sinceMs === undefined || opts.withInherited === true ? await this.openPrefix(key) : null;
    let own: Readable;
    try {
      own = await this.containers.output(container.id, opts.follow, opts.sinceMs);
    } catch (err) {
      prefix?.destroy();
      throw err;
    }
    async function* inOrder(): AsyncGenerator<Buffer> {
      if (prefix !== null) yield* prefix as AsyncIterable<Buffer>;
      yield* own as AsyncIterable<Buffer>;
    }
    const out = Readable.from(inOrder(), { objectMode: false });
    // Also when the reader goes before the generator ran: nothing stays open.
    out.on('close', () => {
      prefix?.destroy();
      own.destroy();
    });
    return out;
  }

  /**
   * The attempt's log as a file, cut to the tail results and bundles keep: what it
   * inherited, then what the container printed (none when `containerId` is null: the
   * container vanished). Returns the bytes written.
   */
  writeTail(key: RunKey, containerId: string | null, path: string): Promise<number> {
    const parts = [() => this.openPrefix(key), ...(containerId === null ? [] : [() => this.containers.output(containerId, false)])];
    return writeLogTail(parts, path, logKeepBytes(this.limits));
  }

  /** What the attempt inherited, then the log file of the container's output up to a checkpoint's freeze: its tail, into `path`. */
  writeCheckpointTail(key: RunKey, containerLogPath: string, path: string): Promise<number> {
    return writeLogTail([() => this.openPrefix(key), () => openFileHead(containerLogPath)], path, logKeepBytes(this.limits));
  }

  /** A restored attempt inherits the first `logOffset` bytes of the bundle's log (at most the tail a bundle keeps). */
  async inherit(key: RunKey, bundleLogPath: string, logOffset: number): Promise<void> {
    await mkdir(join(this.prefixPath(key), '..'), { recursive: true });
    await writeLogTail([() => openFileHead(bundleLogPath, logOffset)], this.prefixPath(key), logKeepBytes(this.limits));
  }

  /** Forgets what the attempt inherited. */
  async drop(key: RunKey): Promise<void> {
    await rm(this.prefixPath(key), { force: true });
  }

  private prefixPath(key: RunKey): string {
    return join(this.stagingDir, 'log-prefix', `${jobFolderName(key.jobId)}-e${key.epoch}`);
  }

  /** What the attempt inherited from its checkpoint, as a stream; null when it inherited nothing. */
  private openPrefix(key: RunKey): Promise<Readable | null> {
    return openFileHead(this.prefixPath(key));
  }
}
