// A simulated runtime: an attempt "runs" for env.FAKE_SECONDS (else the job's
// estimateSeconds, else 1 s), then exits with env.FAKE_EXIT_CODE (else 0). It keeps
// the whole cluster path (assignment, start and exit reports, fencing, reassignment,
// logs and result archives) testable without Docker. With env.FAKE_OUTPUTS set, each
// declared output exists in the result as a file holding its own path.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { Assignment } from '../state/views.js';
import { outputArchiveName, writeResultArchive } from './result-archive.js';
import { runKey, type ContainerRuntime, type RunKey } from './runtime.js';

export function fakeDurationMs(a: Assignment): number {
  const fromEnv = Number(a.spec.env.FAKE_SECONDS);
  const seconds = Number.isFinite(fromEnv) && fromEnv >= 0 && a.spec.env.FAKE_SECONDS !== undefined ? fromEnv : (a.spec.estimateSeconds ?? 1);
  return Math.round(seconds * 1000);
}

interface FakeRun {
  key: RunKey;
  /** Non-null while it runs (also while frozen); null once it exited. */
  timer: NodeJS.Timeout | null;
  code: number;
  /** When it exits by itself (while not frozen). */
  dueAt: number;
  /** While frozen: how long it still has to run. */
  frozenLeftMs: number | null;
  onExit: (exitCode: number) => void;
  /** What the attempt "printed". */
  log: string;
  followers: Set<PassThrough>;
}

/** FAKE_OUTPUTS: writes each declared output under `outputsDir`; returns those written (not a folder over another). */
async function writeFakeOutputs(outputsDir: string, outputs: readonly string[]): Promise<string[]> {
  const written: string[] = [];
  for (const output of outputs) {
    const path = join(outputsDir, outputArchiveName(output));
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, `${output}\n`);
      written.push(output);
    } catch (err) {
      // Outputs nested in one another cannot all be files: the rest are reported missing.
      if (!['EEXIST', 'ENOTDIR', 'EISDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  }
  return written;
}

export class FakeRuntime implements ContainerRuntime {
  readonly kind = 'fake' as const;
  /** Attempts started here and not yet stopped, running or exited. */
  private readonly runs = new Map<string, FakeRun>();
  /** Attempts whose job set FAKE_OUTPUTS. */
  private readonly writesOutputs = new Set<string>();

  async start(a: Assignment, onExit: (exitCode: number) => void): Promise<void> {
    const key = { jobId: a.jobId, epoch: a.epoch };
    const id = runKey(key);
    if (this.runs.has(id)) return;
    const parsed = Number(a.spec.env.FAKE_EXIT_CODE ?? 0);
    const code = Number.isInteger(parsed) ? parsed : 1;
    const ms = fakeDurationMs(a);
    const run: FakeRun = { key, timer: null, code, dueAt: Date.now() + ms, frozenLeftMs: null, onExit, log: `fake run of ${a.jobId} epoch ${a.epoch} for ${ms / 1000} s\n`, followers: new Set() };
    run.timer = setTimeout(() => this.exit(run, code), ms);
    this.runs.set(id, run);
    if (a.spec.env.FAKE_OUTPUTS !== undefined) this.writesOutputs.add(id);
  }

  /** SIGKILL, as Docker reports it: 128 + 9. */
  async kill(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (run?.timer) this.exit(run, 137);
  }

  async freeze(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (!run?.timer || run.frozenLeftMs !== null) return;
    clearTimeout(run.timer);
    run.frozenLeftMs = Math.max(0, run.dueAt - Date.now());
  }

  async thaw(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (!run?.timer || run.frozenLeftMs === null) return;
    const left = run.frozenLeftMs;
    run.frozenLeftMs = null;
    run.dueAt = Date.now() + left;
    run.timer = setTimeout(() => this.exit(run, run.code), left);
  }

  /** Whether the attempt is frozen (tests). */
  isFrozen(key: RunKey): boolean {
    return this.runs.get(runKey(key))?.frozenLeftMs != null;
  }

  private exit(run: FakeRun, code: number): void {
    if (run.timer) clearTimeout(run.timer);
    run.timer = null;
    run.frozenLeftMs = null;
    this.print(run, `exit code ${code}\n`);
    this.endFollowers(run);
    run.onExit(code);
  }

  async stop(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (!run) return;
    if (run.timer) clearTimeout(run.timer);
    this.endFollowers(run);
    this.runs.delete(runKey(key));
    this.writesOutputs.delete(runKey(key));
  }

  async running(): Promise<RunKey[]> {
    return [...this.runs.values()].filter((r) => r.timer !== null).map((r) => r.key);
  }

  async logs(key: RunKey, opts: { follow: boolean }): Promise<Readable> {
    const run = this.runs.get(runKey(key));
    if (!run) throw new Error(`job ${key.jobId} epoch ${key.epoch} has no run on this node`);
    const out = new PassThrough();
    out.write(run.log);
    if (opts.follow && run.timer !== null) {
      run.followers.add(out);
      out.on('close', () => run.followers.delete(out));
    } else {
      out.end();
    }
    return out;
  }

  async exportResult(key: RunKey, exitCode: number, outputs: readonly string[], tarPath: string): Promise<{ missing: string[]; failure: string | null }> {
    const run = this.runs.get(runKey(key));
    await mkdir(dirname(tarPath), { recursive: true });
    const workDir = await mkdtemp(join(dirname(tarPath), '.fake-result-'));
    let written: string[] = [];
    try {
      const logPath = join(workDir, 'log');
      await writeFile(logPath, run?.log ?? '');
      if (this.writesOutputs.has(runKey(key))) written = await writeFakeOutputs(join(workDir, 'outputs'), outputs);
      await writeResultArchive({ tarPath, workDir, logPath, exitCode, outputsDir: join(workDir, 'outputs') });
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
    return { missing: outputs.filter((o) => !written.includes(o)), failure: null };
  }

  private print(run: FakeRun, text: string): void {
    run.log += text;
    for (const f of run.followers) f.write(text);
  }

  private endFollowers(run: FakeRun): void {
    for (const f of run.followers) f.end();
    run.followers.clear();
  }
}
