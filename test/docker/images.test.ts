// Images loaded on demand, on real Docker: an image made here (the base image plus a
// marker file), saved with `docker save` and imported into the cluster through one
// node, runs a job on a node whose engine (a second dockerd, standing in for another
// box) has never seen it: that node fetches the image blob from a holder, `docker
// load`s it and starts the job. A job whose image no engine has and no import
// provides fails with exit code 125 and a reason in the node's log, instead of
// waiting for ever. Needs Docker: fails without it.
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import type Docker from 'dockerode';
import type { ImageView } from '../../src/images/references.js';
import { hasImage } from '../../src/worker/docker-images.js';
import { waitFor } from '../helpers/wait.js';
import { BINARY, LocalCluster } from '../process/harness.js';
import { BASE_IMAGE, mainEngine, secondEngine } from './engines.js';
import { removeNodeContainers, uid } from './fixtures.js';

interface JobView {
  state: string;
  exitCode: number | null;
  node: string | null;
}

/** The base image with /marker holding `marker`, committed as `ref` on `docker`. */
async function makeImage(docker: Docker, ref: string, marker: string): Promise<void> {
  const c = await docker.createContainer({ Image: BASE_IMAGE, Cmd: ['sh', '-c', `echo ${marker} > /marker`], NetworkDisabled: true });
  try {
    await c.start();
    await c.wait();
    const [repo, tag] = ref.split(':');
    await c.commit({ repo, tag });
  } finally {
    await c.remove({ force: true });
  }
}

async function removeImage(docker: Docker, ref: string): Promise<void> {
  await docker
    .getImage(ref)
    .remove({ force: true })
    .catch(() => undefined);
}

t.test('a node whose engine lacks a job image loads it from the cluster, then runs the job', async (t) => {
  const main = await mainEngine();
  const engineB = await secondEngine('/var/lib/workrs-test-engine-images', 'workrs-test-engine-img');
  const id = uid();
  const ref = `workrs-test/img:${id}`;
  const marker = `marker-${id}`;
  const work = mkdtempSync(join(tmpdir(), 'workrs-images-docker-'));
  // Unique node ids: container cleanup by node label must not touch other tests' containers.
  const ids = [`im1-${id}`, `im2-${id}`, `im3-${id}`];
  const [n1 = '', n2 = '', n3 = ''] = ids;
  const c = await LocalCluster.create(ids);
  let failed = true;
  t.teardown(async () => {
    await c.destroy(failed);
    for (const n of ids) {
      await removeNodeContainers(main.docker, n);
      await removeNodeContainers(engineB.docker, n);
    }
    await removeImage(main.docker, ref);
    await removeImage(engineB.docker, ref);
    await engineB.stop();
    rmSync(work, { recursive: true, force: true });
  });

  await makeImage(main.docker, ref, marker);
  const tar = join(work, 'img.tar');
  await pipeline((await main.docker.getImage(ref).get()) as NodeJS.ReadableStream, createWriteStream(tar));
  await removeImage(engineB.docker, ref);
  t.notOk(await hasImage(engineB.docker, ref), 'engine B does not have the image');

  // n1 and n2 on the machine's engine, with no slots: only n3, on engine B, runs jobs.
  for (const n of c.nodes.values()) {
    n.args[n.args.indexOf('fake')] = 'docker';
    n.args[n.args.indexOf('--slots') + 1] = n.id === n3 ? '1' : '0';
  }
  c.node(n3).args.push('--docker', `unix://${engineB.socket}`);
  c.startAll();
  await c.leader();
  await c.allReady();

  const imported = spawnSync(BINARY, ['images', 'import', tar, '--server', c.url(n1)], { env: { ...process.env, ...(await c.cliEnv()) }, encoding: 'utf8', timeout: 300_000 });
  t.equal(imported.status, 0, `imported (stderr: ${imported.stderr.trim()})`);
  t.equal(imported.stdout, `${ref}\n`);
  const before = (await c.get<{ images: ImageView[] }>(n3, '/v1/images')).body.images.find((i) => i.name === ref);
  t.same(before?.holders.sort(), [n1, n2].sort(), 'held by the importing node and one more, not by n3');

  const job = await c.post<{ id: string }>(n2, '/v1/jobs', { image: ref, command: ['sh', '-c', `test "$(cat /marker)" = ${marker}`], checkpoint: { mode: 'off' } });
  t.equal(job.status, 202);
  const done = async (jobId: string): Promise<JobView> =>
    waitFor(`job ${jobId} to finish`, async () => {
      const j = (await c.get<JobView>(n1, `/v1/jobs/${jobId}`)).body;
      return j.state === 'succeeded' || j.state === 'failed' ? j : undefined;
    }, 180_000, 250);
  const ran = await done(job.body.id);
  t.equal(ran.node, n3);
  t.equal(ran.state, 'succeeded', 'the job ran from the imported image: its marker file was there');
  t.equal(ran.exitCode, 0);
  t.ok(await hasImage(engineB.docker, ref), 'engine B has the image now');
  const log = readFileSync(c.node(n3).logFile, 'utf8');
  t.match(log, /fetched an imported image from its holders/);
  t.match(log, /image loaded from the cluster/);
  const after = await waitFor('n3 listed as a holder', async () => {
    const row = (await c.get<{ images: ImageView[] }>(n1, '/v1/images')).body.images.find((i) => i.name === ref);
    return row?.holders.includes(n3) ? row : undefined;
  }, 30_000, 200);
  t.same(after.holders.sort(), ids.slice().sort(), 'the node that loaded it counts as a holder');

  // No engine has this one and no import provides it: the attempt fails, with the reason logged.
  const absent = `workrs-test/absent:${id}`;
  const missing = await c.post<{ id: string }>(n2, '/v1/jobs', { image: absent, command: ['true'], checkpoint: { mode: 'off' } });
  const gaveUp = await done(missing.body.id);
  t.equal(gaveUp.state, 'failed', 'a job whose image exists nowhere fails');
  t.equal(gaveUp.exitCode, 125, 'with exit code 125, as docker run');
  t.match(readFileSync(c.node(n3).logFile, 'utf8'), new RegExp(`image ${absent} is not on this node's Docker engine and no imported image provides it`));
  failed = false;
});
