// A simulated runtime: an attempt "runs" for env.FAKE_SECONDS (else the job's
// estimateSeconds, else 1 s), then exits with env.FAKE_EXIT_CODE (else 0). It keeps
// the whole cluster path (assignment, start and exit reports, fencing, reassignment,
// checkpoints and resumes, logs and result archives) testable without Docker. With
// env.FAKE_OUTPUTS set, each declared output exists in the result as a file holding
// its own path.
//
// Time is the injected clock's: an attempt's progress is the time it spent executing
// (frozen time excluded), a checkpoint captures that progress and a restore goes on
// from it, so on simulated time (ManualClock) a run is deterministic and the
// whole-node simulator can follow every attempt through onEvent.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { Assignment } from '../state/views.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { outputArchiveName, writeResultArchive } from './result-archive.js';
import { runKey, type CheckpointResult, type ContainerRuntime, type LogRead, type RunKey } from './runtime.js';

export function fakeDurationMs(a: Assignment): number {
  const fromEnv = Number(a.spec.env.FAKE_SECONDS);
  const seconds = Number.isFinite(fromEnv) && fromEnv >= 0 && a.spec.env.FAKE_SECONDS !== undefined ? fromEnv : (a.spec.estimateSeconds ?? 1);
  return Math.round(seconds * 1000);
}

/**
 * What happened to a run, in order. `start`, `restore` and `thaw` begin a stretch of
 * execution; `freeze`, `exit` and `stop` end it (`stop` is reported only for a run that
 * had not exited). `checkpoint` captures the progress a later `restore` resumes from.
 */
export interface FakeRunEvent {
  type: 'start' | 'restore' | 'freeze' | 'thaw' | 'checkpoint' | 'exit' | 'stop';
  jobId: string;
  epoch: number;
  /** clock.monotonic() when it happened. */
  at: number;
  /** Milliseconds of work the attempt had done by then. */
  progressMs: number;
  /** On `checkpoint` and `restore`: the checkpoint's name (the checkpointer's c<seq>). */
  checkpoint?: string;
  /** On `restore`: the attempt the checkpoint was taken of. */
  fromEpoch?: number;
  /** On `exit`. */
  exitCode?: number;
}

export interface FakeRuntimeOptions {
  clock?: Clock;
  /** Called synchronously on every FakeRunEvent. */
  onEvent?: (event: FakeRunEvent) => void;
  /** Where checkpoint bundles are made (each in a fresh folder); the system's temporary folder by default. */
  checkpointDir?: string;
}

/** The one file of a fake checkpoint bundle. */
export const FAKE_CHECKPOINT_FILE = 'fake-checkpoint.json';

interface FakeCheckpoint {
  jobId: string;
  epoch: number;
  name: string;
  progressMs: number;
  log: string;
}

interface FakeRun {
  key: RunKey;
  code: number;
  durationMs: number;
  /** Work done up to `since` (or in all, while frozen and once exited). */
  doneMs: number;
  /** clock.monotonic() since when it executes; null while frozen and once exited. */
  since: number | null;
  /** Fires when the work is done; null while frozen and once exited. */
  timer: Timer | null;
  exited: boolean;
  onExit: (exitCode: number) => void;
  /** What the attempt "printed". */
  log: string;
  /** Characters of `log` inherited from a checkpoint: they have no time, as on Docker. */
  inherited: number;
  /** When (clock.now()) each later piece of `log` was printed, and where it begins. */
  printed: Array<{ at: number; offset: number }>;
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

function exitCodeOf(a: Assignment): number {
  const parsed = Number(a.spec.env.FAKE_EXIT_CODE ?? 0);
  return Number.isInteger(parsed) ? parsed : 1;
}

function parseFakeCheckpoint(text: string): FakeCheckpoint {
  const v = JSON.parse(text) as Partial<FakeCheckpoint>;
  if (typeof v.jobId !== 'string' || typeof v.epoch !== 'number' || typeof v.name !== 'string' || typeof v.progressMs !== 'number' || typeof v.log !== 'string') {
    throw new Error('not a fake checkpoint');
  }
  return { jobId: v.jobId, epoch: v.epoch, name: v.name, progressMs: v.progressMs, log: v.log };
}

export class FakeRuntime implements ContainerRuntime {
  readonly kind = 'fake' as const;
  private readonly clock: Clock;
  private readonly onEvent: (event: FakeRunEvent) => void;
  private readonly checkpointDir: string;
  /** Attempts started here and not yet stopped, running or exited. */
  private readonly runs = new Map<string, FakeRun>();
  /** Attempts whose job set FAKE_OUTPUTS. */
  private readonly writesOutputs = new Set<string>();

  constructor(opts: FakeRuntimeOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.onEvent = opts.onEvent ?? (() => {});
    this.checkpointDir = opts.checkpointDir ?? tmpdir();
  }

  async start(a: Assignment, onExit: (exitCode: number) => void): Promise<void> {
    if (this.runs.has(runKey(a))) return;
    const ms = fakeDurationMs(a);
    this.begin(a, onExit, 0, '', `fake run of ${a.jobId} epoch ${a.epoch} for ${ms / 1000} s\n`);
    this.emit('start', this.runs.get(runKey(a))!);
  }

  /**
   * Resumes an attempt from a bundle made by checkpoint() (of this or an earlier
   * attempt of the job): it goes on from the checkpoint's progress and log.
   */
  async restore(a: Assignment, bundleDir: string, onExit: (exitCode: number) => void): Promise<{ restored: true } | { restored: false; reason: string }> {
    let cp: FakeCheckpoint;
    try {
      // Synchronous, like the capture: nothing waits on the disk on simulated time.
      cp = parseFakeCheckpoint(readFileSync(join(bundleDir, FAKE_CHECKPOINT_FILE), 'utf8'));
    } catch (err) {
      return { restored: false, reason: `no fake checkpoint in ${bundleDir}: ${err instanceof Error ? err.message : String(err)}` };
    }
    if (cp.jobId !== a.jobId) return { restored: false, reason: `the checkpoint is of job ${cp.jobId}, not ${a.jobId}` };
    if (this.runs.has(runKey(a))) return { restored: true };
    const run = this.begin(a, onExit, cp.progressMs, cp.log, `resumed as epoch ${a.epoch} from ${cp.name} at ${cp.progressMs / 1000} s\n`);
    this.emit('restore', run, { checkpoint: cp.name, fromEpoch: cp.epoch });
    return { restored: true };
  }

  /** Captures the attempt's progress (and log) into a fresh bundle folder; no time passes. */
  async checkpoint(key: RunKey, name: string): Promise<CheckpointResult> {
    const run = this.runs.get(runKey(key));
    if (!run || run.exited) throw new Error(`job ${key.jobId} epoch ${key.epoch} is not running on this node`);
    if (run.since === null) throw new Error(`job ${key.jobId} epoch ${key.epoch} is frozen: no checkpoint until it is thawed`);
    const cp: FakeCheckpoint = { jobId: key.jobId, epoch: key.epoch, name, progressMs: this.progressOf(run), log: run.log };
    const bundleDir = mkdtempSync(join(this.checkpointDir, 'workrs-fake-checkpoint-'));
    const text = JSON.stringify(cp);
    writeFileSync(join(bundleDir, FAKE_CHECKPOINT_FILE), text);
    this.emit('checkpoint', run, { checkpoint: name });
    const bytes = Buffer.byteLength(text);
    return { bundleDir, name, durationMs: 0, frozenMs: 0, bytes, criuBytes: bytes, imageBytes: 0, logOffset: Buffer.byteLength(run.log) };
  }

  /** SIGKILL, as Docker reports it: 128 + 9. */
  async kill(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (run && !run.exited) this.exit(run, 137);
  }

  async freeze(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (!run || run.exited || run.since === null) return;
    this.pause(run);
    this.emit('freeze', run);
  }

  async thaw(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (!run || run.exited || run.since !== null) return;
    this.resume(run);
    this.emit('thaw', run);
  }

  /** Whether the attempt is frozen. */
  isFrozen(key: RunKey): boolean {
    const run = this.runs.get(runKey(key));
    return run !== undefined && !run.exited && run.since === null;
  }

  /** Attempts executing now: started or resumed, and neither frozen nor exited. */
  executing(): RunKey[] {
    return [...this.runs.values()].filter((r) => r.since !== null).map((r) => r.key);
  }

  /** Milliseconds of work the attempt has done, or null when this runtime does not know it. */
  progressMs(key: RunKey): number | null {
    const run = this.runs.get(runKey(key));
    return run === undefined ? null : this.progressOf(run);
  }

  async stop(key: RunKey): Promise<void> {
    const run = this.runs.get(runKey(key));
    if (!run) return;
    if (!run.exited) {
      this.pause(run);
      this.emit('stop', run);
    }
    this.endFollowers(run);
    this.runs.delete(runKey(key));
    this.writesOutputs.delete(runKey(key));
  }

  async running(): Promise<RunKey[]> {
    return [...this.runs.values()].filter((r) => !r.exited).map((r) => r.key);
  }

  async logs(key: RunKey, opts: LogRead): Promise<Readable> {
    const run = this.runs.get(runKey(key));
    if (!run) throw new Error(`job ${key.jobId} epoch ${key.epoch} has no run on this node`);
    const out = new PassThrough();
    if (opts.sinceMs === undefined) {
      out.write(run.log);
    } else {
      const from = run.printed.find((p) => p.at >= (opts.sinceMs ?? 0))?.offset ?? run.log.length;
      out.write(`${opts.withInherited === true ? run.log.slice(0, run.inherited) : ''}${run.log.slice(from)}`);
    }
    if (opts.follow && !run.exited) {
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

  /** Registers a run that executes from `doneMs` of work on. */
  private begin(a: Assignment, onExit: (exitCode: number) => void, doneMs: number, inherited: string, first: string): FakeRun {
    const key = { jobId: a.jobId, epoch: a.epoch };
    const printed = [{ at: this.clock.now(), offset: inherited.length }];
    const run: FakeRun = { key, code: exitCodeOf(a), durationMs: fakeDurationMs(a), doneMs, since: null, timer: null, exited: false, onExit, log: inherited + first, inherited: inherited.length, printed, followers: new Set() };
    this.runs.set(runKey(key), run);
    if (a.spec.env.FAKE_OUTPUTS !== undefined) this.writesOutputs.add(runKey(key));
    this.resume(run);
    return run;
  }

  private progressOf(run: FakeRun): number {
    const executing = run.since === null ? 0 : this.clock.monotonic() - run.since;
    return Math.min(run.durationMs, run.doneMs + executing);
  }

  /** Starts the clock of a run that does not execute: it exits once the rest of its work is done. */
  private resume(run: FakeRun): void {
    run.since = this.clock.monotonic();
    run.timer = this.clock.after(Math.max(0, run.durationMs - run.doneMs), () => this.exit(run, run.code));
  }

  /** Stops the clock of an executing run, keeping the work done. */
  private pause(run: FakeRun): void {
    run.doneMs = this.progressOf(run);
    run.since = null;
    run.timer?.cancel();
    run.timer = null;
  }

  private exit(run: FakeRun, code: number): void {
    this.pause(run);
    run.exited = true;
    this.print(run, `exit code ${code}\n`);
    this.endFollowers(run);
    this.emit('exit', run, { exitCode: code });
    run.onExit(code);
  }

  private emit(type: FakeRunEvent['type'], run: FakeRun, extra: Partial<FakeRunEvent> = {}): void {
    this.onEvent({ type, jobId: run.key.jobId, epoch: run.key.epoch, at: this.clock.monotonic(), progressMs: this.progressOf(run), ...extra });
  }

  private print(run: FakeRun, text: string): void {
    run.printed.push({ at: this.clock.now(), offset: run.log.length });
    run.log += text;
    for (const f of run.followers) f.write(text);
  }

  private endFollowers(run: FakeRun): void {
    for (const f of run.followers) f.end();
    run.followers.clear();
  }
}
