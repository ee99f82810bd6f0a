// logs and result: what a job printed and produced, streamed from any node.
import { pipeline } from 'node:stream/promises';
import { extractTar, TarExtractError } from '../../src/util/tar-extract.js';
import { parseDurationSeconds, parseSizeMB } from '../../src/util/units.js';
import { ApiClient, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';

/**
 * --since as the API's `since`: a duration back from now (10m, 1h; this machine's
 * clock) as Unix seconds, or an RFC 3339 time passed on as given (the server checks it).
 */
export function sinceParam(since: string, nowMs: number): string {
  const text = since.trim();
  if (/^\d{4}-\d{2}-\d{2}[Tt ]/.test(text)) return text;
  let seconds: number;
  try {
    seconds = parseDurationSeconds(text);
  } catch (err) {
    throw new CliError(`--since: '${since}' is neither a duration (10m, 1h) nor an RFC 3339 time (2026-12-07T10:00:00Z): ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
  }
  return (Math.max(0, nowMs - seconds * 1000) / 1000).toFixed(3);
}

/** What `logs --since` needs of the job (GET /v1/jobs/:id). */
interface JobTimes {
  id: string;
  state: string;
  startedAt: number | null;
  attempts: Array<{ fromCheckpoint: unknown }>;
}

/**
 * The server leaves out output that has no time when `since` is after the job's first
 * start (docs/api.md): a finished job's log, what a resumed attempt inherited. Said on
 * stderr, so that an empty or short answer is not mistaken for all there is.
 */
function untimedNote(job: JobTimes, sinceMs: number): string | null {
  if (job.startedAt === null || sinceMs <= job.startedAt) return null;
  if (job.state !== 'pending' && job.state !== 'running') return `workrs: job ${job.id} is ${job.state}: its log has no time per line, so --since after its first start shows none of it; workrs logs without --since shows it all\n`;
  if (job.state === 'running' && job.attempts.at(-1)?.fromCheckpoint) return `workrs: what job ${job.id} printed before it resumed from its checkpoint has no time, so --since leaves it out; workrs logs without --since shows it\n`;
  return null;
}

export async function logsCommand(job: string, o: ClientOptions & { follow?: boolean; tail?: string; since?: string }): Promise<void> {
  const client = new ApiClient(o);
  // One `since` for both requests of --tail -f, so the second skips exactly what the first read.
  const since = o.since === undefined ? null : sinceParam(o.since, Date.now());
  let ref = job;
  if (since !== null) {
    // The job once, by the reference given: its id from then on, and whether output will be left out.
    const view = (await client.request<JobTimes>('GET', `/v1/jobs/${encodeURIComponent(job)}`)).body;
    ref = view.id;
    const sinceMs = /^[\d.]+$/.test(since) ? Number(since) * 1000 : Date.parse(since.replace(' ', 'T'));
    const note = untimedNote(view, sinceMs);
    if (note !== null) process.stderr.write(note);
  }
  const base = new URLSearchParams(since === null ? {} : { since });
  const path = `/v1/jobs/${encodeURIComponent(ref)}/logs`;
  const url = (follow: boolean): string => {
    const q = new URLSearchParams(base);
    if (follow) q.set('follow', '1');
    const s = q.toString();
    return s === '' ? path : `${path}?${s}`;
  };
  if (o.tail === undefined) {
    await pipeline(await client.stream(url(o.follow === true)), process.stdout, { end: false });
    return;
  }
  const lines = Number(o.tail);
  if (!Number.isSafeInteger(lines) || lines < 0) throw new CliError(`--tail: '${o.tail}' is not a whole number of lines ≥ 0`, EXIT.usage);
  // The log so far, keeping its last lines only; with -f, the followed log from there on
  // (a log only grows: what the first read saw is skipped in the second).
  const { tail, bytes } = await lastLines(await client.stream(url(false)), lines);
  process.stdout.write(tail);
  if (!o.follow) return;
  await pipeline(await client.stream(url(true)), skipBytes(bytes), process.stdout, { end: false });
}

/** The last `n` lines of a stream (a last line without its newline counts), and how many bytes it had. */
async function lastLines(stream: AsyncIterable<unknown>, n: number): Promise<{ tail: Buffer; bytes: number }> {
  const ring: Buffer[] = []; // the last n complete lines; once full, the oldest at count % n (grown as lines come: n may be huge)
  let count = 0;
  const keep = (line: Buffer): void => {
    if (n === 0) return;
    ring[count % n] = line;
    count += 1;
  };
  let partial = Buffer.alloc(0);
  let bytes = 0;
  for await (const chunk of stream) {
    const data = chunk as Buffer;
    bytes += data.length;
    let start = 0;
    for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
      keep(partial.length > 0 ? Buffer.concat([partial, data.subarray(start, nl + 1)]) : Buffer.from(data.subarray(start, nl + 1)));
      partial = Buffer.alloc(0);
      start = nl + 1;
    }
    if (start < data.length) partial = Buffer.concat([partial, data.subarray(start)]);
  }
  if (partial.length > 0) keep(partial);
  const kept = count <= n ? ring.slice(0, count) : [...ring.slice(count % n), ...ring.slice(0, count % n)];
  return { tail: Buffer.concat(kept), bytes };
}

/** Passes a stream on without its first `count` bytes. */
function skipBytes(count: number): (source: AsyncIterable<unknown>) => AsyncGenerator<Buffer> {
  return async function* (source) {
    let left = count;
    for await (const chunk of source) {
      const data = chunk as Buffer;
      if (left >= data.length) {
        left -= data.length;
        continue;
      }
      yield data.subarray(left);
      left = 0;
    }
  };
}

export interface ResultOptions extends ClientOptions {
  output?: string;
  force?: boolean;
  maxSize: string;
  maxEntries: string;
}

function limits(o: ResultOptions): { maxBytes: number; maxEntries: number } {
  let maxBytes: number;
  try {
    maxBytes = Math.floor(parseSizeMB(o.maxSize) * 1024 * 1024);
  } catch (err) {
    throw new CliError(`--max-size: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
  }
  const maxEntries = Number(o.maxEntries);
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new CliError(`--max-entries: '${o.maxEntries}' is not a positive whole number`, EXIT.usage);
  return { maxBytes, maxEntries };
}

/** The CLI's words for an archive that was not unpacked; nothing of it is in the folder then. */
function extractFailure(err: TarExtractError, dir: string): CliError {
  const hint: Record<TarExtractError['code'], string> = {
    TARGET_EXISTS: 'give --force to replace what is there',
    TAR_TOO_LARGE: 'give --max-size to allow more',
    TAR_TOO_MANY_ENTRIES: 'give --max-entries to allow more',
    INVALID_TAR: 'the server sent a damaged result',
  };
  return new CliError(`result not unpacked into ${dir}: ${err.message} (${err.code}); ${hint[err.code]}; nothing was written`, EXIT.failed, { cause: err });
}

/**
 * With -o DIR: unpacks the result (stdout.log, exit-code, the declared outputs) into
 * DIR and lists it on stderr; an existing name in DIR is refused unless --force, which
 * replaces it (a link is replaced, never written through). Without: writes the tar to
 * stdout, unless that is a terminal.
 */
export async function resultCommand(job: string, o: ResultOptions): Promise<void> {
  if (o.output === undefined && process.stdout.isTTY) {
    throw new CliError('the result is a tar archive: give -o DIR to unpack it, or redirect stdout to a file', EXIT.usage);
  }
  const caps = limits(o);
  const client = new ApiClient(o);
  const body = await client.stream(`/v1/jobs/${encodeURIComponent(job)}/result`);
  if (o.output === undefined) {
    await pipeline(body, process.stdout, { end: false });
    return;
  }
  const dir = o.output.replace(/(.)\/+$/, '$1');
  let out;
  try {
    out = await extractTar(body, dir, { ...caps, existing: o.force ? 'replace' : 'refuse' });
  } catch (err) {
    if (err instanceof TarExtractError) throw extractFailure(err, dir);
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string') throw new CliError(`cannot unpack the result into ${dir}: ${err instanceof Error ? err.message : String(err)}`, EXIT.failed, { cause: err });
    throw err;
  }
  for (const f of out.files) process.stderr.write(`${dir === '/' ? '' : dir}/${f}\n`);
  for (const s of out.skipped) process.stderr.write(`skipped ${s.name}: ${s.why}\n`);
  if (out.skippedCount > out.skipped.length) process.stderr.write(`skipped ${out.skippedCount - out.skipped.length} more entries\n`);
}
