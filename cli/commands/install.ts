// `workrs install` and `workrs uninstall`: this executable as a systemd service.
//
// install writes, under --root (default /):
// - usr/local/bin/workrs: a copy of this executable;
// - etc/workrs/config.json: the node options given (the flags of `workrs start`, keys in
//   camelCase, paths made absolute), checked as `workrs start --config` reads them;
// - etc/systemd/system/workrs.service: `workrs start --config /etc/workrs/config.json`,
//   restarted on failure, ordered after docker.service, with a stop timeout longer
//   than the graceful drain (SIGTERM: running jobs checkpointed for up to 60 s, the
//   leadership handed off);
// - for the Docker runtime, etc/docker/daemon.json with "experimental": true (CRIU
//   checkpoints need it) and "live-restore": true unless the host set it (containers,
//   and so jobs, live on through a restart or upgrade of dockerd), the host's other
//   keys kept.
// On the running system (--root /) with systemd as init it then restarts docker.service
// when daemon.json changed, and enables and starts workrs.service (unless --no-start).
// Without systemd it says what is left to do. CRIU itself comes with `make install`,
// which runs `make setup` first (scripts/setup-host.sh: the CRIU that works here).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { resolveNodeOptions, type RawOptions } from '../../src/config/node-options.js';
import { seaModule } from '../../src/platform/native-addon.js';
import { CliError, EXIT } from '../exit.js';

export const BIN_PATH = '/usr/local/bin/workrs';
export const CONFIG_PATH = '/etc/workrs/config.json';
export const UNIT_PATH = '/etc/systemd/system/workrs.service';
export const DOCKER_DAEMON_JSON = '/etc/docker/daemon.json';
/** Longer than the drain's checkpoint wait (60 s, src/node/lifecycle.ts) plus the hand-off. */
const STOP_TIMEOUT_SECONDS = 90;

/** Options that name files: the service runs with / as its folder. */
const PATH_KEYS = ['data', 'secretFile', 'previousSecretFile', 'tokenFile', 'caFile', 'config'];

export function unitText(binPath = BIN_PATH, configPath = CONFIG_PATH): string {
  return `# Written by workrs install; workrs uninstall removes it.
[Unit]
Description=Workrs node: gateway, Raft member, worker and scheduler
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=simple
ExecStart=${binPath} start --config ${configPath}
Restart=on-failure
RestartSec=2s
# SIGTERM drains: running jobs are checkpointed (up to 60 s) and leadership handed off.
KillSignal=SIGTERM
TimeoutStopSec=${STOP_TIMEOUT_SECONDS}s
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
}

const under = (root: string, path: string): string => join(root, path);

function writeAtomic(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.workrs-${process.pid}`;
  writeFileSync(temp, text, { mode });
  chmodSync(temp, mode);
  renameSync(temp, path);
}

/**
 * daemon.json with "experimental": true (checkpoints need it) and "live-restore": true
 * unless the host chose a value (jobs survive a restart of dockerd), the other keys as
 * they were; null when it had both already.
 */
export function dockerConfigForWorkrs(current: string | null): string | null {
  let parsed: Record<string, unknown> = {};
  if (current !== null && current.trim() !== '') {
    const value: unknown = JSON.parse(current);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('it is not a JSON object');
    parsed = value as Record<string, unknown>;
  }
  if (parsed.experimental === true && 'live-restore' in parsed) return null;
  return `${JSON.stringify({ ...parsed, experimental: true, 'live-restore': parsed['live-restore'] ?? true }, null, 2)}\n`;
}

const systemdRuns = (root: string): boolean => root === '/' && existsSync('/run/systemd/system');

function systemctl(...args: string[]): void {
  execFileSync('systemctl', args, { stdio: ['ignore', 'inherit', 'inherit'] });
}

export async function installCommand(given: RawOptions & { root?: string; start?: boolean }): Promise<void> {
  const root = resolve(given.root ?? '/');
  const sea = seaModule();
  if (!sea?.isSea()) throw new CliError('install copies this executable: run it from the built one (dist/workrs install, or make install)', EXIT.usage);
  const options: RawOptions = {};
  for (const [key, value] of Object.entries(given)) {
    if (key === 'root' || key === 'start' || value === undefined) continue;
    options[key] = PATH_KEYS.includes(key) && typeof value === 'string' && !isAbsolute(value) ? resolve(value) : value;
  }
  if (options.config !== undefined) throw new CliError('install writes the config file itself: give the options as flags, not --config', EXIT.usage);
  try {
    resolveNodeOptions({}, options);
  } catch (err) {
    throw new CliError(`these options would not start a node: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage);
  }
  const say = (line: string): void => void process.stderr.write(`install: ${line}\n`);

  const bin = under(root, BIN_PATH);
  mkdirSync(dirname(bin), { recursive: true });
  copyFileSync(process.execPath, `${bin}.new`);
  chmodSync(`${bin}.new`, 0o755);
  renameSync(`${bin}.new`, bin);
  say(`${bin}`);
  writeAtomic(under(root, CONFIG_PATH), `${JSON.stringify(options, null, 2)}\n`, 0o640);
  say(`${under(root, CONFIG_PATH)}`);
  writeAtomic(under(root, UNIT_PATH), unitText(), 0o644);
  say(`${under(root, UNIT_PATH)}`);

  let dockerChanged = false;
  if ((options.runtime ?? 'docker') === 'docker') {
    const path = under(root, DOCKER_DAEMON_JSON);
    let next: string | null;
    try {
      next = dockerConfigForWorkrs(existsSync(path) ? readFileSync(path, 'utf8') : null);
    } catch (err) {
      throw new CliError(`${path}: ${err instanceof Error ? err.message : String(err)}; fix it, then install again`, EXIT.failed);
    }
    if (next !== null) {
      writeAtomic(path, next, 0o644);
      dockerChanged = true;
      say(`${path}: "experimental": true (CRIU checkpoints need it), "live-restore" set (jobs live on through a restart of dockerd)`);
    }
  }

  if (!systemdRuns(root)) {
    say(root === '/' ? 'systemd is not running here: start the node with `workrs start --config /etc/workrs/config.json`' : `installed under ${root}`);
    if (dockerChanged && root === '/') say('restart dockerd with the new daemon.json (or run make setup, which starts it with --experimental)');
    return;
  }
  systemctl('daemon-reload');
  if (dockerChanged) {
    say('restarting docker.service for daemon.json');
    systemctl('restart', 'docker.service');
  }
  if (given.start === false) {
    systemctl('enable', 'workrs.service');
    say('enabled; start it with: systemctl start workrs');
    return;
  }
  systemctl('enable', '--now', 'workrs.service');
  say('enabled and started: systemctl status workrs; journalctl -u workrs');
}

/** Removes what install wrote; the node's data and any file of the operator's in /etc/workrs stay. */
export async function uninstallCommand(o: { root?: string }): Promise<void> {
  const root = resolve(o.root ?? '/');
  const say = (line: string): void => void process.stderr.write(`uninstall: ${line}\n`);
  let dataDir: string | null = null;
  try {
    const config = JSON.parse(readFileSync(under(root, CONFIG_PATH), 'utf8')) as { data?: unknown };
    if (typeof config.data === 'string') dataDir = config.data;
  } catch {
    // no config: nothing to report about data
  }
  if (systemdRuns(root) && existsSync(UNIT_PATH)) {
    systemctl('disable', '--now', 'workrs.service');
    say('stopped and disabled workrs.service');
  }
  for (const path of [UNIT_PATH, BIN_PATH]) {
    rmSync(under(root, path), { force: true });
    say(`removed ${under(root, path)}`);
  }
  rmSync(under(root, CONFIG_PATH), { force: true });
  say(`removed ${under(root, CONFIG_PATH)}`);
  // The folder goes only when empty: an operator's join secret may live there.
  try {
    rmdirSync(under(root, dirname(CONFIG_PATH)));
  } catch {
    say(`kept ${under(root, dirname(CONFIG_PATH))}: it holds files install did not write (a join secret?)`);
  }
  if (systemdRuns(root)) systemctl('daemon-reload');
  // The node's data (its Raft log, its copies of checkpoints and results) is not ours to delete.
  if (dataDir !== null) say(`kept the node's data in ${dataDir}: remove it yourself once the cluster no longer needs this node (workrs nodes remove ID)`);
}
