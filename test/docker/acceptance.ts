// What the acceptance tests of issue 6 share: three boxes, each a `workrs start
// --runtime docker` process with a dockerd of its own, both in the box's own network
// namespace (test/docker/netlab.ts), so the boxes share nothing but the network; the
// jobs they run; and the ways the tests hurt a box (destroy it, partition it). Nodes
// off loopback need secure mode (the harness's default): each node's certificate names
// its address, so the test's HTTPS requests to it verify.
import { readFileSync, rmSync } from 'node:fs';
import type Docker from 'dockerode';
import type { JobView } from '../../src/state/views.js';
import { LocalCluster } from '../process/harness.js';
import { waitFor } from '../helpers/wait.js';
import { boxEngines, mainEngine, removeEngineAt, type Engine, type EngineSpec } from './engines.js';
import { Netlab } from './netlab.js';

export const IDS = ['n1', 'n2', 'n3'] as const;

/** The subset of a tap Test the set-up uses. */
interface T {
  teardown(fn: () => unknown): void;
  passing(): boolean;
}

/**
 * Prints START once, counts to `n` in a shell variable (state only in memory), one
 * line to the log and one appended to /work/count every 0.1 s, then checks the file
 * holds exactly 1..n: exit 0 and DONE only if neither memory nor file lost or
 * repeated a step.
 */
export function countingScript(n: number): string[] {
  return ['sh', '-c', `echo START; i=0; while [ $i -lt ${n} ]; do i=$((i+1)); echo $i; echo $i >> /work/count; sleep 0.1; done; seq 1 ${n} | cmp -s - /work/count || { echo BAD FILE; exit 1; }; echo DONE`];
}

/** The whole log of `countingScript(n)` when nothing is lost or repeated. */
export function countingLog(n: number): string {
  return `START\n${Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('')}DONE\n`;
}

/** One line of Docker's event stream, as far as the tests read it. */
export interface ContainerEvent {
  status: string;
  timeNano: number;
  Actor: { ID: string; Attributes: Record<string, string> };
}

export const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

export class Boxes {
  private readonly engines = new Map<string, Engine>();

  private constructor(
    readonly lab: Netlab,
    readonly cluster: LocalCluster,
    /** Where each box's engine lives, to crash and start it again. */
    readonly engineSpecs: ReadonlyMap<string, EngineSpec>,
  ) {}

  /**
   * Network, engines (in parallel) and a started cluster whose nodes are all ready.
   * `labIndex` keeps test files that run at the same time apart (names, subnet).
   * Teardown, registered first, removes everything even after a failure half-way.
   */
  static async start(t: T, labIndex: number, opts: { engineArgs?: (id: string) => string[] } = {}): Promise<Boxes> {
    const lab = new Netlab(labIndex, IDS);
    const specs: EngineSpec[] = IDS.map((id) => ({ name: `${id} (lab ${labIndex})`, dir: `/var/lib/workrs-acc-${labIndex}-${id}`, netns: lab.netns(id), args: opts.engineArgs?.(id) ?? [] }));
    let boxes: Boxes | null = null;
    t.teardown(async () => {
      try {
        await boxes?.cluster.destroy(!t.passing());
      } finally {
        // Engines before the network: their containers are removed through them.
        try {
          for (const spec of specs) await removeEngineAt(spec);
        } finally {
          await lab.tearDown();
        }
      }
    });
    const main = await mainEngine();
    // Leftover engines of a killed run go first, cleanly; then the network's leftovers.
    for (const spec of specs) await removeEngineAt(spec);
    await lab.setUp();
    const engines = await boxEngines(specs, main.docker);
    const cluster = await LocalCluster.create([...IDS], [], {
      host: (id) => lab.address(id),
      prefix: (id) => lab.enter(id),
    });
    const created = new Boxes(lab, cluster, new Map(IDS.map((id, i) => [id, specs[i]!])));
    boxes = created;
    IDS.forEach((id, i) => {
      const engine = engines[i];
      if (!engine) throw new Error(`no engine for ${id}`);
      created.engines.set(id, engine);
      const n = cluster.node(id);
      n.args[n.args.indexOf('fake')] = 'docker';
      n.args.push('--docker', `unix://${engine.socket}`);
    });
    cluster.startAll();
    await cluster.leader(60_000);
    await cluster.allReady(60_000);
    return created;
  }

  engine(id: string): Docker {
    const e = this.engines.get(id);
    if (!e) throw new Error(`no engine for ${id}`);
    return e.docker;
  }

  async job(via: string, id: string): Promise<JobView> {
    const r = await this.cluster.get<JobView>(via, `/v1/jobs/${id}`);
    if (r.status !== 200) throw new Error(`GET /v1/jobs/${id} on ${via}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** The job once it is final, read through `via`. */
  async final(via: string, id: string, timeoutMs = 150_000): Promise<JobView> {
    return waitFor(`job ${id} to finish`, async () => {
      const j = await this.job(via, id);
      return FINAL.has(j.state) ? j : undefined;
    }, timeoutMs, 250);
  }

  /** GET /v1/jobs/:id/logs as plain text. */
  async logs(via: string, id: string): Promise<{ status: number; text: string }> {
    const res = await this.cluster.request(via, `/v1/jobs/${id}/logs`, {}, 15_000);
    return { status: res.status, text: await res.text() };
  }

  /**
   * Puts one job of each spec on `target`, deterministically through the scheduler's
   * own rule (the least loaded node first): each spec is submitted once per box, so
   * one copy lands on every box; the copies not on `target` are cancelled. Returns
   * the ids of the kept copies, in the order of `specs`.
   */
  async placeOn(target: string, specs: unknown[], via: string): Promise<string[]> {
    const kept: string[] = [];
    const others: string[] = [];
    for (const spec of specs) {
      const copies: string[] = [];
      for (let i = 0; i < IDS.length; i++) {
        const r = await this.cluster.post<{ id: string }>(via, '/v1/jobs', spec);
        if (r.status !== 202) throw new Error(`submit on ${via}: ${r.status} ${JSON.stringify(r.body)}`);
        copies.push(r.body.id);
      }
      const placed = await waitFor('every copy placed', async () => {
        const views = await Promise.all(copies.map((id) => this.job(via, id)));
        return views.every((v) => v.node !== null) ? views : undefined;
      }, 60_000, 100);
      const mine = placed.find((v) => v.node === target);
      if (!mine) throw new Error(`no copy landed on ${target}: ${placed.map((v) => `${v.id} on ${v.node}`).join(', ')}`);
      kept.push(mine.id);
      others.push(...copies.filter((id) => id !== mine.id));
    }
    for (const id of others) {
      const r = await this.cluster.request(via, `/v1/jobs/${id}`, { method: 'DELETE' });
      if (r.status !== 202) throw new Error(`cancel ${id}: ${r.status} ${await r.text()}`);
    }
    return kept;
  }

  /** Whether a container of the job runs on the box's engine (paused counts: a checkpoint in progress). */
  async runsOn(box: string, jobId: string): Promise<boolean> {
    return (await this.containersOf(box, jobId)).some((c) => c.State === 'running' || c.State === 'paused');
  }

  /** The containers of a job on one box's engine (all states), newest epoch last. */
  async containersOf(box: string, jobId: string): Promise<Docker.ContainerInfo[]> {
    const list = await this.engine(box).listContainers({ all: true, filters: { label: [`workrs.job=${jobId}`] } });
    return list.sort((a, b) => Number(a.Labels['workrs.epoch']) - Number(b.Labels['workrs.epoch']));
  }

  /**
   * The container events of `types` (start, die, destroy, …) of a job on one box's engine since
   * `sinceMs`, oldest first. Engines share the machine's clock, so times compare
   * across boxes.
   */
  async events(box: string, jobId: string, types: string[], sinceMs: number): Promise<ContainerEvent[]> {
    const stream = await this.engine(box).getEvents({
      since: Math.floor(sinceMs / 1000) - 1,
      until: Math.ceil(Date.now() / 1000) + 1,
      filters: { type: ['container'], event: types, label: [`workrs.job=${jobId}`] },
    });
    let text = '';
    for await (const chunk of stream) text += String(chunk);
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as ContainerEvent)
      .filter((e) => e.timeNano / 1e6 >= sinceMs);
  }

  /** The box is gone: its workrs killed -9, every container on its engine removed, its data folder deleted. */
  async destroy(box: string): Promise<void> {
    await this.cluster.kill(box);
    const docker = this.engine(box);
    for (const c of await docker.listContainers({ all: true })) await docker.getContainer(c.Id).remove({ force: true });
    rmSync(this.cluster.node(box).dataDir, { recursive: true, force: true });
  }

  /** The leader, as every live node agrees. */
  async leader(): Promise<string> {
    return this.cluster.leader(30_000);
  }

  /** The node's log lines (pino JSON), parsed; other lines are skipped. */
  logLines(box: string): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of readFileSync(this.cluster.node(box).logFile, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // A line cut by the kill.
      }
    }
    return out;
  }
}
