// What the parts of the Docker runtime share: the engine, this node's identity, its
// containers and their logs, and which attempts are frozen or being checkpointed.
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { Clock } from '../util/clock.js';
import type { CaptureHook } from './criu-hook.js';
import type { AttemptLogs } from './docker-attempt-logs.js';
import type { NodeContainers } from './docker-containers.js';
import type { StagedContainer } from './docker-restore.js';
import type { ImageSource } from './docker-images.js';
import type { JobLimits } from './job-limits.js';

export interface DockerContext {
  readonly docker: Docker;
  readonly nodeId: string;
  readonly clusterId: string | undefined;
  /** Folder for the checkpoint bundles and results this runtime exports. */
  readonly stagingDir: string;
  readonly images: ImageSource | undefined;
  readonly limits: Readonly<JobLimits>;
  readonly log: Logger;
  readonly clock: Clock;
  readonly containers: NodeContainers;
  readonly logs: AttemptLogs;
  /** Attempts frozen by self-fencing (runKey): a checkpoint neither starts nor unpauses them. */
  readonly frozen: Set<string>;
  /** Attempts inside a checkpoint's capture (paused by it, unpaused by it unless frozen meanwhile). */
  readonly capturing: Set<string>;
  /**
   * Attempts inside a hooked capture whose dump has let the job run again while the
   * engine's call goes on (filing the images away, seconds at a few hundred MB): a
   * freeze or thaw acts on them at once, as outside a capture.
   */
  readonly runningInCapture: Set<string>;
  /** The CRIU capture hook (criu-hook.ts): whether a checkpoint can capture without pausing. */
  readonly captureHook: CaptureHook;
  /** Standby containers by job id (docker-standby.ts): made from `bundleDir`, claimed by a restore from it. */
  readonly standbys: Map<string, { bundleDir: string; staged: StagedContainer }>;
  /**
   * Whether a restore links the memory page images to the bundle instead of placing
   * them in the engine's folder (pages-by-reference.ts); cleared for good once a start
   * failed with links and succeeded without.
   */
  readonly pagesByReference: { usable: boolean };
  /** Restored attempts (runKey) whose start's leftovers are still being removed: their checkpoints wait (docker-restore.ts). */
  readonly restoreCleanups: Map<string, Promise<void>>;
}
