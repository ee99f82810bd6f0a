// nodes drain and undrain: an operator moves the jobs off a node (each from a last
// checkpoint, taken by the node's own worker) and keeps new ones away, or undoes it.
import type { Command } from 'commander';
import { systemClock } from '../../src/util/clock.js';
import { formatSeconds, parseDurationSeconds } from '../../src/util/units.js';
import { ApiClient, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { type ClusterView, retryUnavailable } from './jobs.js';

interface DrainAnswer {
  id: string;
  draining: boolean;
  running: number;
}

interface DrainOptions extends ClientOptions {
  wait: boolean;
  undo?: boolean;
  timeout?: string;
  json?: boolean;
}

/** How often `drain` looks at the node while its jobs move. */
const DRAIN_POLL_MS = 1000;

function drainPath(node: string): string {
  return `/v1/cluster/nodes/${encodeURIComponent(node)}/drain`;
}

function print(answer: DrainAnswer, json: boolean | undefined, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(answer)}\n` : `${text}\n`);
}

/**
 * `nodes drain NODE`: records the drain, then (unless --no-wait) follows the node until
 * no job runs there, a line on stderr each time the count changes. --undo undrains.
 * Its client options are those of `nodes` (the parent command).
 */
export async function nodesDrainCommand(node: string, _opts: unknown, cmd: Command): Promise<void> {
  const o = cmd.optsWithGlobals<DrainOptions>();
  if (o.undo) {
    await undrain(node, o);
    return;
  }
  const timeoutMs = o.timeout === undefined ? Number.POSITIVE_INFINITY : 1000 * parseTimeout(o.timeout);
  const client = new ApiClient(o);
  const answer = (await retryUnavailable(() => client.request<DrainAnswer>('POST', drainPath(node)))).body;
  if (!o.wait) {
    print(answer, o.json, `${answer.id} draining: ${answer.running} job(s) running there move elsewhere`);
    return;
  }
  const started = Date.now();
  let last = -1;
  for (;;) {
    const c = (await retryUnavailable(() => client.request<ClusterView>('GET', '/v1/cluster'))).body;
    const n = c.nodes.find((x) => x.id === node);
    if (n === undefined) throw new CliError(`node ${node} is no longer listed`, EXIT.failed);
    if (n.draining === false) throw new CliError(`node ${node} was undrained meanwhile; ${n.running} job(s) run there`, EXIT.failed);
    if (n.running === 0) {
      print({ id: node, draining: true, running: 0 }, o.json, `${node} drained: no job runs there`);
      return;
    }
    const elapsed = formatSeconds((Date.now() - started) / 1000);
    if (n.running !== last) process.stderr.write(`[${elapsed}] ${node}: ${n.running} job(s) still running there, moving off\n`);
    last = n.running;
    if (Date.now() - started > timeoutMs) {
      process.stderr.write(`timed out after ${elapsed}: ${n.running} job(s) still run on ${node}; the drain goes on (workrs nodes shows it)\n`);
      process.exitCode = EXIT.timeout;
      return;
    }
    await systemClock.sleep(DRAIN_POLL_MS);
  }
}

/** `nodes undrain NODE` (and `nodes drain NODE --undo`): the node takes jobs again. */
export async function nodesUndrainCommand(node: string, _opts: unknown, cmd: Command): Promise<void> {
  await undrain(node, cmd.optsWithGlobals<DrainOptions>());
}

async function undrain(node: string, o: DrainOptions): Promise<void> {
  const client = new ApiClient(o);
  const answer = (await retryUnavailable(() => client.request<DrainAnswer>('DELETE', drainPath(node)))).body;
  print(answer, o.json, `${answer.id} undrained: it takes jobs again`);
}

function parseTimeout(text: string): number {
  try {
    return parseDurationSeconds(text);
  } catch (err) {
    throw new CliError(`--timeout: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
  }
}
