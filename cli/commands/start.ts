import { join } from 'node:path';
import { destination, pino } from 'pino';
import { loadConfigFile, resolveNodeOptions, type RawOptions } from '../../src/config/node-options.js';
import { WorkrsError } from '../../src/errors.js';
import { WorkrsNode } from '../../src/node/workrs-node.js';
import { CliError, EXIT } from '../exit.js';

export async function startCommand(given: RawOptions): Promise<void> {
  let opts;
  try {
    const file = typeof given.config === 'string' ? loadConfigFile(given.config) : {};
    opts = resolveNodeOptions(given, file);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.usage);
  }
  const level = process.env.WORKRS_LOG_LEVEL ?? opts.logLevel;
  // Synchronous writes to stderr: no worker threads, and nothing lost on a crash.
  const logger = pino({ level, base: { node: opts.id } }, destination({ fd: 2, sync: true }));
  let node: WorkrsNode;
  try {
    node = await WorkrsNode.start(opts, logger);
  } catch (err) {
    if (err instanceof WorkrsError) throw new CliError(err.message, EXIT.failed, { cause: err });
    throw err;
  }
  for (const w of opts.warnings) process.stderr.write(`workrs: ${w}\n`);
  const api = `${node.tls ? 'https' : 'http'}://${opts.api.host}:${node.apiPort}`;
  process.stderr.write(`workrs ${opts.id}: API ${api}, peer ${opts.peer.host}:${opts.peer.port}, data ${opts.dataDir}, runtime ${opts.runtime}\n`);
  if (node.tls) process.stderr.write(`workrs ${opts.id}: secure mode; cluster CA sha256:${node.tls.fingerprint} (${join(opts.dataDir, 'ca.pem')})\n`);
  else process.stderr.write('workrs: dev mode (no --secret-file): plain HTTP, no API tokens, loopback only\n');

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`workrs ${opts.id}: ${signal}: stopping gracefully\n`);
      node.stop().then(resolve, (err: unknown) => {
        logger.error({ err }, 'graceful stop failed');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // UNSAFE, tests only: SIGUSR2 corrupts this replica's state, for the divergence test.
    if (process.env.WORKRS_TEST_HOOKS === 'corrupt-state') {
      process.on('SIGUSR2', () => process.stderr.write(`workrs ${opts.id}: TEST HOOK: state corrupted: ${node.corruptStateForTest()}\n`));
    }
  });
}
