// What every adversarial test checks after its attack, beyond the attack's own check:
// every node is alive, the cluster has a leader, and it accepts and finishes a job.
import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import { waitFor } from '../helpers/wait.js';
import type { LocalCluster } from '../process/harness.js';

/** Resident memory of a process, in MiB (VmRSS from /proc). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** Asserts that the cluster survived: every started node runs and answers, a leader is agreed, and a job succeeds. */
export async function assertClusterHealthy(t: Test, c: LocalCluster): Promise<void> {
  for (const n of c.nodes.values()) {
    t.ok(n.proc !== null && n.proc.exitCode === null, `${n.id} is still running`);
    const health = await fetch(`${c.url(n.id)}/healthz`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status, () => 0);
    t.equal(health, 200, `${n.id} answers /healthz`);
  }
  const leader = await c.leader(30_000);
  t.ok(leader, `the cluster has a leader (${leader})`);
  const submitted = await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.2' } });
  t.equal(submitted.status, 202, 'the cluster accepts a job');
  const state = await waitFor('the job to finish', async () => {
    const r = await c.get<{ state: string }>(leader, `/v1/jobs/${submitted.body.id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(r.body.state) ? r.body.state : undefined;
  }, 30_000, 100);
  t.equal(state, 'succeeded', 'and finishes it');
}
