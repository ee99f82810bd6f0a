// The capture hook: a checkpoint's filesystem copied while CRIU holds the job frozen.
//
// A checkpoint must capture memory and files at one instant. Pausing the container
// around the whole `docker checkpoint create` and a `docker commit` does that, but then
// the job stays frozen for the engine's work after the dump too: Docker tars the CRIU
// images into containerd's store before the call returns, seconds at a few hundred MB
// (docs/host.md, "One-instant capture"). CRIU runs action scripts at fixed points of a dump,
// and `post-dump` comes after the dump and before it lets the tasks run again. runc
// hands CRIU the configuration file /etc/criu/runc.conf, and an `action-script` line
// there names a script for every dump runc makes. So:
// - the node writes a request, /run/workrs-criu/<the container's init pid>, before it
//   asks the engine for a checkpoint: the container's overlay upper directory, where
//   to copy it, and the container's log file;
// - at post-dump the hook copies the upper directory (cp -a: owners, modes, links,
//   devices as overlay's whiteouts, xattrs as its opaque marks) and the log files
//   there, then marks the copy `done` (or `failed`: it never fails the dump itself).
//   The job waits for every process the hook starts: one cp, the rest is built into sh;
// - how long the job was frozen comes from its freezer cgroup (freeze-watch.ts).
// Every other dump on the host (no request for its pid) passes through at once; CRIU
// runs the script twice per point, the second finds the copy made and does nothing.
// The node installs the hook when it can (root); otherwise, or when the hook did not
// run, a checkpoint pauses the container around dump and commit as before.
import { chmod, lstat, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../util/write-file-atomic.js';
import { errnoOf } from '../util/errno.js';

/** Where the hook is installed, and the CRIU configuration runc passes to every dump. */
export const HOOK_PATH = '/usr/local/libexec/workrs-criu-hook';
export const RUNC_CRIU_CONF = '/etc/criu/runc.conf';
/** Requests, one file per container init pid: root's alone (tmpfs, gone at reboot). */
export const REQUEST_DIR = '/run/workrs-criu';

const HOOK_VERSION = 2;
const CONF_LINE = `action-script ${HOOK_PATH}`;

/** The hook script; its first lines let every dump without a request through at once. */
export const HOOK_SCRIPT = `#!/bin/sh
# workrs criu capture hook v${HOOK_VERSION}: installed by workrs (src/worker/criu-hook.ts) and
# named in ${RUNC_CRIU_CONF}. Copies a job's files while CRIU holds it frozen, when its
# node asked for it in ${REQUEST_DIR}/<init pid>; every other dump passes through. The
# job waits for every process started here: one cp, the rest is built into sh.
[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0
req="${REQUEST_DIR}/$CRTOOLS_INIT_PID"
[ -n "$CRTOOLS_INIT_PID" ] && [ -f "$req" ] || exit 0
{ read -r upper; read -r dest; read -r logfile; } < "$req" || exit 0
case "$dest" in /*) ;; *) exit 0 ;; esac
[ -d "$dest" ] && [ ! -e "$dest/done" ] && [ ! -e "$dest/failed" ] || exit 0
set -- "$upper" "$logfile"
for f in "$logfile".*; do [ -f "$f" ] && set -- "$@" "$f"; done
if cp -a "$@" "$dest/"; then : > "$dest/done"; else : > "$dest/failed"; fi
exit 0
`;


async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Installs the hook (script, configuration line, request folder) when this process
 * may; true when it is in place. Never throws: without the hook, checkpoints pause.
 * A runc.conf of the host's own keeps its lines; ours is added once.
 */
export async function ensureCaptureHook(log: Logger): Promise<boolean> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) {
    log.info('not root: checkpoints pause the job around dump and commit (no CRIU capture hook)');
    return false;
  }
  try {
    await mkdir(dirname(HOOK_PATH), { recursive: true, mode: 0o755 });
    if ((await readOrNull(HOOK_PATH)) !== HOOK_SCRIPT) writeFileAtomic(HOOK_PATH, HOOK_SCRIPT, 0o755);
    await mkdir(dirname(RUNC_CRIU_CONF), { recursive: true, mode: 0o755 });
    const conf = await readOrNull(RUNC_CRIU_CONF);
    const lines = (conf ?? '').split('\n');
    if (!lines.some((l) => l.trim() === CONF_LINE)) {
      const kept = conf === null || conf === '' ? '' : conf.endsWith('\n') ? conf : `${conf}\n`;
      writeFileAtomic(RUNC_CRIU_CONF, `${kept}# workrs: copy a job's files while CRIU holds it frozen (${HOOK_PATH})\n${CONF_LINE}\n`, 0o644);
    }
    await mkdir(REQUEST_DIR, { recursive: true, mode: 0o700 });
    const st = await lstat(REQUEST_DIR);
    if (!st.isDirectory() || st.uid !== 0) throw new Error(`${REQUEST_DIR} is not a folder of root's`);
    await chmod(REQUEST_DIR, 0o700);
    return true;
  } catch (err) {
    log.warn({ err }, 'cannot install the CRIU capture hook: checkpoints pause the job around dump and commit');
    return false;
  }
}

/** Whether checkpoints use the hook: installed on first use, given up on when it did not run. */
export class CaptureHook {
  private installed: Promise<boolean> | null = null;
  private disabled = false;

  constructor(
    private readonly log: Logger,
    private readonly install: (log: Logger) => Promise<boolean> = ensureCaptureHook,
  ) {}

  async usable(): Promise<boolean> {
    if (this.disabled) return false;
    this.installed ??= this.install(this.log);
    return (await this.installed) && !this.disabled;
  }

  disable(reason: string): void {
    if (!this.disabled) this.log.warn({ reason }, 'checkpoints pause the job around dump and commit from now on');
    this.disabled = true;
  }
}

/** What a capture asks of the hook. */
export interface CaptureRequest {
  /** The container's init pid on the host (State.Pid): CRIU's CRTOOLS_INIT_PID. */
  initPid: number;
  /** The container's overlay upper directory. */
  upperDir: string;
  /** An empty folder: the hook copies into it (the upper directory under its own name, the log files). */
  dest: string;
  /** The container's json-file log (LogPath); its rotated files end in .1, .2, … */
  logPath: string;
}

const requestPath = (initPid: number): string => join(REQUEST_DIR, String(initPid));

/** Writes the request; returns its removal. */
export async function placeRequest(req: CaptureRequest): Promise<() => Promise<void>> {
  if (!Number.isInteger(req.initPid) || req.initPid <= 1) throw new Error(`container init pid ${req.initPid} is not a process to capture`);
  for (const p of [req.upperDir, req.dest, req.logPath]) {
    if (!p.startsWith('/') || /[\n\r\0]/.test(p)) throw new Error(`capture path '${p}' must be absolute and on one line`);
  }
  const path = requestPath(req.initPid);
  await mkdir(REQUEST_DIR, { recursive: true, mode: 0o700 });
  writeFileAtomic(path, `${req.upperDir}\n${req.dest}\n${req.logPath}\n`, 0o600);
  return () => rm(path, { force: true });
}

/** What the hook left in the request's folder: the copied upper directory, and the log files' name. */
export interface HookCapture {
  upperCopy: string;
  logsDir: string;
  logName: string;
}

/**
 * The hook's copy for `req` (its folder made before the dump); null when the hook did
 * not run (not configured for this dump), an error when it could not copy.
 */
export async function readCapture(req: Pick<CaptureRequest, 'dest' | 'upperDir' | 'logPath'>): Promise<HookCapture | null> {
  const exists = async (name: string): Promise<boolean> => {
    try {
      await stat(join(req.dest, name));
      return true;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return false;
      throw err;
    }
  };
  if (await exists('failed')) throw new Error("the capture hook could not copy the container's files");
  if (!(await exists('done'))) return null;
  return { upperCopy: join(req.dest, basename(req.upperDir)), logsDir: req.dest, logName: basename(req.logPath) };
}

/**
 * The merged output (stdout and stderr in the order the engine logged them) of the
 * json-file log files in `logsDir` (`<logName>` and its rotated `<logName>.N`, oldest
 * first), written to `outPath`: the bytes `docker logs` would give.
 */
export async function mergeJsonFileLogs(logsDir: string, logName: string, outPath: string): Promise<void> {
  const names = (await readdir(logsDir)).filter((n) => n === logName || (n.startsWith(`${logName}.`) && /^\d+$/.test(n.slice(logName.length + 1))));
  const rotation = (n: string): number => {
    const m = /\.(\d+)$/.exec(n);
    return m ? Number(m[1]) : 0;
  };
  const ordered = names.filter((n) => !n.endsWith('.gz')).sort((a, b) => rotation(b) - rotation(a));
  const out = createWriteStream(outPath);
  const write = (chunk: string): Promise<void> | undefined => (out.write(chunk, 'utf8') ? undefined : new Promise<void>((r) => out.once('drain', () => r())));
  try {
    for (const name of ordered) {
      const lines = createInterface({ input: createReadStream(join(logsDir, name)), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line === '') continue;
        let entry: unknown;
        try {
          entry = JSON.parse(line);
        } catch {
          continue; // a line cut by the copy at the freeze: the job wrote it after
        }
        const text = (entry as { log?: unknown } | null)?.log;
        if (typeof text === 'string') await write(text);
      }
    }
  } finally {
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
