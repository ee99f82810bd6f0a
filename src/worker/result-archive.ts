// The result of an attempt as one tar archive (API.md `GET /v1/jobs/:id/result`):
//
//   stdout.log   the job's output, stdout and stderr in the order written, including
//                what a resumed attempt inherited from its checkpoint
//   exit-code    the exit code and a newline
//   <outputs>    each declared output under its path relative to /work
//
// Both runtimes write it after the attempt exits and before its container goes; the
// worker stores it as a blob on k nodes before reporting the exit.
import { createWriteStream } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { WORK_DIR } from '../state/spec.js';
import { tarStream, type TarEntry } from './tar-pack.js';

export const RESULT_LOG = 'stdout.log';
export const RESULT_EXIT_CODE = 'exit-code';
/** Names an output may not have at the top of the archive. */
export const RESULT_RESERVED = [RESULT_LOG, RESULT_EXIT_CODE] as const;

/** An output's path inside the archive: its path relative to /work. */
export function outputArchiveName(outputPath: string): string {
  const prefix = `${WORK_DIR}/`;
  return outputPath.startsWith(prefix) ? outputPath.slice(prefix.length) : outputPath.replace(/^\/+/, '');
}

async function filesUnder(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(join(dir, rel), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const name = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await filesUnder(dir, name)));
    else if (e.isFile()) out.push(name);
  }
  return out;
}

/**
 * Writes the archive to `tarPath` from a folder prepared by the runtime: `logPath`
 * holds the log, `outputsDir` the collected outputs under their archive names.
 */
export async function writeResultArchive(opts: { tarPath: string; workDir: string; logPath: string; exitCode: number; outputsDir: string }): Promise<void> {
  const exitPath = join(opts.workDir, 'exit-code');
  await writeFile(exitPath, `${opts.exitCode}\n`);
  const entries: TarEntry[] = [
    { kind: 'file', name: RESULT_LOG, mode: 0o644, sourcePath: opts.logPath },
    { kind: 'file', name: RESULT_EXIT_CODE, mode: 0o644, sourcePath: exitPath },
  ];
  for (const name of await filesUnder(opts.outputsDir)) entries.push({ kind: 'file', name, mode: 0o644, sourcePath: join(opts.outputsDir, name) });
  await pipeline(tarStream(entries), createWriteStream(opts.tarPath));
}
