// logs and result: what a job printed and produced, streamed from any node.
import { pipeline } from 'node:stream/promises';
import { extractTar } from '../../src/util/tar-extract.js';
import { ApiClient, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';

export async function logsCommand(job: string, o: ClientOptions & { follow?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const body = await client.stream(`/v1/jobs/${encodeURIComponent(job)}/logs${o.follow ? '?follow=1' : ''}`);
  await pipeline(body, process.stdout, { end: false });
}

/**
 * With -o DIR: unpacks the result (stdout.log, exit-code, the declared outputs) into
 * DIR and lists it on stderr. Without: writes the tar to stdout, unless that is a
 * terminal.
 */
export async function resultCommand(job: string, o: ClientOptions & { output?: string }): Promise<void> {
  if (o.output === undefined && process.stdout.isTTY) {
    throw new CliError('the result is a tar archive: give -o DIR to unpack it, or redirect stdout to a file', EXIT.usage);
  }
  const client = new ApiClient(o);
  const body = await client.stream(`/v1/jobs/${encodeURIComponent(job)}/result`);
  if (o.output === undefined) {
    await pipeline(body, process.stdout, { end: false });
    return;
  }
  const out = await extractTar(body, o.output);
  for (const f of out.files) process.stderr.write(`${o.output.replace(/\/+$/, '')}/${f}\n`);
  for (const s of out.skipped) process.stderr.write(`skipped ${s.name}: ${s.why}\n`);
}
