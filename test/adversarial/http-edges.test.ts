// Edges of the HTTP plumbing, each once answered badly:
// - multipart/form-data without a boundary made the parser throw: 500 instead of 400;
// - a client without the token that announces a large body and trickles it got its
//   401, and then kept the socket for as long as it went on trickling (the node drained
//   the body); now an answer given while the body is unread closes the connection;
// - upload temp folders left by a node killed mid-upload stayed forever; now a
//   starting node removes them.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LocalCluster } from '../process/harness.js';
import { waitFor } from '../helpers/wait.js';
import { connectApi } from '../helpers/secure-clients.js';
import { assertClusterHealthy } from './health.js';

/** Far below the node's 120 s request timeout, far above what closing takes on a loaded machine. */
const CLOSE_WITHIN_MS = 15_000;

t.test('multipart without a boundary is a 400 JSON error', async (t) => {
  const c = await LocalCluster.create(['n1']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader(30_000);
  await c.allReady(30_000);

  const res = await c.request('n1', '/v1/jobs', { method: 'POST', headers: { 'content-type': 'multipart/form-data' }, body: 'spec={}' });
  t.equal(res.status, 400, 'answered 400');
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  t.equal(body?.error?.code, 'BAD_MULTIPART', `code BAD_MULTIPART (${body?.error?.message ?? 'no JSON error'})`);

  await assertClusterHealthy(t, c);
  failed = !t.passing();
});

t.test('a 401 ends the connection of a client still trickling its body', async (t) => {
  const c = await LocalCluster.create(['n1']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader(30_000);
  await c.allReady(30_000);

  const n = c.node('n1');
  const socket = await connectApi(c, 'n1');
  socket.on('error', () => {
    // A reset is a way of being closed too.
  });
  const started = Date.now();
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (s: string) => (answer += s));
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
  socket.write(`POST /v1/jobs HTTP/1.1\r\nhost: ${n.host}\r\ncontent-type: application/json\r\ncontent-length: ${100 * 1024 * 1024}\r\n\r\n`);
  // 100 bytes every 200 ms: never idle long enough for any idle timeout.
  const trickle = setInterval(() => {
    if (!socket.destroyed) socket.write('x'.repeat(100));
  }, 200);
  const closedAfterMs = await Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), CLOSE_WITHIN_MS))]);
  clearInterval(trickle);
  socket.destroy();

  t.match(answer, /^HTTP\/1\.1 401 /, 'the client got its 401');
  t.match(answer, /\r\nconnection: close\r\n/i, 'with Connection: close');
  t.match(answer, /"code":"UNAUTHORIZED"/, 'and the usual JSON error');
  t.ok(closedAfterMs !== null, `the node closed the socket (after ${closedAfterMs ?? `more than ${CLOSE_WITHIN_MS}`} ms), not waiting for the body`);

  await assertClusterHealthy(t, c);
  failed = !t.passing();
});

t.test('upload temp folders left behind are removed when the node starts', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader(30_000);
  await c.allReady(30_000);

  // What a node killed mid-request leaves: a multipart upload's folder and an image tar.
  await c.kill('n3');
  const uploads = join(c.node('n3').dataDir, 'uploads');
  const folder = join(uploads, 'upload-AbC123');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, '0-data.bin'), Buffer.alloc(64 * 1024, 1));
  const tar = join(uploads, 'image-5d0c7a1e-0000-4000-8000-000000000000.tar');
  writeFileSync(tar, Buffer.alloc(64 * 1024, 2));

  c.start('n3');
  await waitFor('n3 to answer again', () => fetch(`${c.url('n3')}/healthz`).then((r) => (r.ok ? true : undefined), () => undefined), 30_000, 100);
  t.notOk(existsSync(folder), 'the leftover upload folder is gone');
  t.notOk(existsSync(tar), 'the leftover image tar is gone');
  t.ok(existsSync(uploads), 'the upload folder itself is there');

  await assertClusterHealthy(t, c);
  failed = !t.passing();
});
