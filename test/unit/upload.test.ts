import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readUpload, type Upload } from '../../src/api/upload.js';
import { type HttpError } from '../../src/api/http.js';

const limits = { maxSpecBytes: 4096, maxFileBytes: 1024 * 1024, maxFiles: 4, finishAfterBodyMs: 1000 };

async function serve(t: { teardown(f: () => void): void }): Promise<{ url: string; results: Array<Upload | HttpError> }> {
  const tmp = mkdtempSync(join(tmpdir(), 'workrs-upload-'));
  const results: Array<Upload | HttpError> = [];
  const server: Server = createServer((req, res) => {
    readUpload(req, tmp, limits).then(
      (u) => {
        results.push(u);
        res.end('ok');
      },
      (e: HttpError) => {
        results.push(e);
        res.statusCode = e.httpStatus;
        res.end(e.code);
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    server.close();
    rmSync(tmp, { recursive: true, force: true });
  });
  const a = server.address();
  if (!a || typeof a === 'string') throw new Error('no address');
  return { url: `http://127.0.0.1:${a.port}/`, results };
}

t.test('a spec part and file parts arrive as JSON and files on disk', async (t) => {
  const { url, results } = await serve(t);
  const form = new FormData();
  form.append('spec', JSON.stringify({ command: ['sh', 'job.sh'], files: ['job.sh', 'data.bin'] }));
  form.append('file', new Blob(['echo hi\n']), 'job.sh');
  form.append('file', new Blob([new Uint8Array(50_000).fill(7)]), 'data.bin');
  const res = await fetch(url, { method: 'POST', body: form });
  t.equal(res.status, 200);
  const u = results[0] as Upload;
  t.same([...u.files.keys()], ['job.sh', 'data.bin']);
  t.same(u.spec, { command: ['sh', 'job.sh'], files: ['job.sh', 'data.bin'] });
  t.equal(readFileSync(u.files.get('job.sh') ?? '', 'utf8'), 'echo hi\n');
  t.equal(readFileSync(u.files.get('data.bin') ?? '').length, 50_000);
  await u.cleanup();
});

t.test('a file name with a path keeps only its last component', async (t) => {
  const { url, results } = await serve(t);
  const form = new FormData();
  form.append('spec', '{}');
  form.append('file', new Blob(['x']), '../../etc/passwd');
  t.equal((await fetch(url, { method: 'POST', body: form })).status, 200);
  const u = results[0] as Upload;
  t.same([...u.files.keys()], ['passwd'], 'no way out of /work');
  await u.cleanup();
});

t.test('bad uploads are refused with a code: no spec, a path as file name, too large, duplicates', async (t) => {
  const { url } = await serve(t);
  const post = async (form: FormData) => {
    const r = await fetch(url, { method: 'POST', body: form });
    return `${r.status} ${await r.text()}`;
  };
  const noSpec = new FormData();
  noSpec.append('file', new Blob(['x']), 'a.txt');
  t.equal(await post(noSpec), '400 BAD_MULTIPART');
  const hidden = new FormData();
  hidden.append('spec', '{}');
  hidden.append('file', new Blob(['x']), ' leading-space');
  t.equal(await post(hidden), '400 BAD_MULTIPART');
  const big = new FormData();
  big.append('spec', '{}');
  big.append('file', new Blob([new Uint8Array(2 * 1024 * 1024)]), 'big.bin');
  t.equal(await post(big), '413 FILE_TOO_LARGE');
  const twice = new FormData();
  twice.append('spec', '{}');
  twice.append('file', new Blob(['1']), 'a.txt');
  twice.append('file', new Blob(['2']), 'a.txt');
  t.equal(await post(twice), '400 BAD_MULTIPART');
  const badJson = new FormData();
  badJson.append('spec', '{nope');
  t.equal(await post(badJson), '400 BAD_JSON');
});

t.test('a body the parser never finishes is refused, not left hanging', async (t) => {
  const { url } = await serve(t);
  // A delimiter inside a part's headers: busboy then neither finishes nor fails.
  const body = '--B\r\ncontent-disposition: form-data; name="spec"; filename="job.json"\r\n--B\r\n\r\n-\r\n--B--\r\n';
  const started = Date.now();
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=B' }, body, signal: AbortSignal.timeout(10_000) });
  t.equal(`${r.status} ${await r.text()}`, '400 BAD_MULTIPART');
  t.ok(Date.now() - started < 5000, `refused ${Date.now() - started} ms after the body ended (finishAfterBodyMs ${limits.finishAfterBodyMs})`);
});
