// A local 3-node Workrs cluster (real `workrs start --runtime docker` processes) whose
// boxes the experiments destroy: kill -9 of the node's process, its containers removed
// (by cluster id + node labels), its data folder deleted; then a fresh node with a new
// id and an empty data folder joins through a live node, as a replacement box would.
// A new id rather than the lost one's: the leader promotes the caught-up newcomer to
// voter and demotes the lost voter (docs/cluster.md, "Voters"), whereas a voter
// returning under its old id with an empty Raft log would have forgotten its vote.
// Also samples what the boxes spend: CPU time of the node processes (/proc/<pid>/stat)
// and of the job's containers (cgroup v1 cpuacct.usage).
import { readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobView } from '../../src/state/views.js';
import { mergeDockerLog } from '../../src/worker/docker-logs.js';
import { connectDocker } from '../../src/worker/docker-endpoint.js';
import { clusterIdOf, removeClusterContainers } from '../../test/docker/cluster-containers.js';
import { LocalCluster } from '../../test/process/harness.js';

const docker = connectDocker();
const TICKS_PER_SECOND = 100;

export interface BoxPriors {
  mtbfPriorSeconds: number;
  mtbfPriorWeight: number;
  restartPriorSeconds: number;
}

interface ClusterNodeView {
  id: string;
  voter: boolean;
  state: string;
}

/** CPU seconds (user + system) of a process so far; null once it is gone. */
function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: utime and stime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** CPU seconds of a container so far (cgroup v1, cgroupfs driver); null when it cannot be read. */
function containerCpuSeconds(id: string): number | null {
  try {
    return Number(readFileSync(`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, 'utf8').trim()) / 1e9;
  } catch {
    return null;
  }
}

/** "P 12.3" lines of a job's log: seconds of work done. */
export function progressLines(log: string): number[] {
  return [...log.matchAll(/^P (\d+(?:\.\d+)?)$/gm)].map((m) => Number(m[1]));
}

export class Boxes {
  private joined = 0;
  /** Highest CPU reading per process / per container: the last one before it went. */
  private readonly nodeCpu = new Map<number, number>();
  private readonly jobCpu = new Map<string, number>();

  private constructor(
    readonly cluster: LocalCluster,
    private readonly prefix: string,
    private readonly configFile: string,
  ) {}

  static async start(prefix: string, priors: BoxPriors): Promise<Boxes> {
    const ids = [1, 2, 3].map((i) => `${prefix}-n${i}`);
    const cluster = await LocalCluster.create(ids);
    const configFile = join(cluster.dir, 'config.json');
    await writeFile(configFile, JSON.stringify(priors));
    for (const n of cluster.nodes.values()) {
      n.args[n.args.indexOf('fake')] = 'docker';
      n.args.push('--config', configFile);
    }
    const boxes = new Boxes(cluster, prefix, configFile);
    cluster.startAll();
    await cluster.leader(60_000);
    await cluster.allReady(60_000);
    return boxes;
  }

  live(): string[] {
    return [...this.cluster.nodes.values()].filter((n) => n.proc).map((n) => n.id);
  }

  /** A live node to read through, preferring one that is not `avoid`. */
  via(avoid?: string): string {
    const live = this.live();
    return live.find((id) => id !== avoid) ?? live[0] ?? '';
  }

  async job(id: string, avoid?: string): Promise<JobView> {
    return (await this.cluster.get<JobView>(this.via(avoid), `/v1/jobs/${id}?stale=1`)).body;
  }

  /** Three voters, all alive, a leader: one more box may go without losing the quorum. */
  async healthy(): Promise<boolean> {
    try {
      const view = (await this.cluster.get<{ leader: string | null; nodes: ClusterNodeView[] }>(this.via(), '/v1/cluster?stale=1')).body;
      const voters = view.nodes.filter((n) => n.voter);
      const live = new Set(this.live());
      return view.leader !== null && voters.length >= 3 && voters.every((n) => n.state === 'alive' && live.has(n.id));
    } catch {
      return false;
    }
  }

  /** The running container of a job's attempt, if any. */
  async container(jobId: string, epoch: number): Promise<string | null> {
    const list = await docker.listContainers({ all: true, filters: { label: [`workrs.cluster=${clusterIdOf(this.cluster)}`, `workrs.job=${jobId}`, `workrs.epoch=${epoch}`] } });
    return list.find((c) => c.State === 'running')?.Id ?? null;
  }

  /** The container's own log (not the cluster's merged one). */
  async containerLog(id: string): Promise<string> {
    const raw = await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false });
    return mergeDockerLog(raw as unknown as Buffer).toString();
  }

  /** Reads the CPU counters of the live node processes and of the job's containers. */
  async sample(jobId: string): Promise<void> {
    for (const n of this.cluster.nodes.values()) {
      const pid = n.proc?.pid;
      const cpu = pid === undefined ? null : processCpuSeconds(pid);
      if (pid !== undefined && cpu !== null) this.nodeCpu.set(pid, Math.max(cpu, this.nodeCpu.get(pid) ?? 0));
    }
    const list = await docker.listContainers({ all: true, filters: { label: [`workrs.cluster=${clusterIdOf(this.cluster)}`, `workrs.job=${jobId}`] } });
    for (const c of list) {
      const cpu = containerCpuSeconds(c.Id);
      if (cpu !== null) this.jobCpu.set(c.Id, Math.max(cpu, this.jobCpu.get(c.Id) ?? 0));
    }
  }

  cpuSeconds(): { nodes: number; job: number } {
    const sum = (m: Map<unknown, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
    return { nodes: sum(this.nodeCpu), job: sum(this.jobCpu) };
  }

  /** The box is gone (process, containers, data) and a fresh one joins in its place. */
  async destroy(node: string, jobId: string): Promise<void> {
    await this.sample(jobId);
    const n = this.cluster.node(node);
    await this.cluster.kill(node);
    await removeClusterContainers(this.cluster, node);
    rmSync(n.dataDir, { recursive: true, force: true });
    this.joined += 1;
    const fresh = await this.cluster.addJoiner(`${this.prefix}-j${this.joined}`, this.via(node));
    fresh.args[fresh.args.indexOf('fake')] = 'docker';
    fresh.args.push('--config', this.configFile);
    this.cluster.start(fresh.id);
  }

  /** Stops every node, removes the cluster's folder and containers and the job's snapshot images; `printLogs` shows the end of each node's log first. */
  async close(jobId: string | null, printLogs: boolean): Promise<void> {
    await this.cluster.destroy(printLogs);
    rmSync(this.cluster.dir, { recursive: true, force: true });
    await removeClusterContainers(this.cluster);
    if (jobId === null) return;
    for (const image of await docker.listImages()) {
      for (const tag of image.RepoTags ?? []) if (tag.startsWith(`workrs-snap/${jobId}:`)) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  }
}
