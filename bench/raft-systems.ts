// `make bench-raft` (bench/raft.ts): the two systems under test behind one interface.
// - etcd 3.4 (Debian's etcd-server, installed here if missing): 3 members on loopback
//   started by the bench with fresh data folders, --heartbeat-interval 100
//   --election-timeout 1000; writes are POST /v3/kv/put with 100-byte values.
// - Workrs: 3 `workrs start --runtime fake` nodes in dev mode (test/process/harness.ts);
//   writes are POST /v1/jobs with a ~150-byte spec.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../test/process/harness.js';
import { freePorts } from '../test/helpers/ports.js';
import { waitFor } from '../test/helpers/wait.js';
import type { Write } from './raft-load.js';

export type SystemName = 'etcd' | 'workrs';

export interface System {
  readonly name: SystemName;
  /** Member ids. */
  readonly ids: readonly string[];
  /** The pid of a running member, null when it is down. */
  pid(id: string): number | null;
  /** The member every live member agrees leads. */
  leader(timeoutMs?: number): Promise<string>;
  /** The write route on member `id`. */
  write(id: string): Write;
  kill(id: string): Promise<void>;
  /** Starts a killed member again and waits until it has caught up with the cluster. */
  restart(id: string, timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

/** Every system started and not yet destroyed: stopped on an error or SIGINT too. */
export const live = new Set<System>();

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
const VALUE_100 = b64(Buffer.alloc(100, 'v'));

// ---------------------------------------------------------------- etcd

/** `which etcd`, else apt-get install -y etcd-server (and stop the service the package may start). */
export function ensureEtcd(): string {
  const which = (): string | null => {
    try {
      return execFileSync('which', ['etcd']).toString().trim() || null;
    } catch {
      return null;
    }
  };
  let bin = which();
  if (bin === null) {
    console.log('etcd is missing: apt-get install -y etcd-server');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', 'etcd-server'], { stdio: 'inherit', env });
    } catch {
      execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
      execFileSync('apt-get', ['install', '-y', 'etcd-server'], { stdio: 'inherit', env });
    }
    bin = which();
    if (bin === null) throw new Error('apt-get install etcd-server left no etcd on PATH');
  }
  stopSystemEtcd();
  return bin;
}

/**
 * The package's service (when something started it) runs etcd without --data-dir (it
 * reads /etc/default/etcd) on port 2379; the bench's members always pass --data-dir.
 */
function stopSystemEtcd(): void {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!(argv[0] ?? '').endsWith('etcd') || argv.some((a) => a.startsWith('--data-dir'))) continue;
    console.log(`stopping the system etcd (pid ${name}) so that it does not disturb the bench`);
    for (const cmd of [['systemctl', 'stop', 'etcd'], ['systemctl', 'disable', 'etcd']]) {
      try {
        execFileSync(cmd[0] as string, cmd.slice(1), { stdio: 'ignore' });
      } catch {
        // No systemd in this container: the kill below does it.
      }
    }
    try {
      process.kill(Number(name), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

interface EtcdMember {
  id: string;
  clientPort: number;
  peerPort: number;
  proc: ChildProcess | null;
  args: string[];
  logFile: string;
}

interface EtcdStatus {
  header?: { member_id?: string };
  leader?: string;
  raftTerm?: string;
  raftIndex?: string;
}

export class EtcdCluster implements System {
  readonly name = 'etcd' as const;
  readonly ids: readonly string[];
  private readonly members = new Map<string, EtcdMember>();

  private constructor(
    readonly dir: string,
    private readonly bin: string,
  ) {
    this.ids = ['e1', 'e2', 'e3'];
  }

  static async start(bin: string): Promise<EtcdCluster> {
    const c = new EtcdCluster(mkdtempSync(join(tmpdir(), 'workrs-bench-etcd-')), bin);
    live.add(c);
    const ports = await freePorts(c.ids.length * 2);
    const initial = c.ids.map((id, i) => `${id}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
    c.ids.forEach((id, i) => {
      const clientPort = ports[2 * i] ?? 0;
      const peerPort = ports[2 * i + 1] ?? 0;
      const args = [
        '--name', id, '--data-dir', join(c.dir, id), '--logger', 'zap', '--log-outputs', 'stderr',
        '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}-${Date.now()}`,
        '--heartbeat-interval', '100', '--election-timeout', '1000',
      ];
      c.members.set(id, { id, clientPort, peerPort, proc: null, args, logFile: join(c.dir, `${id}.log`) });
    });
    for (const id of c.ids) c.spawn(id);
    await c.leader(30_000);
    return c;
  }

  private member(id: string): EtcdMember {
    const m = this.members.get(id);
    if (!m) throw new Error(`no etcd member ${id}`);
    return m;
  }

  private spawn(id: string): void {
    const m = this.member(id);
    mkdirSync(this.dir, { recursive: true });
    const log = createWriteStream(m.logFile, { flags: 'a' });
    // Only the bench's own settings: no ETCD_* variables from the environment.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    const proc = spawn(this.bin, m.args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    proc.on('exit', () => {
      if (m.proc === proc) m.proc = null;
    });
    m.proc = proc;
  }

  url(id: string): string {
    return `http://127.0.0.1:${this.member(id).clientPort}`;
  }

  pid(id: string): number | null {
    return this.member(id).proc?.pid ?? null;
  }

  async status(id: string): Promise<EtcdStatus | null> {
    try {
      const res = await fetch(`${this.url(id)}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
      return res.status === 200 ? ((await res.json()) as EtcdStatus) : null;
    } catch {
      return null;
    }
  }

  async leader(timeoutMs = 20_000): Promise<string> {
    return waitFor('an etcd leader every live member agrees on', async () => {
      const up = this.ids.filter((id) => this.member(id).proc);
      const all = await Promise.all(up.map(async (id) => ({ id, s: await this.status(id) })));
      const leaders = new Set(all.map(({ s }) => s?.leader ?? '0'));
      const [leaderHex] = [...leaders];
      if (leaders.size !== 1 || leaderHex === undefined || leaderHex === '0') return undefined;
      return all.find(({ s }) => s?.header?.member_id === leaderHex)?.id;
    }, timeoutMs, 20);
  }

  write(id: string): Write {
    const prefix = `${id}-${process.pid}-`;
    return { url: `${this.url(id)}/v3/kv/put`, okStatus: 200, body: (client, n) => `{"key":"${b64(`${prefix}${client}-${n}`)}","value":"${VALUE_100}"}` };
  }

  async kill(id: string): Promise<void> {
    const p = this.member(id).proc;
    if (!p) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    this.member(id).proc = null;
  }

  /** Back once it reports the leader the others follow, in their term, with its applied index within 100 of the leader's. */
  async restart(id: string, timeoutMs = 30_000): Promise<void> {
    this.spawn(id);
    const leader = await this.leader(timeoutMs);
    await waitFor(`etcd member ${id} to catch up`, async () => {
      const [mine, lead] = await Promise.all([this.status(id), this.status(leader)]);
      if (!mine || !lead || mine.leader !== lead.leader || mine.raftTerm !== lead.raftTerm) return undefined;
      return Number(lead.raftIndex) - Number(mine.raftIndex) <= 100 ? true : undefined;
    }, timeoutMs, 20);
  }

  async destroy(): Promise<void> {
    live.delete(this);
    for (const id of this.ids) await this.kill(id);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- Workrs

/** A ~150-byte spec: a fake-runtime job that runs for `seconds`. */
export function jobSpec(seconds: number): string {
  const base = { image: 'workrs/busybox:1', command: ['true'], env: { FAKE_SECONDS: String(seconds), BENCH: '' }, estimateSeconds: 1 };
  base.env.BENCH = 'x'.repeat(Math.max(0, 150 - JSON.stringify(base).length));
  return JSON.stringify(base);
}

export class WorkrsCluster implements System {
  readonly name = 'workrs' as const;
  readonly ids: readonly string[];

  private constructor(
    readonly cluster: LocalCluster,
    private readonly spec: string,
  ) {
    this.ids = [...cluster.nodes.keys()];
  }

  /**
   * 3 dev-mode nodes, `--runtime fake`; `extraArgs` after the harness's own (e.g.
   * --slots). The jobs written run for an hour by default: the write path is measured
   * alone (a put in etcd starts nothing either); what a job costs once placed, the
   * placement section measures.
   */
  static async start(extraArgs: string[] = [], jobSeconds = 3600): Promise<WorkrsCluster> {
    const cluster = await LocalCluster.create(['w1', 'w2', 'w3'], ['--max-pending-jobs', '1000000', ...extraArgs], { mode: 'dev' });
    const c = new WorkrsCluster(cluster, jobSpec(jobSeconds));
    live.add(c);
    cluster.startAll();
    try {
      await cluster.allReady(60_000);
      // allReady counts live nodes only: a node that exited at start would pass it.
      const gone = c.ids.filter((id) => c.pid(id) === null);
      if (gone.length > 0) throw new Error(`workrs ${gone.join(', ')} exited at start`);
      await cluster.leader(30_000);
    } catch (err) {
      live.delete(c);
      await cluster.destroy(true);
      throw err;
    }
    return c;
  }

  pid(id: string): number | null {
    return this.cluster.node(id).proc?.pid ?? null;
  }

  leader(timeoutMs = 20_000): Promise<string> {
    return this.cluster.leader(timeoutMs);
  }

  write(id: string): Write {
    return { url: `${this.cluster.url(id)}/v1/jobs`, okStatus: 202, body: () => this.spec };
  }

  kill(id: string): Promise<void> {
    return this.cluster.kill(id);
  }

  /** Back once every node answers /readyz (leader known, log applied, registered) and they agree on the leader. */
  async restart(id: string, timeoutMs = 60_000): Promise<void> {
    this.cluster.start(id);
    await this.cluster.allReady(timeoutMs);
    await this.cluster.leader(timeoutMs);
  }

  async destroy(): Promise<void> {
    live.delete(this);
    await this.cluster.destroy(false);
  }
}
