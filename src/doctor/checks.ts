// Checks that this box can run Workrs: the ones `workrs doctor` prints and the
// setup tests assert. Each returns a result; none throws.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { connectDocker } from '../worker/docker-endpoint.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

const execFileP = promisify(execFile);

// runc finds criu through PATH; the wrapper installed by setup lives in /usr/local/sbin.
export const CRIU_SEARCH_PATH = `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}`;

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Opens a LevelDB in a fresh folder, writes with sync, reads back: proves the native addon loads. */
export async function checkStorage(): Promise<CheckResult> {
  const dir = await mkdtemp(join(tmpdir(), 'workrs-doctor-'));
  try {
    const db = new ClassicLevel<string, string>(dir, { valueEncoding: 'utf8' });
    await db.open();
    await db.put('probe', 'ok', { sync: true });
    const value = await db.get('probe');
    await db.close();
    if (value !== 'ok') return { name: 'storage', ok: false, detail: `LevelDB read back ${String(value)}` };
    return { name: 'storage', ok: true, detail: 'LevelDB (classic-level) opened, wrote with sync, read back' };
  } catch (err) {
    return { name: 'storage', ok: false, detail: `LevelDB failed: ${describe(err)}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function checkDocker(url?: string): Promise<CheckResult> {
  try {
    const docker = connectDocker(url);
    const version = await docker.version();
    // The engine reports Experimental only when started with --experimental; the type omits it.
    const experimental = (version as { Experimental?: boolean }).Experimental === true;
    if (!experimental) {
      return { name: 'docker', ok: false, detail: `engine ${version.Version} is not in experimental mode: checkpoint/restore is unavailable` };
    }
    return { name: 'docker', ok: true, detail: `engine ${version.Version} (API ${version.ApiVersion}), experimental` };
  } catch (err) {
    return { name: 'docker', ok: false, detail: `no Docker engine answers: ${describe(err)} (run: make setup)` };
  }
}

export async function checkCriu(): Promise<CheckResult> {
  try {
    const env = { ...process.env, PATH: CRIU_SEARCH_PATH };
    const { stdout } = await execFileP('criu', ['--version'], { env, timeout: 30_000 });
    await execFileP('criu', ['check'], { env, timeout: 60_000 });
    const version = /Version:\s*(\S+)/.exec(stdout)?.[1] ?? 'unknown';
    return { name: 'criu', ok: true, detail: `criu ${version}: 'criu check' passes` };
  } catch (err) {
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String(err.stderr).trim() : '';
    return { name: 'criu', ok: false, detail: `criu unavailable or failing: ${stderr || describe(err)} (run: make setup)` };
  }
}
