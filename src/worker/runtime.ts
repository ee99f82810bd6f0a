import type { Readable } from 'node:stream';
import type { Assignment } from '../state/views.js';

/** One attempt of a job on this node: the job and its epoch. */
export interface RunKey {
  jobId: string;
  epoch: number;
}

export const runKey = (k: RunKey): string => `${k.jobId}@${k.epoch}`;

/** One checkpoint of a running attempt, exported to a bundle folder (checkpoint-bundle.ts for Docker). */
export interface CheckpointResult {
  bundleDir: string;
  name: string;
  /** The whole call: capture, export to the bundle, engine-side cleanup. */
  durationMs: number;
  /** How long the job did not run: from `docker pause` to `docker unpause`, or the dump alone with the capture hook. */
  frozenMs: number;
  /** How the files of the instant were captured (Docker): by the CRIU hook while the dump froze the job, or by pausing it around dump and commit. */
  capture?: 'hook' | 'pause';
  /** Size of the bundle's files. */
  bytes: number;
  criuBytes: number;
  imageBytes: number;
  /** Bytes of this attempt's log (stdout and stderr in order) written before the freeze. */
  logOffset: number;
}

/**
 * Runs job attempts on this box. Implementations: fake (tests, benchmarks of the
 * cluster without Docker) and Docker (docker-runtime.ts). The worker reconciles what the
 * runtime reports running against what the replicated state assigns to this node.
 */
/** How much of an attempt's output to read (ContainerRuntime.logs). */
export interface LogRead {
  /** Stay open until the attempt stops. */
  follow: boolean;
  /**
   * Only what the attempt printed at or after this time (ms since the epoch, the box's
   * clock): Docker keeps a time per log line. What it inherited from a checkpoint has
   * none, so it is left out, unless `withInherited`.
   */
  sinceMs?: number;
  /** With `sinceMs`: the inherited output too, whole (the caller knows it is all newer than sinceMs). */
  withInherited?: boolean;
}

export interface ContainerRuntime {
  readonly kind: 'fake' | 'docker';
  /**
   * Starts an attempt; `onExit` is called once when it ends by itself. `files` maps
   * an input's name to a local file whose content the job finds as /work/<name>.
   */
  start(assignment: Assignment, onExit: (exitCode: number) => void, files?: ReadonlyMap<string, string>): Promise<void>;
  /** Kills an attempt's processes and keeps what it left (log, files): `onExit` follows, as for any exit. */
  kill(key: RunKey): Promise<void>;
  /** Stops an attempt (stale epoch, cancelled, self-fencing); no onExit call. */
  stop(key: RunKey): Promise<void>;
  /**
   * Self-fencing, reversible: the attempt's processes stop executing (Docker: the
   * cgroup freezer, `docker pause`) and no checkpoint is taken until thaw(). Frozen
   * attempts are still listed by running(). Idempotent.
   */
  freeze(key: RunKey): Promise<void>;
  /** Lets a frozen attempt run on from where it was. Idempotent. */
  thaw(key: RunKey): Promise<void>;
  /** Attempts running now, as the runtime sees them (not as the worker remembers). */
  running(): Promise<RunKey[]>;
  /**
   * The attempt's output (stdout and stderr in the order written), starting with what
   * a resumed attempt inherited from its checkpoint, streamed (never read whole into
   * memory). With `follow`, the stream stays open until the attempt stops.
   */
  logs(key: RunKey, opts: LogRead): Promise<Readable>;
  /**
   * After an exit and before stop(): writes the attempt's result archive
   * (result-archive.ts) to `tarPath`; returns the declared outputs that did not exist,
   * and `failure`, the reason the attempt fails whatever its exit code (its outputs
   * exceed the node's result cap: the archive then holds the log and exit code only),
   * or null.
   */
  exportResult(key: RunKey, exitCode: number, outputs: readonly string[], tarPath: string): Promise<{ missing: string[]; failure: string | null }>;
}
