// readUpload (src/api/upload.ts) on hostile multipart submissions: well-formed ones
// (the spec as a field or a file part, files with arbitrary bytes, delivered in
// arbitrary chunks), the same over a limit, mutated bytes, odd content types and
// requests that break off. It must resolve with exactly the spec and files sent when
// the submission is valid, reject with an HttpError 4xx otherwise (with the limit's
// own code when exactly one limit is passed), never anything else, and leave nothing
// in its temp root once the upload is cleaned up.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { HttpError } from '../../../src/api/http.js';
import { readUpload, type Upload, type UploadRequest } from '../../../src/api/upload.js';
import { multipartBody, multipartType, type Part } from '../../helpers/multipart.js';
import type { FuzzTarget } from '../target.js';

// finishAfterBodyMs: short, so that a body the parser gets stuck on costs a run seconds, not the default's 5 s.
const LIMITS = { maxSpecBytes: 2048, maxFileBytes: 4096, maxFiles: 3, finishAfterBodyMs: 2000 };
/** A run that has not settled by then is a hang. */
const SETTLE_MS = 5000;

interface Submission {
  boundary: string;
  specText: string;
  specAsFile: boolean;
  /** Where the spec part goes among the file parts. */
  specIndex: number;
  files: Array<{ name: string; bytes: Uint8Array }>;
}

type Expected = { kind: 'valid' } | { kind: 'refused'; status: number; code: string } | { kind: 'any' };

interface Case {
  headers: IncomingHttpHeaders;
  body: Buffer;
  chunkSizes: number[];
  /** Break the request off after this many chunks (when fewer than the body has). */
  abortAfter: number | null;
  submission: Submission;
  expected: Expected;
}

// Token characters only: the content type carries it unquoted.
const boundaryArb = fc.stringMatching(/^[A-Za-z0-9'+_.-]{8,40}$/);
const fileNameArb = fc.stringMatching(/^[A-Za-z0-9._-][A-Za-z0-9._ -]{0,20}$/).filter((n) => n !== '.' && n !== '..');
const specValueArb = fc.jsonValue({ maxDepth: 3 });

/** A spec text of exactly `bytes` bytes (at least 8). */
function specOfSize(bytes: number): string {
  return `{"p":"${'x'.repeat(bytes - 8)}"}`;
}

const submissionArb = (fileCount: fc.Arbitrary<number>, fileBytes: fc.Arbitrary<number>, specText: fc.Arbitrary<string>): fc.Arbitrary<Submission> =>
  fc
    .record({
      boundary: boundaryArb,
      specText,
      specAsFile: fc.boolean(),
      names: fc.uniqueArray(fileNameArb, { minLength: 0, maxLength: 6 }),
      count: fileCount,
      sizes: fc.array(fileBytes, { minLength: 6, maxLength: 6 }),
      seed: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      specIndex: fc.nat(),
      // Bytes that look like the multipart syntax, so file contents exercise the delimiter search.
      tricky: fc.constantFrom('', '\r\n', '\r\n--', '--', '\r\n\r\n', 'content-disposition: form-data; name="spec"\r\n\r\n'),
    })
    .map(({ boundary, specText, specAsFile, names, count, sizes, seed, specIndex, tricky }) => {
      const files = names.slice(0, count).map((name, i) => {
        const size = sizes[i] ?? 0;
        const bytes = new Uint8Array(size);
        for (let j = 0; j < size; j++) bytes[j] = (seed[(i + j) % seed.length] ?? 0) ^ (j * 31);
        const head = Buffer.from(tricky);
        bytes.set(head.subarray(0, Math.min(head.length, size)));
        return { name, bytes };
      });
      return { boundary, specText, specAsFile, specIndex: specIndex % (files.length + 1), files };
    })
    // A part's bytes must not hold the delimiter itself (then it is not a well-formed body).
    .filter((s) => ![Buffer.from(s.specText), ...s.files.map((f) => Buffer.from(f.bytes))].some((b) => b.includes(`\r\n--${s.boundary}`)));

function partsOf(s: Submission): Part[] {
  const spec: Part = s.specAsFile ? { name: 'spec', filename: 'job.json', contentType: 'application/json', body: s.specText } : { name: 'spec', body: s.specText };
  const parts: Part[] = s.files.map((f) => ({ name: 'file', filename: f.name, contentType: 'application/octet-stream', body: Buffer.from(f.bytes) }));
  parts.splice(s.specIndex, 0, spec);
  return parts;
}

const chunkSizesArb = fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 6 });

function caseOf(submission: Submission, expected: Expected, chunkSizes: number[], abortAfter: number | null): Case {
  return { headers: { 'content-type': multipartType(submission.boundary) }, body: multipartBody(partsOf(submission), submission.boundary), chunkSizes, abortAfter, submission, expected };
}

const fileCountArb = fc.integer({ min: 0, max: LIMITS.maxFiles });
const fileBytesArb = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(LIMITS.maxFileBytes - 1, LIMITS.maxFileBytes));
const validSpecText = fc.oneof(
  specValueArb.map((v) => JSON.stringify(v)).filter((t) => Buffer.byteLength(t) <= LIMITS.maxSpecBytes),
  fc.integer({ min: -3, max: 0 }).map((d) => specOfSize(LIMITS.maxSpecBytes + d)),
);

const validCase = fc.tuple(submissionArb(fileCountArb, fileBytesArb, validSpecText), chunkSizesArb).map(([s, chunks]) => caseOf(s, { kind: 'valid' }, chunks, null));

// Exactly one limit passed: the refusal names it.
const specTooLarge = fc
  .tuple(submissionArb(fileCountArb, fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 3000 }).map((d) => specOfSize(LIMITS.maxSpecBytes + d))), chunkSizesArb)
  .map(([s, chunks]) => caseOf(s, { kind: 'refused', status: 413, code: 'BODY_TOO_LARGE' }, chunks, null));
const fileTooLarge = fc
  .tuple(submissionArb(fc.integer({ min: 1, max: LIMITS.maxFiles }), fc.integer({ min: LIMITS.maxFileBytes + 1, max: LIMITS.maxFileBytes + 3000 }), validSpecText), chunkSizesArb)
  .filter(([s]) => s.files.length > 0)
  .map(([s, chunks]) => caseOf(s, { kind: 'refused', status: 413, code: 'FILE_TOO_LARGE' }, chunks, null));
const tooManyFiles = fc
  .tuple(submissionArb(fc.constant(LIMITS.maxFiles + 1), fc.integer({ min: 0, max: 100 }), validSpecText), chunkSizesArb)
  .filter(([s]) => s.files.length > LIMITS.maxFiles)
  .map(([s, chunks]) => caseOf(s, { kind: 'refused', status: 413, code: 'TOO_MANY_FILES' }, chunks, null));

// A valid submission broken off before its end: refused (the client is gone).
const aborted = fc
  .tuple(submissionArb(fileCountArb, fc.integer({ min: 0, max: 2000 }), validSpecText), fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 6 }), fc.nat())
  .map(([s, chunks, at]) => {
    const c = caseOf(s, { kind: 'any' }, chunks, null);
    const count = chunkCount(c.body.length, chunks);
    return { ...c, abortAfter: at % count, expected: { kind: 'refused', status: 400, code: 'BODY_INCOMPLETE' } as Expected };
  });

type Mutation = { op: 'truncate' | 'flip' | 'insert' | 'delete' | 'duplicate'; at: number; len: number; bytes: Uint8Array };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('truncate', 'flip', 'insert', 'delete', 'duplicate'),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 64 }),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
});

function mutate(body: Buffer, m: Mutation): Buffer {
  const at = body.length === 0 ? 0 : m.at % body.length;
  switch (m.op) {
    case 'truncate':
      return body.subarray(0, at);
    case 'flip': {
      const copy = Buffer.from(body);
      for (let i = 0; i < m.bytes.length && at + i < copy.length; i++) copy[at + i] = m.bytes[i] ?? 0;
      return copy;
    }
    case 'insert':
      return Buffer.concat([body.subarray(0, at), m.bytes, body.subarray(at)]);
    case 'delete':
      return Buffer.concat([body.subarray(0, at), body.subarray(at + m.len)]);
    case 'duplicate':
      return Buffer.concat([body.subarray(0, at + m.len), body.subarray(at, at + m.len), body.subarray(at + m.len)]);
  }
}

const contentTypeArb = (boundary: string): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(multipartType(boundary)) },
    fc.constantFrom(
      undefined,
      'multipart/form-data',
      'multipart/form-data; boundary=',
      'multipart/form-data; boundary=""',
      `multipart/form-data; boundary="${boundary}"`,
      `multipart/form-data; charset=bogus; boundary=${boundary}`,
      `Multipart/Form-Data; BOUNDARY=${boundary}`,
      `multipart/mixed; boundary=${boundary}`,
      'application/x-www-form-urlencoded',
      'application/json',
      'multipart/form-data; boundary=a; boundary=b',
    ),
    fc.string({ maxLength: 80 }),
  );

const mutatedCase = fc
  .tuple(submissionArb(fileCountArb, fc.integer({ min: 0, max: 500 }), validSpecText), fc.array(mutationArb, { minLength: 0, maxLength: 3 }), chunkSizesArb)
  .chain(([s, mutations, chunks]) =>
    contentTypeArb(s.boundary).map((type): Case => {
      const c = caseOf(s, { kind: 'any' }, chunks, null);
      const headers: IncomingHttpHeaders = type === undefined ? {} : { 'content-type': type };
      return { ...c, headers, body: mutations.reduce(mutate, c.body) };
    }),
  );

const randomCase = fc
  .tuple(boundaryArb, fc.uint8Array({ maxLength: 4000 }), chunkSizesArb)
  .chain(([boundary, bytes, chunks]) =>
    contentTypeArb(boundary).map((type): Case => ({
      headers: type === undefined ? {} : { 'content-type': type },
      body: Buffer.from(bytes),
      chunkSizes: chunks,
      abortAfter: null,
      submission: { boundary, specText: '', specAsFile: false, specIndex: 0, files: [] },
      expected: { kind: 'any' },
    })),
  );

function chunkCount(length: number, sizes: number[]): number {
  let n = 0;
  for (let at = 0; at < length; n++) at += sizes[n % sizes.length] ?? 1;
  return Math.max(n, 1);
}

/** The body as a request: the given chunks, each on its own turn of the event loop, broken off after `abortAfter` chunks. */
function requestOf(c: Case): UploadRequest {
  let at = 0;
  let n = 0;
  const stream = new Readable({
    read() {
      setImmediate(() => {
        if (c.abortAfter !== null && n === c.abortAfter) {
          stream.destroy(new Error('aborted'));
          return;
        }
        if (at >= c.body.length) {
          stream.push(null);
          return;
        }
        const size = c.chunkSizes[n % c.chunkSizes.length] ?? 1;
        stream.push(c.body.subarray(at, at + size));
        at += size;
        n++;
      });
    },
  });
  return Object.assign(stream, { headers: c.headers });
}

async function settle(p: Promise<Upload>): Promise<{ upload: Upload } | { error: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`readUpload did not settle within ${SETTLE_MS} ms`)), SETTLE_MS);
  });
  try {
    return await Promise.race([p.then((upload) => ({ upload }), (error: unknown) => ({ error })), hang]);
  } finally {
    clearTimeout(timer);
  }
}

async function checkValid(c: Case, upload: Upload): Promise<void> {
  const expectedSpec: unknown = JSON.parse(c.submission.specText);
  if (!isDeepStrictEqual(upload.spec, expectedSpec)) throw new Error(`spec differs: got ${JSON.stringify(upload.spec)}, sent ${c.submission.specText}`);
  const names = [...upload.files.keys()];
  const sent = c.submission.files.map((f) => f.name);
  if (!isDeepStrictEqual(names, sent)) throw new Error(`files differ: got [${names.join(', ')}], sent [${sent.join(', ')}]`);
  for (const f of c.submission.files) {
    const onDisk = await readFile(upload.files.get(f.name) ?? '');
    if (!onDisk.equals(Buffer.from(f.bytes))) throw new Error(`file '${f.name}': ${onDisk.length} bytes on disk differ from the ${f.bytes.length} sent`);
  }
}

async function checkWithinLimits(upload: Upload): Promise<void> {
  if (upload.files.size > LIMITS.maxFiles) throw new Error(`${upload.files.size} files accepted, more than ${LIMITS.maxFiles}`);
  for (const [name, path] of upload.files) {
    if (!/^[A-Za-z0-9._-][A-Za-z0-9._ -]{0,254}$/.test(name)) throw new Error(`unsafe file name accepted: ${JSON.stringify(name)}`);
    const bytes = (await readFile(path)).length;
    if (bytes > LIMITS.maxFileBytes) throw new Error(`file '${name}' of ${bytes} bytes accepted, more than ${LIMITS.maxFileBytes}`);
  }
}

export const target: FuzzTarget = {
  name: 'multipart',
  property() {
    const anyCase = fc.oneof(
      { weight: 3, arbitrary: validCase },
      { weight: 1, arbitrary: specTooLarge },
      { weight: 1, arbitrary: fileTooLarge },
      { weight: 1, arbitrary: tooManyFiles },
      { weight: 2, arbitrary: aborted },
      { weight: 3, arbitrary: mutatedCase },
      { weight: 1, arbitrary: randomCase },
    );
    return fc.asyncProperty(anyCase, async (c) => {
      const root = await mkdtemp(join(tmpdir(), 'workrs-fuzz-multipart-'));
      try {
        const outcome = await settle(readUpload(requestOf(c), root, LIMITS));
        if ('upload' in outcome) {
          const { upload } = outcome;
          try {
            if (c.expected.kind === 'refused') throw new Error(`accepted, but ${c.expected.status} ${c.expected.code} was due`);
            if (c.expected.kind === 'valid') await checkValid(c, upload);
            await checkWithinLimits(upload);
          } finally {
            await upload.cleanup();
          }
        } else {
          const { error } = outcome;
          if (!(error instanceof HttpError) || error.httpStatus < 400 || error.httpStatus > 499) {
            throw new Error(`rejected with something other than an HttpError 4xx: ${error instanceof Error ? `${error.name} ${error.message}` : String(error)}`, { cause: error });
          }
          if (c.expected.kind === 'valid') throw new Error(`a valid submission was refused: ${error.httpStatus} ${error.code} ${error.message}`);
          if (c.expected.kind === 'refused' && (error.httpStatus !== c.expected.status || error.code !== c.expected.code)) {
            throw new Error(`refused with ${error.httpStatus} ${error.code} (${error.message}), not ${c.expected.status} ${c.expected.code}`);
          }
        }
        const left = await readdir(root);
        if (left.length > 0) throw new Error(`left behind in the temp root: ${left.join(', ')}`);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  },
};
