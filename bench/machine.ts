// What a benchmark ran on, read from the machine at run time so that bench/RESULTS.md
// never carries a hand-written fact: cores, kernel, CPU, memory, load, the Docker
// engines and CRIU, the workrs binary under test and the source it was built from.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import type Docker from 'dockerode';

const execFileP = promisify(execFile);

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { timeout: 20_000 });
    return (stdout || stderr).trim();
  } catch (err) {
    return `(${cmd} ${args.join(' ')} failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
}

async function cpuModel(): Promise<string> {
  const text = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'unknown';
}

export async function engineVersion(docker: Docker): Promise<string> {
  const v = await docker.version();
  return `Docker ${v.Version} (API ${v.ApiVersion}, ${(v as { Experimental?: boolean }).Experimental === true ? 'experimental' : 'not experimental'})`;
}

export const loadAverage = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' / ');

/** Markdown bullet lines. */
export async function machineFacts(opts: { binary: string; engines: Array<{ name: string; docker: Docker }> }): Promise<string[]> {
  const [kernel, criu, binary, head, dirty] = await Promise.all([
    run('uname', ['-srm']),
    run('criu', ['--version']),
    run(opts.binary, ['version']),
    run('git', ['rev-parse', '--short', 'HEAD']),
    run('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'cli', 'raft']),
  ]);
  const engines = await Promise.all(opts.engines.map(async (e) => `${e.name}: ${await engineVersion(e.docker)}`));
  return [
    `nproc ${os.availableParallelism()} (${await cpuModel()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, kernel ${kernel}`,
    `load average (1/5/15 min) at the start: ${loadAverage()}`,
    `engines: ${engines.join('; ')}`,
    `CRIU: ${criu.replace(/\s*\n\s*/g, ', ')} (/usr/local/sbin/criu wrapper, CRIU_FAULT=130)`,
    `Node ${process.version}; binary under test: ${opts.binary}: ${binary}`,
    `source tree at HEAD ${head}${dirty === '' ? '' : ` with uncommitted changes in src/, cli/ or raft/ (the binary may contain them)`}`,
  ];
}
