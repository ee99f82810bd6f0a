// images import, images ls: HTTP clients of POST/GET /v1/images. An import streams the
// tar from disk (never read whole into memory) and shows its progress on stderr when
// the file is big; stdout gets the imported references, one a line. A reference the
// cluster has for another image moves only with --replace (else IMAGE_EXISTS, exit 1).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ImageView, ImportResult } from '../../src/images/views.js';
import { formatBytes } from '../../src/util/units.js';
import { ApiClient, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import { retryUnavailable } from './jobs.js';

/** Files from this size on show upload progress. */
const PROGRESS_MIN_BYTES = 16 * 1024 * 1024;
const PROGRESS_EVERY_MS = 2000;

/** The file's bytes as they are read, telling `onProgress` how far it got. */
async function* counted(path: string, onProgress: (sent: number) => void): AsyncGenerator<Uint8Array> {
  let sent = 0;
  for await (const chunk of createReadStream(path)) {
    sent += (chunk as Buffer).length;
    onProgress(sent);
    yield chunk as Buffer;
  }
}

export async function imagesImportCommand(file: string, o: ClientOptions & { json?: boolean; replace?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  let bytes: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error('not a regular file');
    bytes = s.size;
  } catch (err) {
    throw new CliError(`${file}: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
  }
  const name = basename(file);
  const verbose = bytes >= PROGRESS_MIN_BYTES;
  let lastReport = 0;
  const onProgress = (sent: number): void => {
    if (!verbose) return;
    const now = Date.now();
    if (sent === bytes) {
      process.stderr.write(`uploaded ${name} (${formatBytes(bytes)}); the cluster is storing it and copying it to a second node\n`);
    } else if (now - lastReport >= PROGRESS_EVERY_MS) {
      process.stderr.write(`uploading ${name}: ${Math.floor((100 * sent) / bytes)}% (${formatBytes(sent)} of ${formatBytes(bytes)})\n`);
      lastReport = now;
    }
  };
  // A new read of the file per try: a retry (an election under way) sends it again.
  const res = await retryUnavailable(() =>
    client.request<ImportResult>('POST', o.replace ? '/v1/images?replace=1' : '/v1/images', { stream: { body: counted(file, onProgress), contentType: 'application/x-tar', bytes } }),
  );
  if (o.json) {
    process.stdout.write(`${JSON.stringify(res.body)}\n`);
    return;
  }
  for (const ref of res.body.images) process.stdout.write(`${ref}\n`);
  if (verbose) process.stderr.write(`stored as ${res.body.blob} on ${res.body.holders.join(', ')}\n`);
}

export async function imagesLsCommand(o: ClientOptions & { json?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const { images } = (await client.request<{ images: ImageView[] }>('GET', '/v1/images')).body;
  if (o.json) {
    process.stdout.write(`${JSON.stringify(images, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${'NAME'.padEnd(40)} ${'BLOB'.padEnd(12)} ${'SIZE'.padEnd(10)} ${'HOLDERS'.padEnd(16)} IMPORTED\n`);
  for (const img of images) {
    const blob = img.blob.replace(/^sha256:/, '').slice(0, 12);
    const when = new Date(img.addedAt).toISOString().replace('T', ' ').slice(0, 19);
    process.stdout.write(`${(img.name ?? '<none>').padEnd(40)} ${blob.padEnd(12)} ${formatBytes(img.bytes).padEnd(10)} ${img.holders.join(',').padEnd(16)} ${when}\n`);
  }
}
