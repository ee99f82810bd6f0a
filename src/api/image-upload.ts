// POST /v1/images: the body is the `docker save` tar itself, streamed to a file in the
// upload folder under a size limit (never held in memory). What the tar contains is
// checked afterwards (src/images/docker-save.ts), before anything is stored.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpError } from './http.js';
import { IMAGE_FILE_PREFIX } from './upload-dir.js';

/** Default for `maxImageBytes`: 2 GiB. */
export const DEFAULT_MAX_IMAGE_BYTES = 2 * 1024 * 1024 * 1024;

export interface ReceivedFile {
  path: string;
  bytes: number;
  cleanup(): Promise<void>;
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, 'IMAGE_TOO_LARGE', `the image tar exceeds the limit of ${maxBytes} bytes (maxImageBytes in the node's config)`);
}

export async function receiveImageTar(req: IncomingMessage, dir: string, maxBytes: number): Promise<ReceivedFile> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'multipart/form-data' || type === 'application/json') {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the docker save tar itself as the body (content-type application/x-tar), not ${type}`);
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);

  const path = join(dir, `${IMAGE_FILE_PREFIX}${randomUUID()}.tar`);
  const cleanup = (): Promise<void> => rm(path, { force: true });
  let bytes = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(bytes > maxBytes ? tooLarge(maxBytes) : null, chunk);
    },
  });
  // Not pipeline(req, …): on an error it would destroy the request, and with it the
  // socket the 413 answer must go out on. Unpiped, the rest of the body stays unread
  // and the gateway closes the connection after the answer (http.ts, writeHead).
  const written = pipeline(limit, createWriteStream(path));
  req.on('error', (err) => limit.destroy(err));
  req.on('close', () => {
    if (!req.complete) limit.destroy(new Error('the client closed the connection before the end of the body'));
  });
  req.pipe(limit);
  try {
    await written;
  } catch (err) {
    await cleanup();
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, 'UPLOAD_FAILED', `the image upload did not complete: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (bytes === 0) {
    await cleanup();
    throw new HttpError(400, 'EMPTY_BODY', 'the request needs a body: the output of docker save');
  }
  return { path, bytes, cleanup };
}
