// multipart/form-data job submissions: a `spec` part (JSON) and `file` parts, each
// streamed to a temp folder under size limits (never buffered whole in memory).
//
// The first refusal ends the upload: parsing stops, the parser and the part it was
// receiving are destroyed, the files are removed once their writes have stopped, and
// the rest of the body is discarded, not parsed, until the gateway's answer closes the
// connection (http.ts, writeHead). So a refused upload costs no more than what arrived
// before the refusal, and a request that breaks off ends that request only.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { WorkrsError } from '../errors.js';
import { HttpError, bodyIncomplete } from './http.js';
import { UPLOAD_DIR_PREFIX } from './upload-dir.js';

export interface Upload {
  spec: unknown;
  /** File name (as the job sees it in /work) → path of the uploaded bytes on disk. */
  files: Map<string, string>;
  dir: string;
  cleanup(): Promise<void>;
}

export interface UploadLimits {
  /** The spec part, as a field or as a file part: larger is 413 BODY_TOO_LARGE. */
  maxSpecBytes: number;
  /** Each file part: larger is 413 FILE_TOO_LARGE. */
  maxFileBytes: number;
  /** File parts per submission (the spec not counted): more is 413 TOO_MANY_FILES. */
  maxFiles: number;
  /**
   * How long parsing may go on once the body has ended (default 5 s): only the parts
   * still buffered are left to write, so a parser still busy after that is stuck on a
   * malformed body, and the upload is refused instead of hanging.
   */
  finishAfterBodyMs?: number;
}

const DEFAULT_FINISH_AFTER_BODY_MS = 5000;

/** What readUpload reads: an IncomingMessage, or any byte stream with the request's headers. */
export type UploadRequest = Readable & { headers: IncomingHttpHeaders };

const SAFE_NAME = /^[A-Za-z0-9._-][A-Za-z0-9._ -]{0,254}$/;

/**
 * Receives a multipart submission into a new folder under `tmpRoot`. Rejects with an
 * HttpError (4xx) for anything the client got wrong, having removed the folder; a
 * failure to write the files to disk is a WorkrsError 500 UPLOAD_FAILED.
 */
export async function readUpload(req: UploadRequest, tmpRoot: string, limits: UploadLimits): Promise<Upload> {
  const parser = openParser(req.headers, limits);
  const dir = await mkdtemp(join(tmpRoot, UPLOAD_DIR_PREFIX));
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    const { spec, files } = await receiveParts(req, parser, dir, limits);
    return { spec, files, dir, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

type Parser = ReturnType<typeof busboy>;

/** The multipart parser for these headers; a content type it cannot parse (no boundary, say) is 400, another type 415. */
function openParser(headers: IncomingHttpHeaders, limits: UploadLimits): Parser {
  const type = (headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type !== 'multipart/form-data') {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `a submission with files is multipart/form-data (got ${type || 'no content type'})`);
  }
  try {
    return busboy({
      headers,
      // One byte above each limit, so that a part of exactly the limit passes and a
      // larger one is told apart (busboy marks a part truncated once it reaches its limit).
      limits: { fieldSize: limits.maxSpecBytes + 1, fileSize: limits.maxFileBytes + 1, files: limits.maxFiles + 1, parts: limits.maxFiles + 4 },
    });
  } catch (err) {
    throw new HttpError(400, 'BAD_MULTIPART', `the multipart content type does not parse (${messageOf(err)}): send multipart/form-data; boundary=…`);
  }
}

function receiveParts(req: UploadRequest, parser: Parser, dir: string, limits: UploadLimits): Promise<{ spec: unknown; files: Map<string, string> }> {
  return new Promise((resolve, reject) => {
    const files = new Map<string, string>();
    const writes: Array<Promise<void>> = [];
    /** The part streams not yet closed: a refusal destroys them all, whatever the parser still holds. */
    const open = new Set<Readable>();
    let stuck: NodeJS.Timeout | undefined;
    let specText: string | null = null;
    let specSeen = false;
    let settled = false;

    // Settles once: the first refusal wins, and the promise rejects only when every
    // file write has stopped, so the caller's cleanup removes the folder for good.
    const refuse = (err: WorkrsError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(stuck);
      // What else arrives is discarded: the gateway closes the connection once it has
      // answered (so this costs nothing there), and a server that keeps it open finds
      // it ready for the next request.
      req.unpipe(parser);
      req.resume();
      // Destroyed on the next tick, never from inside one of its own callbacks ('file',
      // 'limit', a part's 'data'): busboy goes on using the part after they return.
      process.nextTick(() => {
        parser.destroy(err);
        for (const part of open) part.destroy(err);
        void Promise.all(writes).then(() => reject(err));
      });
    };
    const parseFailed = (err: unknown): void => {
      refuse(err instanceof WorkrsError ? err : new HttpError(400, 'BAD_MULTIPART', `the multipart body does not parse: ${messageOf(err)}`));
    };
    const specTooLarge = (): HttpError => new HttpError(413, 'BODY_TOO_LARGE', `the spec part exceeds ${limits.maxSpecBytes} bytes`);
    /** Whether this is the first spec part; a second one is refused. */
    const takeSpec = (): boolean => {
      if (!specSeen) {
        specSeen = true;
        return true;
      }
      refuse(new HttpError(400, 'BAD_MULTIPART', "the upload has more than one 'spec' part"));
      return false;
    };

    req.on('error', (err) => refuse(bodyIncomplete(err)));
    req.on('end', () => {
      stuck = setTimeout(() => refuse(new HttpError(400, 'BAD_MULTIPART', 'the multipart body does not parse: parts it opens never end')), limits.finishAfterBodyMs ?? DEFAULT_FINISH_AFTER_BODY_MS);
    });
    req.on('close', () => {
      if (!req.readableEnded) refuse(bodyIncomplete(new Error('the connection closed')));
    });
    parser.on('error', parseFailed);

    parser.on('field', (name, value: string | undefined, info) => {
      if (settled) return;
      if (name !== 'spec') return refuse(new HttpError(400, 'BAD_MULTIPART', `unexpected field '${name}': send the job spec as a part named 'spec'`));
      if (!takeSpec()) return;
      if (info.valueTruncated) return refuse(specTooLarge());
      // busboy yields no value for a part in a character set it cannot decode.
      if (typeof value !== 'string') return refuse(new HttpError(400, 'BAD_MULTIPART', `the spec part's character set (${info.encoding}, ${info.mimeType}) is not one this node decodes: send UTF-8`));
      specText = value;
    });

    parser.on('file', (name, stream, info) => {
      // First of all: the parser destroys the part it is receiving when it fails or is
      // destroyed, and an 'error' nobody listens to would end the process.
      stream.on('error', parseFailed);
      open.add(stream);
      stream.once('close', () => open.delete(stream));
      if (settled) return;
      if (name === 'spec') {
        // A spec sent as a file part (curl -F spec=@job.json): read as text, within the same limit.
        if (!takeSpec()) return;
        const chunks: Buffer[] = [];
        let bytes = 0;
        stream.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > limits.maxSpecBytes) return refuse(specTooLarge());
          chunks.push(chunk);
        });
        stream.on('end', () => {
          specText = Buffer.concat(chunks).toString('utf8');
        });
        return;
      }
      const fileName = info.filename ?? '';
      if (name !== 'file' || !SAFE_NAME.test(fileName) || fileName === '.' || fileName === '..') {
        return refuse(new HttpError(400, 'BAD_MULTIPART', `file parts are named 'file' and carry a plain file name (got part '${name}', file '${fileName}')`));
      }
      if (files.has(fileName)) return refuse(new HttpError(400, 'BAD_MULTIPART', `file '${fileName}' is uploaded twice`));
      if (files.size >= limits.maxFiles) return refuse(tooManyFiles(limits));
      const path = join(dir, `${files.size}-${fileName}`);
      files.set(fileName, path);
      stream.on('limit', () => refuse(new HttpError(413, 'FILE_TOO_LARGE', `file '${fileName}' exceeds ${limits.maxFileBytes} bytes`)));
      writes.push(
        pipeline(stream, createWriteStream(path)).catch((err: unknown) => {
          // A refusal or a parse failure has settled already (it destroyed the part); what is left is the disk.
          refuse(new WorkrsError('UPLOAD_FAILED', 500, `storing the uploaded file '${fileName}' failed: ${messageOf(err)}`, { cause: err }));
        }),
      );
    });
    parser.on('filesLimit', () => refuse(tooManyFiles(limits)));
    parser.on('partsLimit', () => refuse(new HttpError(413, 'TOO_MANY_PARTS', 'too many parts in the upload')));

    // The whole body parsed, every part ended (busboy waits for them before 'finish').
    parser.on('finish', () => {
      void Promise.all(writes).then(() => {
        if (settled) return;
        if (specText === null) return refuse(new HttpError(400, 'BAD_MULTIPART', "the upload has no 'spec' part"));
        let spec: unknown;
        try {
          spec = JSON.parse(specText);
        } catch (err) {
          return refuse(new HttpError(400, 'BAD_JSON', `the spec part is not valid JSON: ${messageOf(err)}`));
        }
        settled = true;
        clearTimeout(stuck);
        resolve({ spec, files });
      });
    });

    req.pipe(parser);
  });
}

function tooManyFiles(limits: UploadLimits): HttpError {
  return new HttpError(413, 'TOO_MANY_FILES', `at most ${limits.maxFiles} files per job`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
