// Builds dist/workrs: one executable that carries Node, the bundled program and
// classic-level's native addon (Node's single executable applications).
//   1. esbuild bundles cli/main.ts and everything it imports into dist/workrs.cjs,
//      except the libraries in CHUNKS: each goes into a chunk of its own,
//      dist/<chunk>.cjs, loaded on first use (src/platform/lazy-chunk.ts)
//   2. node --experimental-sea-config makes the preparation blob (script + assets:
//      the chunks and the addon)
//   3. a copy of this node binary, stripped of its symbols and debug sections (Debian's
//      node carries them: 99 MB against 86), gets the blob injected with postject
// The main script's V8 code cache goes into the blob (useCodeCache): a command starts
// without compiling the script first.
// The scripts are minified (whitespace and syntax; names are kept for stack traces):
// V8 keeps a script's whole source in memory, and the executable maps it too.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// WORKRS_BUILD_DIR: another output folder (e.g. a private build beside a running test).
const dist = process.env.WORKRS_BUILD_DIR ? resolve(process.env.WORKRS_BUILD_DIR) : join(root, 'dist');
const started = Date.now();
const log = (msg) => process.stderr.write(`build: ${msg}\n`);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
} catch {
  // Not a git checkout (e.g. an exported tarball): the version alone identifies the build.
}

const classicLevelDir = join(root, 'node_modules', 'classic-level');
const platformDir = `${process.platform}-${process.arch}`;
const addon = join(classicLevelDir, 'prebuilds', platformDir, 'classic-level.node');

// classic-level finds its addon with node-gyp-build at run time, which cannot work
// inside an executable; route its binding module to our loader instead. Optional
// native accelerators (msgpackr-extract, ssh2's crypto, cpu-features, ws's bufferutil and utf-8-validate) become modules
// that throw on load, which their packages already treat as "not installed"; the
// SEA's own require() would print a warning for each of them.
const OPTIONAL_NATIVE = /^(msgpackr-extract|cpu-features|bufferutil|utf-8-validate)$|\.node$/;
const nativeAddonPlugin = {
  name: 'workrs-native-addon',
  setup(b) {
    b.onResolve({ filter: OPTIONAL_NATIVE }, (args) => ({ path: args.path, namespace: 'optional-native' }));
    b.onLoad({ filter: /.*/, namespace: 'optional-native' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not shipped in the workrs executable`)});`,
      loader: 'js',
    }));
    // The web UI's files go into the executable as strings (src/ui/assets.ts reads them from disk).
    b.onLoad({ filter: /src[\\/]ui[\\/]assets\.ts$/ }, () => {
      const names = ['index.html', 'lib.js', 'dom.js', 'app.js', 'app.css'];
      const files = Object.fromEntries(names.map((n) => [n, readFileSync(join(root, 'src/ui', n), 'utf8')]));
      return {
        contents: `const FILES = ${JSON.stringify(files)};\nexport function uiAsset(name) { return FILES[name]; }\n`,
        loader: 'js',
      };
    });
    b.onLoad({ filter: /classic-level[\\/]binding\.js$/ }, () => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'src/platform/native-addon.ts'))}).loadClassicLevelBinding(${JSON.stringify(classicLevelDir)});`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

// Libraries a node seldom or never loads (the CLI's HTTP client, Docker's client with
// ssh2 and gRPC, the certificate library), by chunk: the packages whose imports load
// it, and the chunk's entry. x509 needs reflect-metadata's polyfill first.
const CHUNKS = {
  undici: { packages: ['undici'], entry: "module.exports = require('undici');" },
  dockerode: { packages: ['dockerode'], entry: "module.exports = require('dockerode');" },
  x509: { packages: ['@peculiar/x509', 'reflect-metadata'], entry: "require('reflect-metadata');\nmodule.exports = require('@peculiar/x509');" },
};
const chunkOf = new Map(Object.entries(CHUNKS).flatMap(([chunk, c]) => c.packages.map((p) => [p, chunk])));
const escapeRegExp = (t) => t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
// In the main script, importing one of those packages loads its chunk instead.
const lazyChunkPlugin = {
  name: 'workrs-lazy-chunks',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^(${[...chunkOf.keys()].map(escapeRegExp).join('|')})$`) }, (args) => ({ path: args.path, namespace: 'lazy-chunk' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-chunk' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'src/platform/lazy-chunk.ts'))}).loadChunk(${JSON.stringify(chunkOf.get(args.path))}, __dirname);`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

mkdirSync(dist, { recursive: true });
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: false,
  legalComments: 'none',
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  define: {
    __WORKRS_VERSION__: JSON.stringify(pkg.version),
    __WORKRS_COMMIT__: JSON.stringify(commit),
    'import.meta.url': '__workrs_import_meta_url',
  },
  banner: { js: "const __workrs_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
};
const bundle = join(dist, 'workrs.cjs');
await build({ ...common, entryPoints: [join(root, 'cli/main.ts')], outfile: bundle, plugins: [lazyChunkPlugin, nativeAddonPlugin] });
log(`bundled ${bundle}`);
const chunkFiles = {};
for (const [chunk, { entry }] of Object.entries(CHUNKS)) {
  const file = join(dist, `${chunk}.cjs`);
  await build({ ...common, stdin: { contents: entry, resolveDir: root, sourcefile: `${chunk}-chunk.cjs`, loader: 'js' }, outfile: file, plugins: [nativeAddonPlugin] });
  chunkFiles[`${chunk}.cjs`] = file;
}
log(`bundled chunks ${Object.keys(chunkFiles).join(', ')}`);

const seaConfig = join(dist, 'sea-config.json');
const blob = join(dist, 'sea-prep.blob');
writeFileSync(seaConfig, JSON.stringify({
  main: bundle,
  output: blob,
  disableExperimentalSEAWarning: true,
  useSnapshot: false,
  useCodeCache: true,
  assets: { 'classic-level.node': addon, ...chunkFiles },
}, null, 2));
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });
log(`prepared ${blob}`);

const out = join(dist, 'workrs');
const partial = `${out}.partial`;
rmSync(partial, { force: true });
copyFileSync(process.execPath, partial);
chmodSync(partial, 0o755);
// binutils' strip (make setup installs it); without it the executable is only larger.
const strip = spawnSync('strip', ['--strip-all', partial], { encoding: 'utf8' });
if (strip.error || strip.status !== 0) log(`not stripped (${strip.error?.message ?? strip.stderr.trim()}): install binutils for a smaller executable`);
// postject prints harmless ELF section warnings on success; show its output only on failure.
const inject = spawnSync(process.execPath, [join(root, 'node_modules/postject/dist/cli.js'), partial, 'NODE_SEA_BLOB', blob,
  '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { encoding: 'utf8' });
if (inject.status !== 0) {
  process.stderr.write(inject.stdout + inject.stderr);
  throw new Error(`postject failed with status ${inject.status}`);
}
// Rename last: a build that fails half-way leaves no broken dist/workrs behind.
renameSync(partial, out);
log(`wrote ${out} in ${Date.now() - started} ms`);
