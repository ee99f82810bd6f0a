// The built binary run as the CLI, without blocking the test's event loop (spawnSync
// would: kept-alive sockets the nodes close meanwhile would then look open to the
// test's next requests).
import { spawn } from 'node:child_process';
import { BINARY } from '../process/harness.js';

export interface CliRun {
  /** The exit code; null when killed (the timeout). */
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `workrs ...args` with `env` added to this process's (a cluster's cliEnv: its token and CA); kills it after `timeoutMs`. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const proc = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => out.push(c));
    proc.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}
