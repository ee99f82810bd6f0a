// Libraries a node seldom or never needs travel outside the executable's main script,
// each in a chunk of its own: the CLI's HTTP client (undici), Docker's client
// (dockerode, with ssh2 and gRPC) and the certificate library (@peculiar/x509).
// scripts/build.mjs bundles each into <name>.cjs, stores it as an asset of the
// executable and as a file beside workrs.cjs (for `node dist/workrs.cjs`), and routes
// the package's imports here; the code that uses them imports them only when needed
// (cli/program.ts, src/node/workrs-node.ts, src/tls/pki.ts). Code in a script costs
// memory even when it never runs: V8 keeps the whole source, parses all of it, and the
// executable's pages that hold it stay mapped.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { compileFunction } from 'node:vm';
import { seaModule } from './native-addon.js';
import { traceLoad } from './trace-loads.js';

/** The asset of the executable (and the file beside workrs.cjs) that holds chunk `name`. */
export const chunkFile = (name: string): string => `${name}.cjs`;

const loaded = new Map<string, unknown>();

function chunkSource(name: string, bundleDir: string): string {
  const sea = seaModule();
  if (sea?.isSea()) return Buffer.from(sea.getAsset(chunkFile(name))).toString('utf8');
  return readFileSync(join(bundleDir, chunkFile(name)), 'utf8');
}

/**
 * The exports of chunk `name`, run on the first call (a CommonJS bundle that requires
 * only Node's own modules). `bundleDir` is the folder of workrs.cjs, where the chunk
 * files lie outside the executable.
 */
export function loadChunk(name: string, bundleDir: string): unknown {
  if (loaded.has(name)) return loaded.get(name);
  traceLoad(`chunk ${name}`);
  const filename = join(bundleDir, chunkFile(name));
  const run = compileFunction(chunkSource(name, bundleDir), ['exports', 'require', 'module', '__filename', '__dirname'], { filename });
  const module = { exports: {} as unknown };
  run.call(module.exports, module.exports, createRequire(filename), module, filename, bundleDir);
  loaded.set(name, module.exports);
  return module.exports;
}
