// Someone allowed to import images (an admin token: a submit token may not import at
// all, 403) imports an image under a name the cluster already has, to have every later
// job of that name run their code: refused with 409 IMAGE_EXISTS,
// the name still naming the first image, until an import says replace. A tar naming
// the nodes' own base image (workrs/busybox:1, the default image of every job) is
// refused with 403 IMAGE_RESERVED, with replace or not: a node whose engine lacked
// it would otherwise load the import in its place.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { layerBytes, writeDockerSaveTar } from '../helpers/docker-save-fixture.js';
import { waitFor } from '../helpers/wait.js';
import { LocalCluster } from '../process/harness.js';
import { runCli } from './cli.js';
import { assertClusterHealthy } from './health.js';

interface ImageRow {
  name: string | null;
  blob: string;
}

interface ImportAnswer {
  images?: string[];
  blob?: string;
  error?: { code: string; message: string };
}

t.test('an import cannot take over a name the cluster has, nor the base image', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader(30_000);
  await c.allReady(30_000);

  const admin = await c.cliEnv();
  const postTar = async (node: string, path: string, query = '', token?: string): Promise<{ status: number; body: ImportAnswer }> => {
    const res = await fetch(`${c.url(node)}/v1/images${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-tar', ...(await c.authHeaders(token)) },
      body: readFileSync(path),
      signal: AbortSignal.timeout(120_000),
    });
    return { status: res.status, body: (await res.json()) as ImportAnswer };
  };
  const rows = (node: string): Promise<ImageRow[]> =>
    waitFor(`the image list from ${node}`, async () => (await c.get<{ images: ImageRow[] }>(node, '/v1/images')).body.images, 20_000);
  const blobOf = async (node: string, name: string): Promise<string | undefined> => (await rows(node)).find((r) => r.name === name)?.blob;

  const original = join(c.dir, 'original.tar');
  await writeDockerSaveTar(original, [{ tags: ['victim/app:1'], layer: layerBytes('the real app', 200_000) }]);
  const submitter = await c.createToken('submit');
  const refused = await postTar('n1', original, '', submitter.token);
  t.equal(refused.status, 403, `a submit token may not import an image: ${JSON.stringify(refused.body)}`);
  t.equal(refused.body.error?.code, 'FORBIDDEN');
  const first = await postTar('n1', original);
  t.equal(first.status, 200, `the first import: ${JSON.stringify(first.body)}`);

  // The same bytes again, through another node: nothing moves, so it is fine.
  const again = await postTar('n2', original);
  t.equal(again.status, 200, 're-importing the identical image is accepted');
  t.equal(again.body.blob, first.body.blob);

  // Other bytes under the same name: refused, through any node, and the name stays.
  const evil = join(c.dir, 'evil.tar');
  await writeDockerSaveTar(evil, [{ tags: ['victim/app:1', 'extra/thing:1'], layer: layerBytes('the attacker', 200_000) }]);
  for (const node of ['n1', 'n3']) {
    const hijack = await postTar(node, evil);
    t.equal(hijack.status, 409, `refused through ${node}: ${JSON.stringify(hijack.body)}`);
    t.equal(hijack.body.error?.code, 'IMAGE_EXISTS');
    t.match(hijack.body.error?.message, /victim\/app:1 names image sha256:[0-9a-f]{64}.*replace/, 'the message names the reference, its image and the way to replace it');
  }
  const cli = await runCli(['images', 'import', evil, '--server', c.url('n2')], admin);
  t.not(cli.status, 0, 'the CLI exits non-zero');
  t.match(cli.stderr, /\(IMAGE_EXISTS\)/, `the CLI says why: ${cli.stderr.trim()}`);
  for (const node of ['n1', 'n2', 'n3']) {
    t.equal(await blobOf(node, 'victim/app:1'), first.body.blob, `${node}: victim/app:1 still names the first image`);
    t.equal(await blobOf(node, 'extra/thing:1'), undefined, `${node}: nothing of the refused tar is listed`);
  }

  // With replace (the CLI's --replace), the owner moves the name on purpose.
  const moved = await runCli(['images', 'import', evil, '--replace', '--json', '--server', c.url('n3')], admin);
  t.equal(moved.status, 0, `images import --replace exits 0 (stderr: ${moved.stderr.trim()})`);
  const movedBlob = (JSON.parse(moved.stdout) as ImportAnswer).blob;
  t.not(movedBlob, first.body.blob);
  const replaced = await waitFor('the replaced name on n1', async () => ((await blobOf('n1', 'victim/app:1')) === movedBlob ? true : undefined), 20_000);
  t.ok(replaced, 'victim/app:1 names the replacing image');
  t.equal(await blobOf('n1', 'extra/thing:1'), movedBlob);

  // The base image of every node: refused whatever the request says.
  const base = join(c.dir, 'base.tar');
  await writeDockerSaveTar(base, [{ tags: ['workrs/busybox:1', 'innocent/name:1'], layer: layerBytes('a fake base image', 200_000) }]);
  for (const query of ['', '?replace=1']) {
    const r = await postTar('n2', base, query);
    t.equal(r.status, 403, `a tar naming workrs/busybox:1 is refused (${query || 'no replace'}): ${JSON.stringify(r.body)}`);
    t.equal(r.body.error?.code, 'IMAGE_RESERVED');
  }
  const hub = join(c.dir, 'hub.tar');
  await writeDockerSaveTar(hub, [{ tags: ['docker.io/workrs/busybox:1'], layer: layerBytes('spelled otherwise', 100_000) }]);
  t.equal((await postTar('n1', hub, '?replace=1')).body.error?.code, 'IMAGE_RESERVED', 'also spelled with the Docker Hub prefix');
  const names = (await rows('n3')).map((r) => r.name);
  t.notOk(names.some((n) => n?.startsWith('workrs/') || n === 'innocent/name:1'), `no import provides a workrs/ image: ${names.join(', ')}`);

  await assertClusterHealthy(t, c);
  failed = false;
});
