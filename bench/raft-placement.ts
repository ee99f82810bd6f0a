// `make bench-raft` (bench/raft.ts), Workrs only: how long a burst of N submissions takes
// to be placed. N jobs (fake runtime, FAKE_SECONDS 3600, so they stay running) from 16
// closed-loop clients to the leader of a fresh 3-node cluster with --slots N per node;
// then, polling the leader's own applied state (?stale=1), the time from the last
// acknowledgement until no job is pending (every one assigned: state running) and until
// every one has started (startedAt set by its node's report).
import { Agent } from 'node:http';
import { post } from './raft-load.js';
import { COMMAND_LIMITS } from '../src/state/command-types.js';
import { WorkrsCluster } from './raft-systems.js';

export interface PlacementRun {
  jobs: number;
  /** First submission to last acknowledgement, ms. */
  ackMs: number;
  /** Submissions answered other than 202 (each retried). */
  errors: number;
  /** Last acknowledgement to none pending / all started, ms; null: not within the timeout. */
  assignedMs: number | null;
  startedMs: number | null;
}

interface JobSummary {
  state: string;
  startedAt: number | null;
}

export async function placement(jobs: number, timeoutMs: number, clients = 16): Promise<PlacementRun> {
  // Slots for every job on the 3 nodes together (a node registers at most COMMAND_LIMITS.maxSlots).
  const sys = await WorkrsCluster.start(['--slots', String(Math.min(jobs, COMMAND_LIMITS.maxSlots))], 3600);
  try {
    const c = sys.cluster;
    const leader = await sys.leader();
    const write = sys.write(leader);
    const url = new URL(write.url);
    const agent = new Agent({ keepAlive: true, maxSockets: clients });
    let next = 0;
    let errors = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async (_, client) => {
        while (next < jobs) {
          const n = next++;
          for (;;) {
            if ((await post(agent, url, write.body(client, n), 30_000)) === write.okStatus) break;
            errors += 1;
            if (performance.now() - t0 > timeoutMs) throw new Error(`placement: submissions still failing after ${timeoutMs} ms`);
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }),
    );
    const lastAck = performance.now();
    agent.destroy();
    const deadline = lastAck + timeoutMs;

    let assignedMs: number | null = null;
    while (performance.now() < deadline) {
      const r = await c.get<{ jobs: JobSummary[] }>(leader, '/v1/jobs?state=pending&limit=1&stale=1').catch(() => null);
      if (r?.status === 200 && r.body.jobs.length === 0) {
        assignedMs = performance.now() - lastAck;
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    let startedMs: number | null = null;
    while (assignedMs !== null && performance.now() < deadline) {
      const all = await c.listAllJobs<JobSummary>(leader, 'stale=1').catch(() => null);
      if (all !== null && all.length >= jobs && all.every((j) => j.state === 'running' && j.startedAt !== null)) {
        startedMs = performance.now() - lastAck;
        break;
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    return { jobs, ackMs: lastAck - t0, errors, assignedMs, startedMs };
  } finally {
    await sys.destroy();
  }
}
