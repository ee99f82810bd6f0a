// Durability on real disks: nodes killed -9 again and again in the middle of a write
// load never lose an acknowledged submission; a corrupted data folder is reported
// at start with a clear message instead of being used.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BINARY, LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface JobList {
  jobs: Array<{ id: string }>;
}

t.test('kill -9 in a loop mid-load never loses an acknowledged submission', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const c = await LocalCluster.create(ids);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader();
  const acked = new Set<string>();
  let stop = false;
  let seq = 0;
  const client = async (): Promise<void> => {
    while (!stop) {
      const target = ids[seq++ % ids.length] ?? 'n1';
      const r = await c.post<{ id: string }>(target, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '3600' } }).catch(() => null);
      if (r?.status === 202) acked.add(r.body.id);
      else await new Promise((res) => setTimeout(res, 20));
    }
  };
  const clients = Array.from({ length: 8 }, () => client());
  // Kill a random node (leader included) every ~400 ms, restart it shortly after.
  for (let round = 0; round < 8; round++) {
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 200));
    const victim = ids[Math.floor(Math.random() * ids.length)] ?? 'n1';
    await c.kill(victim);
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 300));
    c.start(victim);
  }
  stop = true;
  await Promise.all(clients);
  t.comment(`${acked.size} submissions acknowledged across 8 kill -9 / restart rounds`);
  t.ok(acked.size > 0, 'the cluster accepted work between crashes');
  for (const id of ids) {
    const listed = await waitFor(`${id} to list every acknowledged job`, async () => {
      const jobs = await c.listAllJobs<JobList['jobs'][number]>(id).catch(() => null);
      if (jobs === null) return undefined;
      const have = new Set(jobs.map((j) => j.id));
      return [...acked].every((j) => have.has(j)) ? have : undefined;
    }, 60_000, 200);
    t.ok(listed.size >= acked.size, `${id} has every acknowledged job`);
  }
  failed = false;
});

function largestStoreFile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith('.log') || f.endsWith('.ldb')).map((f) => join(dir, f));
  const best = files.sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (!best) throw new Error(`no LevelDB file in ${dir}`);
  return best;
}

t.test('a corrupted data folder is reported at start, not silently used', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  for (let i = 0; i < 50; i++) await c.post(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '3600', I: String(i) } });
  await c.stop();
  const victim = c.node('n1');
  const file = largestStoreFile(join(victim.dataDir, 'raft'));
  const bytes = readFileSync(file);
  // Overwrite a run in the middle of the file: records and checksums no longer agree.
  for (let i = Math.floor(bytes.length / 3); i < Math.floor(bytes.length / 3) + 64 && i < bytes.length; i++) bytes[i] = (bytes[i] ?? 0) ^ 0x5a;
  writeFileSync(file, bytes);
  const r = spawnSync(BINARY, victim.args, { encoding: 'utf8', timeout: 30_000 });
  t.ok(r.status !== null && r.status !== 0, `start exits by itself, refusing the corrupted store (exit ${r.status}, signal ${r.signal})`);
  t.match(r.stderr, /corrupt/i, `the message says what is wrong: ${r.stderr.trim().split('\n').at(-1)}`);
  t.match(r.stderr, new RegExp(victim.dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'and names the data folder');
  failed = false;
});
