// A client with a submit token starts a multipart submission whose `spec` part is a
// file part (it has a filename, as `curl -F spec=@job.json` sends it), sends part of
// it and drops the connection. That ended the node before: the part's stream errored
// with nobody listening. Now the aborted request ends alone: the node lives on and its
// upload folder holds nothing of it.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { LocalCluster } from '../process/harness.js';
import { waitFor } from '../helpers/wait.js';
import { multipartType, partHead } from '../helpers/multipart.js';
import { connectApi } from '../helpers/secure-clients.js';
import { assertClusterHealthy } from './health.js';

const BOUNDARY = 'abort-boundary-7f3a';

/** Sends the head of a submission and the first 64 KiB of its spec file part, then destroys the socket mid-part. */
async function abortInsideSpecPart(c: LocalCluster, id: string, token: string, uploadDir: string): Promise<void> {
  const n = c.node(id);
  const socket = await connectApi(c, id);
  socket.on('error', () => {
    // The node may reset the connection; only what the node does afterwards matters.
  });
  socket.write(
    `POST /v1/jobs HTTP/1.1\r\nhost: ${n.host}\r\nauthorization: Bearer ${token}\r\n` +
      `content-type: ${multipartType(BOUNDARY)}\r\ncontent-length: ${16 * 1024 * 1024}\r\n\r\n`,
  );
  socket.write(partHead({ name: 'spec', filename: 'job.json', contentType: 'application/json', body: '' }, BOUNDARY));
  socket.write(`{"command": ["true"], "env": {"PAD": "${'x'.repeat(64 * 1024)}`);
  // The node is inside the part once it has staged the upload, and a moment later.
  await waitFor('the node to stage the upload', () => (readdirSync(uploadDir).length > 0 ? true : undefined), 10_000, 20);
  await sleep(300);
  socket.destroy();
}

t.test('a submission broken off inside a spec file part ends that request, not the node', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader(30_000);
  await c.allReady(30_000);

  const { token: submitter } = await c.createToken('submit', { name: 'attacker' });
  const target = 'n2';
  const uploadDir = join(c.node(target).dataDir, 'uploads');
  for (const attempt of [1, 2]) {
    await abortInsideSpecPart(c, target, submitter, uploadDir);
    await sleep(1000);
    const proc = c.node(target).proc;
    t.ok(proc !== null && proc.exitCode === null, `after abort ${attempt}: ${target} is still running`);
    if (proc === null) break;
    const leftovers = await waitFor('the aborted upload to be removed', () => (readdirSync(uploadDir).length === 0 ? [] : undefined), 10_000, 100).catch(() => readdirSync(uploadDir));
    t.same(leftovers, [], `after abort ${attempt}: the upload folder is empty`);
  }

  await assertClusterHealthy(t, c);
  failed = !t.passing();
});
