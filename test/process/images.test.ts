// Image import on real workrs processes (fake runtime: no Docker needed): a docker
// save tar posted to one node, or imported with the CLI through another, is stored on
// two nodes before the answer and listed by every node; importing the same bytes
// again changes nothing, a newer import of a reference is refused (409) unless it says
// replace, then takes it over; bodies that are not docker save tars (400) or too large
// (413) are refused.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { ImportResult as Imported } from '../../src/images/cluster-images.js';
import type { ImageView as ImageRow } from '../../src/images/references.js';
import { layerBytes, writeDockerSaveTar } from '../helpers/docker-save-fixture.js';
import { waitFor } from '../helpers/wait.js';
import { BINARY, LocalCluster } from './harness.js';

const MAX_IMAGE_BYTES = 40 * 1024 * 1024;

t.test('images are imported through any node, by HTTP or the CLI, and listed by every node', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'workrs-images-proc-'));
  const config = join(work, 'node.json');
  writeFileSync(config, JSON.stringify({ maxImageBytes: MAX_IMAGE_BYTES }));
  const c = await LocalCluster.create(['n1', 'n2', 'n3'], ['--config', config]);
  let failed = true;
  t.teardown(async () => {
    await c.destroy(failed);
    rmSync(work, { recursive: true, force: true });
  });
  c.startAll();
  await c.leader();
  await c.allReady();

  // The CLI runs as the admin too (image import is the admin's), trusting the cluster CA.
  const env = { ...process.env, ...(await c.cliEnv()) };
  const tarA = join(work, 'a.tar');
  await writeDockerSaveTar(tarA, [{ tags: ['workrs-test/a:1'], layer: layerBytes('a', 3_000_000) }]);
  const postTar = async (node: string, body: Buffer, query = ''): Promise<{ status: number; body: Imported & { error?: { code: string; message: string } } }> => {
    const res = await c.request(node, `/v1/images${query}`, { method: 'POST', headers: { 'content-type': 'application/x-tar' }, body }, 120_000);
    return { status: res.status, body: (await res.json()) as Imported & { error?: { code: string; message: string } } };
  };

  // HTTP, through n1.
  const a = await postTar('n1', readFileSync(tarA));
  t.equal(a.status, 200, `imported: ${JSON.stringify(a.body)}`);
  t.same(a.body.images, ['workrs-test/a:1']);
  t.match(a.body.blob, /^sha256:[0-9a-f]{64}$/);
  t.equal(a.body.bytes, statSync(tarA).size);
  t.equal(a.body.holders.length, 2, `held by two nodes before the answer: ${a.body.holders.join(', ')}`);

  // The CLI, through n2: a tar of two images (docker save b c), big enough to show progress.
  const tarBC = join(work, 'bc.tar');
  await writeDockerSaveTar(tarBC, [
    { tags: ['workrs-test/b:1'], layer: layerBytes('b', 10_000_000) },
    { tags: ['workrs-test/c:1', 'workrs-test/c:latest'], layer: layerBytes('c', 8_000_000) },
  ]);
  const cli = spawnSync(BINARY, ['images', 'import', tarBC, '--server', c.url('n2')], { env, encoding: 'utf8', timeout: 180_000 });
  t.equal(cli.status, 0, `workrs images import exits 0 (stderr: ${cli.stderr.trim()})`);
  t.equal(cli.stdout, 'workrs-test/b:1\nworkrs-test/c:1\nworkrs-test/c:latest\n', 'prints the references it imported, one a line');
  t.match(cli.stderr, /uploaded bc\.tar \(\d+\.\d MiB\); the cluster is storing it/, 'progress on stderr for a big file');

  // Listed by n3, which took part in neither import.
  // waitFor retries a request that meets a kept-alive socket the node closed meanwhile.
  const list = (): Promise<ImageRow[]> => waitFor('the image list from n3', async () => (await c.get<{ images: ImageRow[] }>('n3', '/v1/images')).body.images, 20_000);
  const rows = await list();
  t.same(rows.map((r) => r.name), ['workrs-test/a:1', 'workrs-test/b:1', 'workrs-test/c:1', 'workrs-test/c:latest']);
  t.equal(rows[0]?.blob, a.body.blob);
  t.equal(new Set(rows.slice(1).map((r) => r.blob)).size, 1, 'the three references of one tar share its blob');
  t.equal(rows[1]?.bytes, statSync(tarBC).size);
  for (const r of rows) t.equal(r.holders.length, 2, `${r.name} held by ${r.holders.join(', ')}`);
  const ls = spawnSync(BINARY, ['images', 'ls', '--json', '--server', c.url('n3')], { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(ls.status, 0);
  t.same(JSON.parse(ls.stdout), rows, 'images ls --json shows the same rows');
  const table = spawnSync(BINARY, ['images', 'ls', '--server', c.url('n1')], { env, encoding: 'utf8', timeout: 60_000 });
  t.match(table.stdout, /^NAME +BLOB +SIZE +HOLDERS +IMPORTED\nworkrs-test\/a:1 +[0-9a-f]{12} +2\.9 MiB +n\d,n\d +\d{4}-/);

  // The same bytes again, through a node that did not hold them: the same blob, the
  // same rows (with that node as one more holder).
  const again = await postTar('n3', readFileSync(tarA));
  t.equal(again.status, 200);
  t.equal(again.body.blob, a.body.blob, 'idempotent: the same blob id');
  const withoutHolders = (r: ImageRow): Omit<ImageRow, 'holders'> => ({ name: r.name, blob: r.blob, bytes: r.bytes, addedAt: r.addedAt });
  t.same((await list()).map(withoutHolders), rows.map(withoutHolders));
  t.ok(again.body.holders.includes('n3'), `n3 holds it now too: ${again.body.holders.join(', ')}`);

  // A newer import of workrs-test/a:1 is refused unless it says replace; then it takes
  // the reference, and the old blob stays listed without a name.
  const tarA2 = join(work, 'a2.tar');
  await writeDockerSaveTar(tarA2, [{ tags: ['workrs-test/a:1'], layer: layerBytes('a2', 1_000_000) }]);
  const refused = await postTar('n2', readFileSync(tarA2));
  t.equal(refused.status, 409);
  t.equal(refused.body.error?.code, 'IMAGE_EXISTS');
  const a2 = await postTar('n2', readFileSync(tarA2), '?replace=1');
  t.equal(a2.status, 200);
  t.not(a2.body.blob, a.body.blob);
  const after = await list();
  t.equal(after.find((r) => r.name === 'workrs-test/a:1')?.blob, a2.body.blob, 'the reference names the newest import');
  t.same(after.filter((r) => r.name === null).map((r) => r.blob), [a.body.blob], 'the replaced import is listed with name null');
  const shown = spawnSync(BINARY, ['images', 'ls', '--server', c.url('n2')], { env, encoding: 'utf8', timeout: 60_000 });
  t.match(shown.stdout, new RegExp(`<none> +${a.body.blob.slice(7, 19)}`), 'images ls shows it as <none>');

  // Not a docker save tar: 400 with the reason.
  const junk = await postTar('n1', layerBytes('junk', 10_000));
  t.equal(junk.status, 400);
  t.equal(junk.body.error?.code, 'INVALID_IMAGE');
  t.match(junk.body.error?.message, /not a tar archive/);
  const noManifest = join(work, 'plain.tar');
  await writeDockerSaveTar(noManifest, [{ tags: ['x:1'], layer: layerBytes('x', 100) }], { manifest: null });
  const plain = spawnSync(BINARY, ['images', 'import', noManifest, '--server', c.url('n1')], { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(plain.status, 2, 'the CLI exits 2 on a refused body');
  t.match(plain.stderr, /no manifest\.json.*\(INVALID_IMAGE\)/);

  // Over the node's maxImageBytes: 413, before the cluster stores anything.
  const huge = join(work, 'huge.tar');
  writeFileSync(huge, Buffer.alloc(MAX_IMAGE_BYTES + 1));
  const tooBig = spawnSync(BINARY, ['images', 'import', huge, '--server', c.url('n3')], { env, encoding: 'utf8', timeout: 120_000 });
  t.equal(tooBig.status, 2);
  t.match(tooBig.stderr, /exceeds the limit of 41943040 bytes.*\(IMAGE_TOO_LARGE\)/);
  t.equal((await list()).length, after.length, 'nothing was added by the refused imports');
  failed = false;
});
