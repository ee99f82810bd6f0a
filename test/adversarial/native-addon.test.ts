// Another local user plants files where a node would look for its LevelDB addon in the
// temp folder: a shared folder from which a careless loader would take any existing
// file (workrs-native-<digest16>/classic-level.node), and the per-user folder name
// (workrs-native-<uid>), taken first with a folder of their own. A node started as this
// user must load neither: it starts, stays healthy, and maps its addon from a folder
// only it can write. The nodes run with TMPDIR set to a private folder that stands for
// the system's temp folder, so other tests and users on this machine are not affected.
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { LocalCluster } from '../process/harness.js';
import { assertClusterHealthy } from './health.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ADDON = join(root, 'node_modules/classic-level/prebuilds', `${process.platform}-${process.arch}`, 'classic-level.node');
/** Not a shared object: a node that dlopen()s it fails to start. */
const PLANTED = 'planted by another user: not to be loaded\n';
const NOBODY = 65534;

/** A folder "another user" made, world-writable, holding the planted file. */
function plant(dir: string, fileName: string): string {
  mkdirSync(dir);
  const file = join(dir, fileName);
  writeFileSync(file, PLANTED, { mode: 0o755 });
  chmodSync(dir, 0o777);
  // As root the folder really belongs to someone else; otherwise its mode alone disqualifies it.
  if (process.getuid?.() === 0) {
    chownSync(dir, NOBODY, NOBODY);
    chownSync(file, NOBODY, NOBODY);
  }
  return file;
}

/** The files a process has mapped whose path mentions classic-level. */
function mappedAddons(pid: number): string[] {
  return readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => l.includes('classic-level'))
    .map((l) => l.slice(l.indexOf('/')));
}

t.test('a node never loads a LevelDB addon planted in the temp folder', async (t) => {
  const digest16 = createHash('sha256').update(readFileSync(ADDON)).digest('hex').slice(0, 16);
  const temp = mkdtempSync(join(tmpdir(), 'workrs-native-attack-'));
  chmodSync(temp, 0o1777); // like /tmp: anyone may create names, only owners remove them
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = temp; // the nodes' os.tmpdir()
  let c: LocalCluster | null = null;
  let failed = true;
  t.teardown(async () => {
    await c?.destroy(failed);
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    rmSync(temp, { recursive: true, force: true });
  });
  const uid = process.getuid?.() ?? 0;
  const oldPlant = plant(join(temp, `workrs-native-${digest16}`), 'classic-level.node');
  const newPlant = plant(join(temp, `workrs-native-${uid}`), `classic-level-${digest16}.node`);

  c = await LocalCluster.create(['n1']);
  c.startAll();
  await c.allReady(60_000);

  const pid = c.node('n1').proc?.pid;
  t.ok(pid, 'the node runs');
  const maps = [...new Set(mappedAddons(pid ?? 0))];
  t.ok(maps.length > 0, `the node has its LevelDB addon mapped (${maps.join(', ')})`);
  for (const m of maps) {
    t.notOk(m.startsWith(`${dirname(oldPlant)}/`) || m.startsWith(`${dirname(newPlant)}/`), `not from a planted folder: ${m}`);
  }
  t.equal(readFileSync(oldPlant, 'utf8'), PLANTED, 'the planted files are left as they were');
  t.equal(readFileSync(newPlant, 'utf8'), PLANTED, 'both of them');
  t.same(readdirSync(dirname(newPlant)), [`classic-level-${digest16}.node`], 'and nothing was written into the folder another user owns');

  await assertClusterHealthy(t, c);
  failed = false;
});
