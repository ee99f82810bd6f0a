// The Raft store on a real LevelDB in a temp folder: what a ready writes comes back
// on reopen; a divergent suffix is replaced; a corrupted value is reported at load.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ClassicLevel } from 'classic-level';
import { Raft } from '../../raft/raft.js';
import type { Entry } from '../../raft/types.js';
import { RaftStore } from '../../src/storage/raft-store.js';
import { logKey } from '../../src/storage/keys.js';

function folder(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const entry = (index: number, term: number, s = `e${index}`): Entry => ({ type: 'normal', index, term, data: new TextEncoder().encode(s) });

t.test('a ready written with sync comes back whole after reopening', async (t) => {
  const dir = folder(t);
  const boot = Raft.bootstrap(['n1', 'n2', 'n3']);
  let store = await RaftStore.open(dir);
  await store.load();
  await store.save({ hardState: boot.hardState, snapshot: null, entries: boot.entries });
  await store.save({ hardState: { term: 2, vote: 'n1', commit: 3 }, snapshot: null, entries: [entry(4, 2)] });
  await store.close();
  store = await RaftStore.open(dir);
  const state = await store.load();
  await store.close();
  t.same(state.hardState, { term: 2, vote: 'n1', commit: 3 });
  t.same(state.entries.map((e) => [e.index, e.term, e.type]), [[1, 1, 'confChange'], [2, 1, 'confChange'], [3, 1, 'confChange'], [4, 2, 'normal']]);
  t.same(state.entries[0], boot.entries[0], 'a conf change entry round-trips exactly');
});

t.test('entries written at a lower index replace the stored suffix', async (t) => {
  const dir = folder(t);
  const store = await RaftStore.open(dir);
  await store.load();
  await store.save({ hardState: { term: 3, vote: null, commit: 1 }, snapshot: null, entries: [entry(1, 1), entry(2, 2), entry(3, 2), entry(4, 2)] });
  await store.save({ hardState: null, snapshot: null, entries: [entry(3, 3, 'new')] });
  const state = await store.load();
  await store.close();
  t.same(state.entries.map((e) => `${e.index}/${e.term}`), ['1/1', '2/2', '3/3'], 'entry 4 of the old suffix is gone');
});

t.test('a snapshot replaces the log it covers and drops a divergent tail', async (t) => {
  const dir = folder(t);
  const store = await RaftStore.open(dir);
  await store.load();
  await store.save({ hardState: { term: 2, vote: null, commit: 2 }, snapshot: null, entries: [entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)] });
  const snapshot = { meta: { index: 3, term: 3, conf: { voters: ['n1'], learners: ['n4'] } }, data: new Uint8Array([7, 7]) };
  await store.save({ hardState: { term: 3, vote: null, commit: 3 }, snapshot, entries: [] });
  const state = await store.load();
  await store.close();
  t.same(state.snapshot, snapshot);
  t.same(state.entries, [], 'entries 1-3 are covered, 4 was divergent');
  t.equal(state.applied, 3);
});

t.test('a value whose bytes changed on disk is reported with its key at load', async (t) => {
  const dir = folder(t);
  const store = await RaftStore.open(dir);
  await store.load();
  await store.save({ hardState: { term: 1, vote: null, commit: 0 }, snapshot: null, entries: [entry(1, 1), entry(2, 1)] });
  await store.close();
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const raw = await db.get(logKey(2));
  if (!raw) throw new Error('entry 2 missing');
  raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 0xff;
  await db.put(logKey(2), raw);
  await db.close();
  const reopened = await RaftStore.open(dir);
  await t.rejects(reopened.load(), /corrupt: log entry 2: checksum mismatch/);
  await reopened.close();
});

t.test('a missing entry in the middle of the log is reported, not skipped', async (t) => {
  const dir = folder(t);
  const store = await RaftStore.open(dir);
  await store.load();
  await store.save({ hardState: { term: 1, vote: null, commit: 1 }, snapshot: null, entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
  await store.close();
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.del(logKey(2));
  await db.close();
  const reopened = await RaftStore.open(dir);
  await t.rejects(reopened.load(), /log entry 2 is missing/);
  await reopened.close();
});

t.test('a write-ahead log record corrupted in the middle is reported before LevelDB would skip it', async (t) => {
  const { readdirSync, readFileSync, writeFileSync } = await import('node:fs');
  const dir = folder(t);
  const store = await RaftStore.open(dir);
  await store.load();
  for (let i = 1; i <= 200; i++) await store.save({ hardState: { term: 1, vote: null, commit: 0 }, snapshot: null, entries: [entry(i, 1, `entry number ${i} `.repeat(20))] });
  await store.close();
  const wal = readdirSync(dir).find((n) => /^\d+\.log$/.test(n));
  if (!wal) throw new Error('no write-ahead log');
  const bytes = readFileSync(join(dir, wal));
  bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
  writeFileSync(join(dir, wal), bytes);
  await t.rejects(RaftStore.open(dir), /corrupt: record checksum mismatch/);
});

t.test('a torn last record (a write that never completed) is accepted: it was never acknowledged', async (t) => {
  const { readdirSync, readFileSync, writeFileSync } = await import('node:fs');
  const dir = folder(t);
  const store = await RaftStore.open(dir);
  await store.load();
  for (let i = 1; i <= 3; i++) await store.save({ hardState: { term: 1, vote: null, commit: 0 }, snapshot: null, entries: [entry(i, 1)] });
  await store.close();
  const wal = readdirSync(dir).find((n) => /^\d+\.log$/.test(n));
  if (!wal) throw new Error('no write-ahead log');
  const bytes = readFileSync(join(dir, wal));
  writeFileSync(join(dir, wal), bytes.subarray(0, bytes.length - 5));
  const reopened = await RaftStore.open(dir);
  const state = await reopened.load();
  await reopened.close();
  t.same(state.entries.map((e) => e.index), [1, 2], 'the two complete writes are there, the torn third is not');
});

t.test('a corrupted run of bytes anywhere before the last record is reported, whatever it hits', async (t) => {
  const { readdirSync, readFileSync, writeFileSync } = await import('node:fs');
  const { checkWalFile } = await import('../../src/storage/wal-check.js');
  const dir = folder(t);
  const store = await RaftStore.open(dir);
  await store.load();
  for (let i = 1; i <= 200; i++) await store.save({ hardState: { term: 1, vote: null, commit: i - 1 }, snapshot: null, entries: [entry(i, 1, `entry ${i} `.repeat(i % 7 === 0 ? 200 : 8))] });
  await store.close();
  const wal = readdirSync(dir).find((n) => /^\d+\.log$/.test(n));
  if (!wal) throw new Error('no write-ahead log');
  const original = readFileSync(join(dir, wal));
  t.ok(original.length > 64 * 1024, `the log spans several 32 KiB blocks (${original.length} bytes)`);
  const probe = join(dir, 'probe.log');
  // Headers included (a length that runs past the end of the file, a bad type): the
  // XOR run of the process test, slid across everything but the last 2 KiB.
  const missed: number[] = [];
  for (let at = 0; at + 64 < original.length - 2048; at += 7) {
    const bytes = Buffer.from(original);
    for (let i = at; i < at + 64; i++) bytes[i] = (bytes[i] ?? 0) ^ 0x5a;
    writeFileSync(probe, bytes);
    if (checkWalFile(probe) === null) missed.push(at);
  }
  t.same(missed.slice(0, 10), [], `every corrupted run is reported (${missed.length} missed)`);
});
