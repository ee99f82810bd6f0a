// POST /v1/images bodies (src/api/image-upload.ts): streamed to a file under a size
// limit; too large is 413 (announced or discovered while reading) and the answer still
// reaches the client; a multipart or JSON body is 415; an empty one 400. Nothing is
// left in the upload folder after a refusal.
import { createServer, request, type Server } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { receiveImageTar } from '../../src/api/image-upload.js';
import { sendError, sendJson } from '../../src/api/http.js';

const MAX = 100_000;

async function serve(t: { teardown(f: () => void): void }): Promise<{ port: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-image-upload-'));
  const server: Server = createServer((req, res) => {
    receiveImageTar(req, dir, MAX).then(
      async (f) => {
        const bytes = readFileSync(f.path).length;
        await f.cleanup();
        sendJson(res, 200, { bytes, reported: f.bytes });
      },
      (err: unknown) => {
        sendError(res, err);
        req.resume();
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const a = server.address();
  if (!a || typeof a === 'string') throw new Error('no address');
  return { port: a.port, dir };
}

/** Posts `chunks` one by one (chunked encoding unless `length` is given); the status and error code. */
function post(port: number, chunks: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number; code: string | null; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/images', headers: { 'content-type': 'application/x-tar', ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { error?: { code: string } };
        resolve({ status: res.statusCode ?? 0, code: body.error?.code ?? null, body });
      });
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

t.test('a body within the limit lands in one file, byte for byte', async (t) => {
  const { port, dir } = await serve(t);
  const r = await post(port, [Buffer.alloc(40_000, 1), Buffer.alloc(40_000, 2)]);
  t.equal(r.status, 200);
  t.same(r.body, { bytes: 80_000, reported: 80_000 });
  t.same(readdirSync(dir), []);
});

t.test('too large: 413 from the announced length, and from the bytes when none is announced', async (t) => {
  const { port, dir } = await serve(t);
  const announced = await post(port, [Buffer.alloc(MAX + 1)], { 'content-length': String(MAX + 1) });
  t.equal(announced.status, 413);
  t.equal(announced.code, 'IMAGE_TOO_LARGE');
  const chunked = await post(port, Array.from({ length: 30 }, () => Buffer.alloc(10_000)));
  t.equal(chunked.status, 413, 'the answer reaches the client although it was still sending');
  t.equal(chunked.code, 'IMAGE_TOO_LARGE');
  t.same(readdirSync(dir), [], 'the partial file is removed');
});

t.test('multipart or JSON is 415; an empty body 400', async (t) => {
  const { port, dir } = await serve(t);
  const multipart = await post(port, [Buffer.from('--x\r\n')], { 'content-type': 'multipart/form-data; boundary=x' });
  t.equal(multipart.status, 415);
  t.equal(multipart.code, 'UNSUPPORTED_MEDIA_TYPE');
  const json = await post(port, [Buffer.from('{}')], { 'content-type': 'application/json' });
  t.equal(json.status, 415);
  const empty = await post(port, []);
  t.equal(empty.status, 400);
  t.equal(empty.code, 'EMPTY_BODY');
  t.same(readdirSync(dir), []);
});
