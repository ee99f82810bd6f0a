// A simulated runtime: an attempt "runs" for env.FAKE_SECONDS (else the job's
// estimateSeconds, else 1 s), then exits with env.FAKE_EXIT_CODE (else 0). It keeps
// the whole cluster path (assignment, start and exit reports, fencing, reassignment)
// testable without Docker.
import type { Assignment } from '../state/views.js';
import { runKey, type ContainerRuntime, type RunKey } from './runtime.js';

export function fakeDurationMs(a: Assignment): number {
  const fromEnv = Number(a.spec.env.FAKE_SECONDS);
  const seconds = Number.isFinite(fromEnv) && fromEnv >= 0 && a.spec.env.FAKE_SECONDS !== undefined ? fromEnv : (a.spec.estimateSeconds ?? 1);
  return Math.round(seconds * 1000);
}

export class FakeRuntime implements ContainerRuntime {
  readonly kind = 'fake' as const;
  private readonly runs = new Map<string, { key: RunKey; timer: NodeJS.Timeout }>();

  async start(a: Assignment, onExit: (exitCode: number) => void): Promise<void> {
    const key = { jobId: a.jobId, epoch: a.epoch };
    const id = runKey(key);
    if (this.runs.has(id)) return;
    const code = Number(a.spec.env.FAKE_EXIT_CODE ?? 0);
    const timer = setTimeout(() => {
      this.runs.delete(id);
      onExit(Number.isInteger(code) ? code : 1);
    }, fakeDurationMs(a));
    this.runs.set(id, { key, timer });
  }

  async stop(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (!run) return;
    clearTimeout(run.timer);
    this.runs.delete(runKey(key));
  }

  async running(): Promise<RunKey[]> {
    return [...this.runs.values()].map((r) => r.key);
  }
}
