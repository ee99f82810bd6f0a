// `workrs install --root DIR` and `workrs uninstall --root DIR` with the built
// executable: the binary, the config (checked as start reads it) and the systemd unit
// (which `systemd-analyze verify` accepts without a word), Docker's daemon.json merged
// with "experimental": true, the installed copy starting a node from that config, and
// uninstall taking back what install wrote and nothing else.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const binary = process.env.WORKRS_BINARY ?? join(root, 'dist', 'workrs');
if (!existsSync(binary)) throw new Error(`${binary} is missing: run 'make build' (make test does it)`);

const run = (...args: string[]) => spawnSync(binary, args, { encoding: 'utf8', timeout: 60_000 });

t.test('install writes a service that systemd accepts and that starts a node; uninstall takes it back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-install-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = join(dir, 'root');
  const data = join(dir, 'data');
  const [api = 0, peer = 0] = await freePorts(2);
  const nodeArgs = ['--id', 'i1', '--data', data, '--api', `127.0.0.1:${api}`, '--peer', `127.0.0.1:${peer}`, '--bootstrap', `i1=127.0.0.1:${peer}`, '--runtime', 'fake', '--slots', '2'];

  const bad = run('install', '--root', target, '--runtime', 'fake');
  t.equal(bad.status, 2, 'options that would not start a node are refused');
  t.match(bad.stderr, /these options would not start a node/);
  t.notOk(existsSync(join(target, 'etc/workrs/config.json')), 'and nothing is written');

  const r = run('install', '--root', target, ...nodeArgs);
  t.equal(r.status, 0, r.stderr);
  const bin = join(target, 'usr/local/bin/workrs');
  t.ok(existsSync(bin), 'the executable');
  t.equal(readFileSync(bin).length, readFileSync(binary).length, 'a copy of this one');
  const config = JSON.parse(readFileSync(join(target, 'etc/workrs/config.json'), 'utf8')) as Record<string, unknown>;
  t.same(config, { id: 'i1', data, api: `127.0.0.1:${api}`, peer: `127.0.0.1:${peer}`, bootstrap: `i1=127.0.0.1:${peer}`, runtime: 'fake', slots: '2' }, 'the config holds the options given');
  const unit = readFileSync(join(target, 'etc/systemd/system/workrs.service'), 'utf8');
  t.match(unit, /^ExecStart=\/usr\/local\/bin\/workrs start --config \/etc\/workrs\/config\.json$/m);
  t.match(unit, /^Restart=on-failure$/m);
  t.match(unit, /^After=network-online\.target docker\.service$/m, 'after Docker');
  const stop = Number(/^TimeoutStopSec=(\d+)s$/m.exec(unit)?.[1]);
  t.ok(stop > 60, `a stop timeout (${stop} s) longer than the drain's 60 s`);
  t.notOk(existsSync(join(target, 'etc/docker/daemon.json')), 'the fake runtime leaves Docker alone');

  // systemd's own check, on the unit as installed but with the executable where it lies here.
  const check = join(dir, 'workrs.service');
  writeFileSync(check, unit.replace('ExecStart=/usr/local/bin/workrs', `ExecStart=${bin}`));
  const verify = spawnSync('systemd-analyze', ['verify', check], { encoding: 'utf8' });
  t.equal(verify.error, undefined, 'systemd-analyze runs (make setup installs systemd)');
  t.equal(verify.status, 0, `systemd-analyze verify passes: ${verify.stderr}`);
  t.equal(`${verify.stdout}${verify.stderr}`.trim(), '', 'without a warning');

  // The service's command, run as systemd would (with the config's absolute paths).
  const node = spawn(bin, ['start', '--config', join(target, 'etc/workrs/config.json')], { stdio: 'ignore' });
  t.teardown(() => node.kill('SIGKILL'));
  const ready = await waitFor('the installed node to be ready', async () => {
    const res = await fetch(`http://127.0.0.1:${api}/readyz`).catch(() => null);
    return res?.status === 200 ? true : undefined;
  }, 30_000, 200);
  t.ok(ready, 'the installed executable starts a node from the installed config');
  node.kill('SIGTERM');
  await new Promise((r) => node.once('exit', r));

  writeFileSync(join(target, 'etc/workrs/secret'), 'the operator keeps the join secret here\n');
  const u = run('uninstall', '--root', target);
  t.equal(u.status, 0, u.stderr);
  t.notOk(existsSync(bin), 'the executable is gone');
  t.notOk(existsSync(join(target, 'etc/systemd/system/workrs.service')), 'the unit is gone');
  t.notOk(existsSync(join(target, 'etc/workrs/config.json')), 'the config is gone');
  t.ok(existsSync(join(target, 'etc/workrs/secret')), "a file of the operator's in /etc/workrs stays");
  t.ok(existsSync(data), "the node's data stays");
  t.match(u.stderr, new RegExp(`kept the node's data in ${data}`));
});

t.test('for the Docker runtime, daemon.json gets "experimental": true and "live-restore" unless set, and keeps its other keys', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-install-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = join(dir, 'root');
  const daemonJson = join(target, 'etc/docker/daemon.json');
  mkdirSync(dirname(daemonJson), { recursive: true });
  writeFileSync(daemonJson, '{ "log-driver": "json-file", "experimental": false }\n');
  const args = ['install', '--root', target, '--id', 'd1', '--data', join(dir, 'data'), '--api', '127.0.0.1:7709', '--peer', '127.0.0.1:7809', '--bootstrap', 'd1=127.0.0.1:7809', '--runtime', 'docker'];
  const first = run(...args);
  t.equal(first.status, 0, first.stderr);
  t.same(JSON.parse(readFileSync(daemonJson, 'utf8')), { 'log-driver': 'json-file', experimental: true, 'live-restore': true });
  t.match(first.stderr, /"experimental": true/);
  const again = run(...args);
  t.equal(again.status, 0, again.stderr);
  t.notMatch(again.stderr, /daemon\.json/, 'a second install leaves a daemon.json that has it alone');
  writeFileSync(daemonJson, '{ "live-restore": false }\n');
  const chosen = run(...args);
  t.equal(chosen.status, 0, chosen.stderr);
  t.same(JSON.parse(readFileSync(daemonJson, 'utf8')), { experimental: true, 'live-restore': false }, "the host's own live-restore choice is kept");
  writeFileSync(daemonJson, '[1, 2]\n');
  const broken = run(...args);
  t.equal(broken.status, 1, 'a daemon.json that is not a JSON object is not overwritten');
  t.match(broken.stderr, /daemon\.json: it is not a JSON object/);
  t.equal(readFileSync(daemonJson, 'utf8'), '[1, 2]\n');
});
