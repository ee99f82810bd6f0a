// Loads classic-level's native LevelDB addon.
//
// Inside the single executable (Node SEA) nothing can be require()d from disk by name:
// the addon travels as an SEA asset, is written once to a content-addressed temp file
// and loaded with process.dlopen. Outside the SEA the packaged prebuild is used.
// scripts/build.mjs routes classic-level's own `binding.js` here.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLASSIC_LEVEL_ASSET = 'classic-level.node';

interface SeaModule {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
}

function seaModule(): SeaModule | undefined {
  const require = createRequire(import.meta.url);
  try {
    return require('node:sea') as SeaModule;
  } catch {
    return undefined; // Node without SEA support: never inside an executable.
  }
}

function extractAsset(bytes: Buffer): string {
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `workrs-native-${digest}`);
  const file = join(dir, CLASSIC_LEVEL_ASSET);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    // Write then rename, so a concurrently starting node never loads a half-written file.
    const partial = `${file}.${process.pid}.tmp`;
    writeFileSync(partial, bytes, { mode: 0o755 });
    renameSync(partial, file);
  }
  return file;
}

export function loadClassicLevelBinding(fallbackPackageDir: string): unknown {
  const sea = seaModule();
  if (sea?.isSea()) {
    const file = extractAsset(Buffer.from(sea.getAsset(CLASSIC_LEVEL_ASSET)));
    const mod = { exports: {} as unknown };
    process.dlopen(mod, file);
    return mod.exports;
  }
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  return nodeGypBuild(fallbackPackageDir);
}
