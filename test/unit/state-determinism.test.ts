// Determinism: machines fed the same log end byte-for-byte identical, whether they
// applied it from the start or restored a snapshot half way. The log is a seeded
// random workload driven by the scheduler, with crashes, revivals, stale and
// duplicated reports, retries and junk entries; the seed is in every message.
import t, { type Test } from 'tap';
import type { Command, Envelope } from '../../src/state/commands.js';
import { ClusterState } from '../../src/state/machine.js';
import type { ApplyResult } from '../../src/state/result.js';
import { plan } from '../../src/scheduler/plan.js';
import { planRetention } from '../../src/scheduler/retention.js';
import { checkpoint, hex, join, Log, prng, submit, type Entry } from './state-fixtures.js';

interface Workload {
  log: Log;
  results: ApplyResult[];
  /** How often each interesting path was taken, to show the workload reaches them. */
  seen: Record<string, number>;
}

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];
const HEARTBEAT_MS = 500;
const TIMEOUT_MS = 3000;

function workload(seed: number, steps: number): Workload {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const log = new Log();
  const results: ApplyResult[] = [];
  const seen: Record<string, number> = {};
  const count = (what: string) => (seen[what] = (seen[what] ?? 0) + 1);
  const sent: Envelope[] = [];
  const apply = (cmd: Command, clientId: string) => {
    const env: Envelope = { v: 1, clientId, requestId: log.state.lastRequestId(clientId) + 1, at: log.at, cmd };
    sent.push(env);
    const r = log.applyEnvelope(env);
    results.push(r);
    if (!r.ok) count(r.code);
    return r;
  };
  const up = new Set<string>();
  const lastSeen = new Map<string, number>();
  NODES.forEach((id, i) => {
    apply(join(id, 1 + (i % 3), 2048), `node-${id}`);
    up.add(id);
  });
  let jobs = 0;
  for (let step = 0; step < steps; step++) {
    log.at += Math.floor(100 + rnd() * 900);
    for (const id of up) if (rnd() < 0.9) lastSeen.set(id, log.at - Math.floor(rnd() * HEARTBEAT_MS));
    const roll = rnd();
    if (roll < 0.2) {
      jobs += 1;
      apply(submit(`job-${jobs}`, rnd() < 0.3 ? { memoryMB: 512 + Math.floor(rnd() * 1024) } : {}, log.at), 'gw-n1');
    } else if (roll < 0.55) {
      // A worker report: mostly from the current attempt, sometimes from an old one.
      const running = log.state.openJobs().filter((j) => j.state === 'running');
      const any = [...log.state.jobs.values()];
      if (any.length === 0) continue;
      const job = running.length > 0 && rnd() < 0.8 ? pick(running) : pick(any);
      const attempts = log.state.attempts.get(job.id) ?? [];
      if (attempts.length === 0) continue;
      const a = rnd() < 0.8 ? attempts[attempts.length - 1]! : pick(attempts);
      const seq = (log.state.checkpoints.get(job.id) ?? []).filter((c) => c.epoch === a.epoch).length + 1;
      const kind = rnd();
      const holders = [a.node, pick(NODES.filter((n) => n !== a.node))];
      if (kind < 0.3) apply({ type: 'jobStarted', jobId: job.id, epoch: a.epoch, node: a.node }, `worker-${a.node}`);
      else if (kind < 0.8) apply(checkpoint(job.id, a.epoch, a.node, seq, holders), `worker-${a.node}`);
      else apply({ type: 'jobExited', jobId: job.id, epoch: a.epoch, node: a.node, exitCode: rnd() < 0.8 ? 0 : 1 }, `worker-${a.node}`);
    } else if (roll < 0.6 && log.state.jobs.size > 0) {
      apply({ type: 'cancelJob', jobId: pick([...log.state.jobs.keys()]) }, 'gw-n2');
    } else if (roll < 0.68 && up.size > 2) {
      const id = pick([...up]);
      up.delete(id); // crashes: stops heartbeating
      count('crash');
    } else if (roll < 0.74) {
      const down = NODES.filter((n) => !up.has(n));
      if (down.length > 0) {
        const id = pick(down);
        up.add(id);
        lastSeen.set(id, log.at);
        count('revive');
      }
    } else if (roll < 0.8 && sent.length > 0) {
      // A retried proposal committed twice.
      const again = pick(sent);
      const r = log.applyEnvelope(again);
      results.push(r);
      count(r.ok || again.requestId === log.state.lastRequestId(again.clientId) ? 'retry-same-result' : 'retry-stale');
    } else if (roll < 0.82) {
      log.index += 1;
      const data = new Uint8Array([0x92, Math.floor(rnd() * 256)]);
      log.entries.push({ index: log.index, data });
      const r = log.state.applyBytes(log.index, data);
      results.push(r);
      count(r.ok ? 'junk-accepted' : r.code);
    }
    // The leader's turn: whatever it decides applies right away, so it must be accepted.
    const input = { now: log.at, lastSeenMs: lastSeen, nodeTimeoutMs: TIMEOUT_MS, suspectAfterMs: TIMEOUT_MS / 2 };
    for (const cmd of plan(log.state, input)) {
      const r = apply(cmd, 'sched-n1-t1');
      if (!r.ok) throw new Error(`seed ${seed} step ${step}: the scheduler's ${cmd.type} was rejected: ${r.code} ${r.message}`);
      count(cmd.type === 'assignJob' && cmd.fromCheckpoint !== null ? 'resume-from-checkpoint' : cmd.type);
    }
    if (plan(log.state, input).length > 0) throw new Error(`seed ${seed} step ${step}: plan is not idempotent`);
    // Retention, now and then: what it proposes applies and forgets something each time.
    if (step % 10 === 9) {
      for (const cmd of planRetention(log.state, { now: log.at, jobRetentionMs: 30_000, blobMinAgeMs: 5000 })) {
        const r = apply(cmd, 'sched-n1-t1');
        if (!r.ok || (r.value as { forgotten: string[] }).forgotten.length === 0) throw new Error(`seed ${seed} step ${step}: the leader's ${cmd.type} forgot nothing`);
        count(cmd.type);
      }
    }
  }
  return { log, results, seen };
}

function replay(entries: readonly Entry[], from?: ClusterState): { state: ClusterState; results: ApplyResult[] } {
  const state = from ?? new ClusterState();
  const results = entries.filter((e) => e.index > state.appliedIndex).map((e) => state.applyBytes(e.index, e.data));
  return { state, results };
}

function sameEnd(t: Test, seed: number, a: ClusterState, b: ClusterState, what: string): void {
  t.equal(hex(b.snapshot()), hex(a.snapshot()), `seed ${seed}: ${what} ends byte for byte identical`);
}

for (const seed of [1, 2, 3, 42, 2024]) {
  t.test(`determinism: two machines fed the same log end identical, and give the same results (seed ${seed})`, async (t) => {
    const w = workload(seed, 400);
    const b = replay(w.log.entries);
    sameEnd(t, seed, w.log.state, b.state, 'a second machine');
    t.same(b.results, w.results, `seed ${seed}: every entry got the same result on both`);
  });

  t.test(`determinism: a machine restored from a mid-log snapshot ends identical to one that applied all of it (seed ${seed})`, async (t) => {
    const w = workload(seed, 400);
    const half = Math.floor(w.log.entries.length / 2);
    const first = replay(w.log.entries.slice(0, half));
    const restored = ClusterState.restore(first.state.snapshot());
    sameEnd(t, seed, first.state, restored, 'the restored copy');
    const rest = replay(w.log.entries, restored);
    sameEnd(t, seed, w.log.state, rest.state, 'the restored machine after the rest of the log');
    t.same(rest.results, w.results.slice(w.results.length - rest.results.length), `seed ${seed}: the restored machine gives the same results`);
  });
}

t.test('the seeded workload reaches the paths it is meant to test', async (t) => {
  const total: Record<string, number> = {};
  for (const seed of [1, 2, 3, 42, 2024]) for (const [k, v] of Object.entries(workload(seed, 400).seen)) total[k] = (total[k] ?? 0) + v;
  for (const path of ['nodeLost', 'nodeSuspect', 'nodeAlive', 'resume-from-checkpoint', 'assignJob', 'STALE_EPOCH', 'JOB_FINISHED', 'crash', 'revive', 'retry-same-result', 'INVALID_COMMAND']) {
    t.ok((total[path] ?? 0) > 0, `${path} happened (${total[path] ?? 0} times)`);
  }
  t.comment(JSON.stringify(total));
});

t.test('the same seed gives the same log (the workload itself is deterministic)', async (t) => {
  const a = workload(7, 200).log.entries.map((e) => hex(e.data));
  const b = workload(7, 200).log.entries.map((e) => hex(e.data));
  t.same(a, b);
  t.ok(a.length > 200);
});

