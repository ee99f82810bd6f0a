// What one job may consume on a node. Each node sets these with `workrs start`
// options (src/config/node-options.ts); docs/cluster.md lists them with their defaults.
//
// Memory and CPUs: a spec that names none gets the node's defaults, and a spec that
// asks for more than the node's maximum is refused at submission (the gateway) and
// never started (the worker). Swap is never more than the memory limit. The
// container's log is rotated by Docker; the log kept in results and checkpoint
// bundles is its tail; the outputs of a result are counted while they stream and
// capped.

export interface JobLimits {
  /** The memory limit of a job whose spec gives no memoryMB. */
  defaultMemoryMB: number;
  /** The CPU limit of a job whose spec gives no cpus. */
  defaultCpus: number;
  /** Processes and threads a job's container may have at once (every job). */
  pidsLimit: number;
  /** The most memoryMB a spec may ask for on this node. */
  maxMemoryMB: number;
  /** The most cpus a spec may ask for on this node. */
  maxCpus: number;
  /** Docker json-file rotation: the size of one log file of a container, in MiB (max-size). */
  logFileMB: number;
  /** Docker json-file rotation: how many log files a container keeps (max-file). */
  logFiles: number;
  /** The declared outputs of one attempt, as the tar stream Docker hands them over in. */
  maxResultBytes: number;
}

const MIB = 1024 * 1024;

export const DEFAULT_JOB_LIMITS: Readonly<JobLimits> = {
  defaultMemoryMB: 1024,
  defaultCpus: 1,
  pidsLimit: 4096,
  maxMemoryMB: 16 * 1024,
  maxCpus: 64,
  logFileMB: 10,
  logFiles: 3,
  maxResultBytes: 1024 * MIB,
};

/**
 * How much of a job's output the results and checkpoint bundles keep: its last this
 * many bytes. As much as Docker keeps of one container's log (its JSON lines hold
 * less output than their size), so a job that never resumed loses nothing more here.
 */
export function logKeepBytes(limits: Pick<JobLimits, 'logFileMB' | 'logFiles'>): number {
  return limits.logFileMB * limits.logFiles * MIB;
}
