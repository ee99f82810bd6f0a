// dist/workrs is one file: copied alone into an empty folder, with no node_modules
// anywhere above it and no node on PATH, it runs and opens a LevelDB (the native
// addon travels inside it). `make test` builds it first; WORKRS_BINARY names another
// build (as for the process tests).
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const built = process.env.WORKRS_BINARY ?? join(root, 'dist', 'workrs');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

// Every command of the CLI in docs/api.md.
const API_COMMANDS = ['start', 'demo', 'submit', 'wait', 'status', 'jobs', 'logs', 'result', 'cancel', 'nodes', 'images', 'acl', 'tokens', 'plan', 'completion', 'install', 'uninstall', 'version'];

function ancestorsWithNodeModules(dir: string): string[] {
  const found: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules'))) found.push(d);
    if (dirname(d) === d) return found;
  }
}

if (!existsSync(built)) throw new Error(`${built} is missing: run 'make build' (make test does it)`);
const folder = mkdtempSync(join(tmpdir(), 'workrs-bin-'));
const binary = join(folder, 'workrs');
copyFileSync(built, binary);
t.teardown(() => rmSync(folder, { recursive: true, force: true }));

function run(...args: string[]) {
  // No node on PATH, no NODE_PATH: only the executable itself.
  const r = spawnSync(binary, args, { cwd: folder, encoding: 'utf8', env: { PATH: '/nonexistent', HOME: folder }, timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

t.test('the copy sits in a folder with no node_modules above it', async (t) => {
  t.same(ancestorsWithNodeModules(folder), [], 'no node_modules in any ancestor');
});

t.test('version prints the package version', async (t) => {
  const r = run('version');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^workrs ${pkg.version.replaceAll('.', '\\.')} `));
  for (const flag of ['--version', '-V']) {
    const f = run(flag);
    t.equal(f.status, 0, `${flag} exits 0`);
    t.equal(f.stdout, r.stdout, `${flag} prints what workrs version prints`);
  }
  const json = JSON.parse(run('version', '--json').stdout) as { version: string; protocol: unknown };
  t.equal(json.version, pkg.version);
  t.same(json.protocol, { version: 2, min: 1, max: 2 }, 'the protocol versions it speaks (docs/upgrading.md)');
});

t.test('the embedded LevelDB addon loads and a database opens from an empty folder', async (t) => {
  const r = run('doctor', '--only', 'storage');
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  t.match(r.stdout, /^ok\s+storage/);
  t.equal(r.stderr, '', 'no warnings on stderr');
});

t.test('--help lists every command of the API contract', async (t) => {
  const r = run('--help');
  t.equal(r.status, 0);
  for (const cmd of API_COMMANDS) t.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `lists ${cmd}`);
});

t.test('unknown commands and bad flags exit 2 with a message', async (t) => {
  const unknown = run('frobnicate');
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /unknown command/);
  const badFlag = run('doctor', '--only', 'nonsense');
  t.equal(badFlag.status, 2);
  t.match(badFlag.stderr, /--only takes/);
});

// What a command loads, as the executable reports it with WORKRS_TRACE_LOADS=1
// (src/platform/trace-loads.ts): the commands people run all day load neither Docker's
// client nor LevelDB's code; `doctor --only storage` shows that the trace does see them.
t.test('version, jobs and submit load neither Docker nor LevelDB code', async (t) => {
  const traced = (...args: string[]) => {
    const r = spawnSync(binary, args, { cwd: folder, encoding: 'utf8', env: { PATH: '/nonexistent', HOME: folder, WORKRS_TRACE_LOADS: '1' }, timeout: 60_000 });
    if (r.error) throw r.error;
    return [...r.stderr.matchAll(/^workrs: loaded (.+)$/gm)].map((m) => m[1]);
  };
  t.same(traced('version'), [], 'version: nothing');
  t.same(traced('--help'), [], '--help: nothing');
  t.same(traced('jobs', '--server', 'http://127.0.0.1:1'), ['chunk undici'], 'jobs: the HTTP client only');
  t.same(traced('submit', '--server', 'http://127.0.0.1:1', '--', 'true'), ['chunk undici'], 'submit: the HTTP client only');
  t.ok(traced('doctor', '--only', 'storage').includes('classic-level'), 'the trace sees LevelDB when a command opens a store');
});

// The CLI's HTTP client, Docker's client and the certificate library travel as chunks
// of their own inside the executable (scripts/build.mjs, src/platform/lazy-chunk.ts):
// each command that needs one loads it from there, with nothing on disk to fall back on.
t.test('the lazily loaded libraries load from inside the executable', async (t) => {
  const client = run('jobs', '--server', 'http://127.0.0.1:1');
  t.equal(client.status, 3, client.stderr);
  t.match(client.stderr, /cannot reach the cluster/, 'the HTTP client (undici) ran');
  const docker = run('doctor', '--only', 'docker', '--docker', `unix://${join(folder, 'no-engine.sock')}`);
  t.equal(docker.status, 1, docker.stderr);
  t.match(docker.stdout, /^FAIL docker\s+no Docker engine answers: connect ENOENT/m, "Docker's client (dockerode) ran");
  const [peerPort = 0, apiPort = 0] = await freePorts(2);
  const data = join(folder, 'secure-node');
  const secret = join(folder, 'secret');
  writeFileSync(secret, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  const node = spawn(binary, ['start', '--id', 's1', '--data', data, '--api', `127.0.0.1:${apiPort}`, '--peer', `127.0.0.1:${peerPort}`, '--runtime', 'fake', '--secret-file', secret, '--bootstrap', `s1=127.0.0.1:${peerPort}`], { cwd: folder, env: { PATH: '/nonexistent', HOME: folder }, stdio: 'ignore' });
  t.teardown(() => node.kill('SIGKILL'));
  await waitFor('the secure node to write its CA (made with @peculiar/x509)', () => (existsSync(join(data, 'ca.pem')) ? true : undefined), 30_000);
  t.match(readFileSync(join(data, 'ca.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
});
