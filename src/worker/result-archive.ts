// The result of an attempt as one tar archive (docs/api.md `GET /v1/jobs/:id/result`):
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
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WORK_DIR } from '../state/spec.js';
import { tarStream, type TarEntry } from './tar-pack.js';

export const RESULT_LOG = 'stdout.log';
export const RESULT_EXIT_CODE = 'exit-code';
/** Names an output may not have at the top of the archive. */
export const RESULT_RESERVED = [RESULT_LOG, RESULT_EXIT_CODE] as const;

/**
 * The declared outputs of one attempt are larger than the node's cap (--max-result-mb):
 * the attempt fails with this message as its reason, and its result keeps the log and
 * the exit code only.
 */
export class ResultTooLargeError extends Error {
  constructor(readonly limitBytes: number, readonly output: string) {
    super(`the job's outputs exceed this node's limit of ${formatMiB(limitBytes)} per result (--max-result-mb), at ${output}: the result keeps only the log and the exit code`);
    this.name = 'ResultTooLargeError';
  }
}

function formatMiB(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return Number.isInteger(mib) ? `${mib} MiB` : `${bytes} bytes`;
}

/**
 * Counts the outputs of one attempt against the cap while they stream in (tar
 * headers included), so a job cannot fill the node's disk before the count says no.
 */
export class OutputBudget {
  usedBytes = 0;
  /** Set once the total passed the cap: the reason the attempt fails. */
  exceeded: ResultTooLargeError | null = null;

  constructor(readonly limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 0) throw new Error(`OutputBudget: limitBytes must be a whole number >= 0, got ${limitBytes}`);
  }

  /** A pass-through for one output's stream: fails with ResultTooLargeError once the total passes the cap. */
  meter(output: string): Transform {
    return new Transform({
      transform: (chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) => {
        this.usedBytes += chunk.length;
        if (this.usedBytes > this.limitBytes) {
          this.exceeded ??= new ResultTooLargeError(this.limitBytes, output);
          done(this.exceeded);
        } else {
          done(null, chunk);
        }
      },
    });
  }
}

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
