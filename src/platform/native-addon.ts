// Loads classic-level's native LevelDB addon.
//
// Inside the single executable (Node SEA) nothing can be require()d from disk by name:
// the addon travels as an SEA asset, is written to a file and loaded with
// process.dlopen when a store first opens. Outside the SEA the packaged prebuild is
// used. scripts/build.mjs routes classic-level's own `binding.js` here.
//
// Whoever can write that file before it is loaded runs their code in this process,
// and a node often runs as root. So:
// - the file goes into a folder only this user can write: WORKRS_NATIVE_DIR when set
//   (a real folder, owned by this user or root, that group and others cannot write),
//   else <temp>/workrs-native-<uid>, made here with mode 0700 and used only while it is
//   a real folder owned by this user with mode 0700. A name someone else took first
//   (their folder, a link) is passed over for a fresh mkdtemp folder, removed once the
//   addon is loaded;
// - a file already there is loaded only when its SHA-256 equals the asset's; any other
//   is replaced by the asset, never loaded.
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { chmodSync, closeSync, constants as fsConstants, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkrsError } from '../errors.js';
import { errnoOf } from '../util/errno.js';
import { traceLoad } from './trace-loads.js';

export const CLASSIC_LEVEL_ASSET = 'classic-level.node';
/** The environment variable that chooses the folder the addon is written to. */
export const NATIVE_DIR_ENV = 'WORKRS_NATIVE_DIR';

export interface SeaModule {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
}

/** Node's SEA module (node:sea): whether this process is the executable, and its assets. */
export function seaModule(): SeaModule | undefined {
  const require = createRequire(import.meta.url);
  try {
    return require('node:sea') as SeaModule;
  } catch {
    return undefined; // Node without SEA support: never inside an executable.
  }
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Where the addon file goes; a temporary folder is removed once the addon is loaded. */
export interface AddonFolder {
  dir: string;
  temporary: boolean;
}

/** The addon cannot be written or loaded; the message names the folder and the way out. */
export class NativeAddonError extends WorkrsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NATIVE_ADDON_UNAVAILABLE', 500, message, options);
    this.name = 'NativeAddonError';
  }
}

const HOW_TO_CHOOSE = `set ${NATIVE_DIR_ENV} to a folder on a filesystem that allows executables (not mounted noexec), owned by this user and writable by no one else`;

/** The folder named by WORKRS_NATIVE_DIR, made if missing; refused when others could write into it. */
function chosenFolder(dir: string, uid: number): AddonFolder {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new NativeAddonError(`${NATIVE_DIR_ENV}=${dir}: cannot make the folder: ${messageOf(err)}`, { cause: err });
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new NativeAddonError(`${NATIVE_DIR_ENV}=${dir}: not a folder (a link is not accepted: name the folder itself)`);
  if (st.uid !== uid && st.uid !== 0) throw new NativeAddonError(`${NATIVE_DIR_ENV}=${dir}: owned by uid ${st.uid}, not by this user (${uid}) or root`);
  if ((st.mode & 0o022) !== 0) throw new NativeAddonError(`${NATIVE_DIR_ENV}=${dir}: others can write into it (mode ${(st.mode & 0o777).toString(8)}); use a folder with mode 0700 or 0755`);
  return { dir, temporary: false };
}

/** <tmp>/workrs-native-<uid> while it is this user's alone, else a fresh private folder. */
function privateFolder(tmp: string, uid: number): AddonFolder {
  const dir = join(tmp, `workrs-native-${uid}`);
  let made = false;
  try {
    mkdirSync(dir, { mode: 0o700 }); // not recursive: an existing name must be checked, not reused blindly
    made = true;
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw new NativeAddonError(`cannot make ${dir} for the LevelDB addon: ${messageOf(err)}; ${HOW_TO_CHOOSE}`, { cause: err });
  }
  if (made) chmodSync(dir, 0o700); // the umask may have taken bits away
  const st = lstatSync(dir);
  if (st.isDirectory() && st.uid === uid && (st.mode & 0o7777) === 0o700) return { dir, temporary: false };
  return { dir: mkdtempSync(join(tmp, 'workrs-native-')), temporary: true };
}

/** The folder to write the addon into: chosen by `chosen` (WORKRS_NATIVE_DIR) or private under `tmp`. */
export function addonFolder(opts: { chosen?: string; tmp: string; uid: number }): AddonFolder {
  return opts.chosen ? chosenFolder(opts.chosen, opts.uid) : privateFolder(opts.tmp, opts.uid);
}

/** The SHA-256 of the regular file at `path`, or null when there is none (or a link, or anything else). */
function fileDigest(path: string): string | null {
  let fd: number;
  try {
    // O_NOFOLLOW: a link is not our file; O_NONBLOCK: a FIFO must not hang the open.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ELOOP') return null;
    throw err;
  }
  try {
    if (!fstatSync(fd).isFile()) return null;
    return sha256(readFileSync(fd));
  } finally {
    closeSync(fd);
  }
}

/**
 * Puts `bytes` into `dir` as the addon file and returns its path: a file already there
 * is kept only when its SHA-256 equals that of `bytes`, otherwise replaced by rename.
 */
export function placeAddon(bytes: Buffer, dir: string): string {
  const digest = sha256(bytes);
  const file = join(dir, `classic-level-${digest.slice(0, 16)}.node`);
  if (fileDigest(file) === digest) return file;
  // Write then rename, so a node starting at the same time never loads a half-written file.
  const partial = join(dir, `.classic-level-${process.pid}-${randomBytes(6).toString('hex')}.partial`);
  try {
    writeFileSync(partial, bytes, { mode: 0o700, flag: 'wx' });
    renameSync(partial, file);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new NativeAddonError(`cannot write the LevelDB addon to ${dir}: ${messageOf(err)}; ${HOW_TO_CHOOSE}`, { cause: err });
  }
  return file;
}

/**
 * Places the addon in `folder` and loads it, with the way out when the filesystem
 * refuses to map it. A temporary folder is removed afterwards: once mapped, the file
 * is no longer needed.
 */
export function loadAddon(bytes: Buffer, folder: AddonFolder, dlopen: (module: { exports: unknown }, path: string) => void = process.dlopen): unknown {
  try {
    const file = placeAddon(bytes, folder.dir);
    const mod = { exports: {} as unknown };
    try {
      dlopen(mod, file);
    } catch (err) {
      throw new NativeAddonError(`cannot load the LevelDB addon from ${file}: ${messageOf(err)}. If ${folder.dir} is on a filesystem mounted noexec, ${HOW_TO_CHOOSE}`, { cause: err });
    }
    return mod.exports;
  } finally {
    if (folder.temporary) rmSync(folder.dir, { recursive: true, force: true });
  }
}

/**
 * classic-level's binding. Inside the executable it is loaded on first use, when a
 * store opens: commands that never open LevelDB (the CLI's clients) never write or
 * load the addon, and a load failure surfaces where the store is opened.
 */
export function loadClassicLevelBinding(fallbackPackageDir: string): unknown {
  traceLoad('classic-level');
  const sea = seaModule();
  if (sea?.isSea()) {
    let loaded: { binding: Record<PropertyKey, unknown> } | { error: unknown } | null = null;
    const binding = (): Record<PropertyKey, unknown> => {
      if (loaded === null) {
        try {
          const bytes = Buffer.from(sea.getAsset(CLASSIC_LEVEL_ASSET));
          const folder = addonFolder({ chosen: process.env[NATIVE_DIR_ENV], tmp: tmpdir(), uid: process.getuid?.() ?? 0 });
          loaded = { binding: loadAddon(bytes, folder) as Record<PropertyKey, unknown> };
        } catch (err) {
          loaded = { error: err };
        }
      }
      if ('error' in loaded) throw loaded.error;
      return loaded.binding;
    };
    return new Proxy({}, { get: (_target, name) => binding()[name] });
  }
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  return nodeGypBuild(fallbackPackageDir);
}
