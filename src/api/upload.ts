// multipart/form-data job submissions: a `spec` part (JSON) and `file` parts, each
// streamed to a temp folder under size limits (never buffered whole in memory).
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { HttpError } from './http.js';

export interface Upload {
  spec: unknown;
  /** File name (as the job sees it in /work) → path of the uploaded bytes on disk. */
  files: Map<string, string>;
  dir: string;
  cleanup(): Promise<void>;
}

export interface UploadLimits {
  maxSpecBytes: number;
  maxFileBytes: number;
  maxFiles: number;
}

const SAFE_NAME = /^[A-Za-z0-9._-][A-Za-z0-9._ -]{0,254}$/;

export async function readUpload(req: IncomingMessage, tmpRoot: string, limits: UploadLimits): Promise<Upload> {
  const dir = await mkdtemp(join(tmpRoot, 'upload-'));
  const files = new Map<string, string>();
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  let specText: string | null = null;
  const writes: Array<Promise<void>> = [];
  let failure: HttpError | null = null;
  const fail = (e: HttpError): void => {
    failure ??= e;
  };

  try {
    const bb = busboy({
      headers: req.headers,
      limits: { fields: 4, fieldSize: limits.maxSpecBytes, files: limits.maxFiles, fileSize: limits.maxFileBytes, parts: limits.maxFiles + 4 },
    });
    bb.on('field', (name, value, info) => {
      if (name !== 'spec') return fail(new HttpError(400, 'BAD_MULTIPART', `unexpected field '${name}': send the job spec as a part named 'spec'`));
      if (info.valueTruncated) return fail(new HttpError(413, 'BODY_TOO_LARGE', `the spec part exceeds ${limits.maxSpecBytes} bytes`));
      specText = value;
    });
    bb.on('file', (name, stream, info) => {
      if (name === 'spec') {
        // A spec sent as a file part (curl -F spec=@job.json): read it as text.
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        writes.push(new Promise((resolve) => stream.on('end', () => {
          specText = Buffer.concat(chunks).toString('utf8');
          resolve();
        })));
        return;
      }
      const fileName = info.filename ?? '';
      if (name !== 'file' || !SAFE_NAME.test(fileName) || fileName === '.' || fileName === '..') {
        stream.resume();
        return fail(new HttpError(400, 'BAD_MULTIPART', `file parts are named 'file' and carry a plain file name (got part '${name}', file '${fileName}')`));
      }
      if (files.has(fileName)) {
        stream.resume();
        return fail(new HttpError(400, 'BAD_MULTIPART', `file '${fileName}' is uploaded twice`));
      }
      const path = join(dir, `${files.size}-${fileName}`);
      files.set(fileName, path);
      stream.on('limit', () => fail(new HttpError(413, 'FILE_TOO_LARGE', `file '${fileName}' exceeds ${limits.maxFileBytes} bytes`)));
      writes.push(pipeline(stream, createWriteStream(path)));
    });
    bb.on('filesLimit', () => fail(new HttpError(413, 'TOO_MANY_FILES', `at most ${limits.maxFiles} files per job`)));
    bb.on('partsLimit', () => fail(new HttpError(413, 'TOO_MANY_PARTS', 'too many parts in the upload')));
    await pipeline(req, bb).catch((err: unknown) => fail(new HttpError(400, 'BAD_MULTIPART', `the multipart body does not parse: ${err instanceof Error ? err.message : String(err)}`)));
    await Promise.all(writes);
    if (failure) throw failure;
    if (specText === null) throw new HttpError(400, 'BAD_MULTIPART', "the upload has no 'spec' part");
    let spec: unknown;
    try {
      spec = JSON.parse(specText);
    } catch (err) {
      throw new HttpError(400, 'BAD_JSON', `the spec part is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { spec, files, dir, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
