// Where the executable writes its LevelDB addon before loading it: a folder only this
// user can write, a file checked against the asset's SHA-256, and the way out when the
// folder cannot be used. The uid is injected, so "another user's folder" is a folder
// of ours seen as someone else's.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { addonFolder, loadAddon, NativeAddonError, placeAddon } from '../../src/platform/native-addon.js';

const uid = process.getuid?.() ?? 0;
const ASSET = Buffer.from('the addon asset bytes');

function scratch(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-native-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the per-user folder is made with mode 0700 and reused while it stays ours', async (t) => {
  const tmp = scratch(t);
  const first = addonFolder({ tmp, uid });
  t.same(first, { dir: join(tmp, `workrs-native-${uid}`), temporary: false });
  t.equal(lstatSync(first.dir).mode & 0o7777, 0o700);
  t.same(addonFolder({ tmp, uid }), first, 'the second time it is reused');
});

t.test('a name someone else took first is passed over for a fresh private folder', async (t) => {
  const tmp = scratch(t);
  const other = uid + 1;
  // Our own folder, but seen by "another user" (other): not theirs.
  mkdirSync(join(tmp, `workrs-native-${other}`), { mode: 0o700 });
  const theirs = addonFolder({ tmp, uid: other });
  t.equal(theirs.temporary, true, 'a folder owned by someone else is not used');
  t.not(theirs.dir, join(tmp, `workrs-native-${other}`));
  t.equal(lstatSync(theirs.dir).mode & 0o777, 0o700, 'the fresh folder is private');

  chmodSync(join(tmp, `workrs-native-${other}`), 0o777);
  const loose = join(tmp, `workrs-native-${uid}`);
  mkdirSync(loose, { mode: 0o777 });
  chmodSync(loose, 0o777);
  t.equal(addonFolder({ tmp, uid }).temporary, true, 'nor one that others can write');

  const tmp2 = scratch(t);
  const elsewhere = scratch(t);
  symlinkSync(elsewhere, join(tmp2, `workrs-native-${uid}`));
  t.equal(addonFolder({ tmp: tmp2, uid }).temporary, true, 'nor a link, even to a private folder');
});

t.test('WORKRS_NATIVE_DIR must be a real folder no one else can write', async (t) => {
  const base = scratch(t);
  const chosen = join(base, 'made', 'here');
  t.same(addonFolder({ chosen, tmp: base, uid }), { dir: chosen, temporary: false }, 'made when missing');
  const loose = join(base, 'loose');
  mkdirSync(loose);
  chmodSync(loose, 0o777);
  t.throws(() => addonFolder({ chosen: loose, tmp: base, uid }), { name: 'NativeAddonError', code: 'NATIVE_ADDON_UNAVAILABLE', message: /WORKRS_NATIVE_DIR=.*others can write into it/ });
  const link = join(base, 'link');
  symlinkSync(chosen, link);
  t.throws(() => addonFolder({ chosen: link, tmp: base, uid }), /not a folder/);
  if (uid === 0) t.doesNotThrow(() => addonFolder({ chosen, tmp: base, uid: 1000 }), 'a folder of root is accepted for any user');
  else t.throws(() => addonFolder({ chosen, tmp: base, uid: uid + 1 }), /owned by uid/, 'a folder of another user is refused');
});

t.test('a file already in the folder is kept only when its SHA-256 matches; otherwise replaced, never loaded', async (t) => {
  const dir = scratch(t);
  const file = placeAddon(ASSET, dir);
  t.match(file, /classic-level-[0-9a-f]{16}\.node$/);
  t.ok(readFileSync(file).equals(ASSET));
  writeFileSync(file, 'planted code');
  t.equal(placeAddon(ASSET, dir), file);
  t.ok(readFileSync(file).equals(ASSET), 'a planted file is replaced by the asset');
  rmSync(file);
  const decoy = join(dir, 'decoy');
  writeFileSync(decoy, 'planted code');
  symlinkSync(decoy, file);
  placeAddon(ASSET, dir);
  t.ok(lstatSync(file).isFile(), 'a link in its place is replaced by the file itself');
  t.equal(readFileSync(decoy, 'utf8'), 'planted code', 'and what it pointed to is not written');
  t.same(readdirSync(dir).filter((f) => f.endsWith('.partial')), [], 'no partial file left');

  const loaded: string[] = [];
  const exports = loadAddon(ASSET, { dir, temporary: false }, (mod, path) => {
    loaded.push(readFileSync(path, 'utf8'));
    mod.exports = { ok: true };
  });
  t.same(exports, { ok: true });
  t.same(loaded, [ASSET.toString()], 'what dlopen gets is the asset');
});

t.test('a load failure names the folder and the way out; a temporary folder is removed', async (t) => {
  const dir = join(scratch(t), 'one-off');
  mkdirSync(dir, { mode: 0o700 });
  let caught: unknown;
  try {
    loadAddon(ASSET, { dir, temporary: true }, () => {
      throw new Error('failed to map segment from shared object');
    });
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof NativeAddonError, 'a NativeAddonError');
  const message = caught instanceof Error ? caught.message : '';
  t.match(message, dir, 'naming the folder');
  t.match(message, /failed to map segment/, 'with the loader\'s reason');
  t.match(message, /noexec.*WORKRS_NATIVE_DIR/, 'and the way out');
  t.notOk(existsSync(dir), 'the temporary folder is gone');
});
