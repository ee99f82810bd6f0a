import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Raft } from '../../raft/raft.js';
import type { NodeId } from '../../raft/types.js';
import type { PeerFrame } from '../../src/node/frames.js';
import type { MemberOptions } from '../../src/node/member.js';
import { validateJobSpec } from '../../src/state/spec.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { Random } from '../sim/random.js';
import { Box, type BoxObserver } from './box.js';
import { Checker, InvariantViolation } from './checker.js';
import { SimNetwork } from './net.js';
import { drainMicrotasks, simulateRealTime } from './real-time.js';
import { BlobWorld } from './sim-blobs.js';
import { makeFsPromisesSynchronous } from './sim-fs.js';

/**
 * A scripted whole-node run (the simulator's members, network, checker and simulated
 * time) of the case the lease bound exists for: the leader is cut off, with a worker,
 * while it still believes it leads.
 *
 *   five voters, one job on each (one slot per box); the leader L1 and a follower W on
 *   one side of a partition, the three others on the other side;
 *   L1 goes on acknowledging W's lease renewals for as long as its quorum contact
 *   lasts, W goes on running its job while its lease is valid;
 *   the majority's links to L1 break, so it elects L2 at once (Raft's leader-unreachable
 *   hint: no waiting out L1's lease); L2 must not give W's job to another node before
 *   every lease L1 may have granted has ended (and W has frozen its job).
 *
 * The links from two of the majority's voters to L1 are slow (SLOW_LINK_MS), and
 * frames already on their way when the partition begins are still delivered: L1
 * receives answers to heartbeats it sent before the partition for SLOW_LINK_MS after
 * it. Crediting quorum contact at those answers' arrival (the `credit-answer-arrival`
 * variant) stretches L1's acknowledgements past the bound L2 waits out; crediting the
 * send time of the heartbeat answered keeps them inside it. The
 * `reassign-before-lease-bound` variant has L2 ignore the bound.
 *
 * Everything is decided by the seed (ties in timers, the members' randomness); the
 * checker asserts its invariants at every step, `two attempts at once` among them.
 */

export type Variant = 'safe' | 'reassign-before-lease-bound' | 'credit-answer-arrival';

export const OPTIONS: Omit<MemberOptions, 'workDir'> = {
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 2,
  compactEveryEntries: 200,
  leaseRenewMs: 500,
  leaseTimeoutMs: 2000,
  nodeTimeoutMs: 3000,
  voters: 5,
  jobRetentionSeconds: 7 * 86_400,
  blobGcIntervalMs: 10_000,
  blobGcMinAgeMs: 600_000,
  mtbfPriorSeconds: 86_400,
  mtbfPriorWeight: 1,
  restartPriorSeconds: 10,
};

/** The members' contact window and fence margin, as member.ts derives them from OPTIONS (3 probe periods, a probe per heartbeat round; one renewal). */
export const CONTACT_MS = 3 * OPTIONS.tickMs * OPTIONS.heartbeatTicks;
export const FENCE_MARGIN_MS = OPTIONS.leaseRenewMs;
const SLOW_LINK_MS = 3000;
/** Simulated time the run goes on once the jobs of the cut-off side have moved. */
const AFTER_MS = 10_000;

/** Times are the run's simulated ms (one clock for all boxes). */
export interface PartitionedLeaderRun {
  variant: Variant;
  seed: number;
  oldLeader: NodeId;
  worker: NodeId;
  newLeader: NodeId | null;
  /** The checker's first violation, if any. */
  violation: { invariant: string; detail: string; atMs: number } | null;
  partitionAtMs: number;
  /** The new leader took office (every lease the old one granted ends by here + CONTACT_MS + leaseTimeoutMs). */
  electedAtMs: number | null;
  /** Lease acknowledgements L1 sent W after the partition began, and when the last one went out. */
  acksAfterPartition: number;
  lastAckAtMs: number | null;
  /** W froze (or stopped) its job: its lease had ended. */
  workerFencedAtMs: number | null;
  /** nodeLost of W committed; W's job assigned again; the new attempt began executing. */
  workerLostAtMs: number | null;
  reassignedAtMs: number | null;
  resumedAtMs: number | null;
  resumedOn: NodeId | null;
  trace: string[];
}

export async function runPartitionedLeader(opts: { seed: number; variant: Variant }): Promise<PartitionedLeaderRun> {
  makeFsPromisesSynchronous();
  const rng = new Random(opts.seed);
  const clock = new ManualClock();
  const realTime = simulateRealTime(clock, () => rng.next());
  const net = new SimNetwork(clock, rng.fork());
  const blobs = new BlobWorld();
  const trace: string[] = [];
  const note = (line: string): void => void trace.push(`${clock.monotonic()} ${line}`);
  const boxes = new Map<NodeId, Box>();
  const checker = new Checker({
    fenceBoundMs: OPTIONS.leaseTimeoutMs + OPTIONS.leaseRenewMs + 1000,
    blobs,
    knownCheckpoints: (node, jobId) => {
      const state = boxes.get(node)?.member?.state;
      return state ? new Set((state.checkpoints.get(jobId) ?? []).map((c) => `${c.epoch}:${c.seq}`)) : null;
    },
  });
  let violation: PartitionedLeaderRun['violation'] = null;
  const guard = (fn: () => void): void => {
    if (violation !== null) return;
    try {
      fn();
    } catch (err) {
      if (!(err instanceof InvariantViolation)) throw err;
      violation = { invariant: err.invariant, detail: err.detail, atMs: clock.monotonic() };
      note(`VIOLATION ${err.invariant}: ${err.detail}`);
    }
  };
  const run: PartitionedLeaderRun = {
    variant: opts.variant,
    seed: opts.seed,
    oldLeader: '',
    worker: '',
    newLeader: null,
    violation: null,
    partitionAtMs: 0,
    electedAtMs: null,
    acksAfterPartition: 0,
    lastAckAtMs: null,
    workerFencedAtMs: null,
    workerLostAtMs: null,
    reassignedAtMs: null,
    resumedAtMs: null,
    resumedOn: null,
    trace,
  };
  /** The job placed on W, once known. */
  let workerJob: string | null = null;

  const observer: BoxObserver = {
    applied: (node, index, data, env, result) =>
      guard(() => {
        const before = checker.stats.committed;
        checker.onApplied(node, index, data, env, result, clock.monotonic());
        if (checker.stats.committed === before || env === null || !result.ok) return;
        const cmd = env.cmd;
        if (cmd.type === 'nodeLost' || cmd.type === 'assignJob') note(`commit ${index} ${cmd.type} ${cmd.type === 'nodeLost' ? cmd.node : `${cmd.jobId}@${cmd.epoch} -> ${cmd.node}`}`);
        if (cmd.type === 'nodeLost' && cmd.node === run.worker) run.workerLostAtMs ??= clock.monotonic();
        if (cmd.type === 'assignJob' && cmd.jobId === workerJob && cmd.epoch > 1) run.reassignedAtMs ??= clock.monotonic();
      }),
    runEvent: (node, e) =>
      guard(() => {
        note(`${node} run ${e.type} ${e.jobId}@${e.epoch}`);
        checker.onRunEvent(node, e, clock.monotonic());
        if (e.jobId !== workerJob) return;
        if (node === run.worker && e.epoch === 1 && (e.type === 'freeze' || e.type === 'stop')) run.workerFencedAtMs ??= clock.monotonic();
        if (e.epoch > 1 && (e.type === 'start' || e.type === 'restore')) {
          run.resumedAtMs ??= clock.monotonic();
          run.resumedOn ??= node;
        }
      }),
    down: (node) => guard(() => checker.onBoxDown(node)),
    fatal: (node, err) => {
      throw new Error(`${node}: the Raft driver stopped: ${err.message}`);
    },
  };
  net.onFrame = (from, to, frame) => {
    const f = frame as PeerFrame;
    if (f.k !== 'leaseAck' || from !== run.oldLeader || to !== run.worker || run.partitionAtMs === 0) return;
    run.acksAfterPartition += 1;
    run.lastAckAtMs = clock.monotonic();
  };

  const workRoot = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `workrs-partitioned-leader-${process.pid}-${opts.seed}-${opts.variant}`);
  rmSync(workRoot, { recursive: true, force: true });
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const options: MemberOptions = {
    ...OPTIONS,
    workDir: workRoot,
    ...(opts.variant === 'reassign-before-lease-bound' ? { reassignBeforeLeaseBound: true } : {}),
    ...(opts.variant === 'credit-answer-arrival' ? { creditAnswerArrival: true } : {}),
  };
  const fabric = { diskOf: (id: NodeId) => (boxes.get(id)?.up ? (boxes.get(id)?.disk ?? null) : null), cut: (a: NodeId, b: NodeId) => net.blocked(a, b) || net.blocked(b, a) };
  const shared = { clock, net, blobs, fabric, transferTiming: { minMs: 5, maxMs: 20, unreachableMs: 500 }, observer, workRoot, options, syncDelayMs: undefined, note };
  const bootstrap = Raft.bootstrap(ids);
  ids.forEach((id, i) => {
    const info = { id, api: `10.0.0.${i + 1}:7000`, peer: `10.0.0.${i + 1}:7001`, slots: 1, memoryMB: 4096, versions: { docker: 'fake', criu: 'none', kernel: 'sim' } };
    const box = new Box(id, info, bootstrap, shared, rng.fork(), 0);
    boxes.set(id, box);
    net.attach(id, box);
  });

  const leaderOf = (among: readonly NodeId[]): NodeId | null => {
    let best: NodeId | null = null;
    let term = -1;
    for (const id of among) {
      const st = boxes.get(id)?.member?.raft.status();
      if (st?.role === 'leader' && st.term > term) [best, term] = [id, st.term];
    }
    return best;
  };
  const step = async (): Promise<void> => {
    const next = clock.nextDeadline();
    if (next === null) throw new Error('nothing left to run');
    await clock.advance(next - clock.monotonic());
    await drainMicrotasks();
    guard(() => checker.checkStep(clock.monotonic()));
  };
  const until = async <T>(what: string, probe: () => T | null | undefined, maxMs: number): Promise<T> => {
    const deadline = clock.monotonic() + maxMs;
    for (;;) {
      const v = probe();
      if (v !== null && v !== undefined) return v;
      if (clock.monotonic() > deadline) throw new Error(`seed ${opts.seed} ${opts.variant}: no ${what} within ${maxMs} ms of simulated time`);
      await step();
    }
  };

  try {
    for (const b of boxes.values()) b.boot();
    const l1 = await until('leader', () => leaderOf(ids), 20_000);
    run.oldLeader = l1;
    const member = boxes.get(l1)?.member;
    if (!member) throw new Error('the leader has no member');
    await until('every node registered', () => (ids.every((id) => member.state.nodes.get(id)?.state === 'alive') ? true : null), 20_000);
    // One long job per box (one slot each), so that the cut-off side runs two of them.
    const spec = validateJobSpec({ image: 'sim', command: ['work'], env: { FAKE_SECONDS: '600' }, checkpoint: { mode: 'interval', intervalSeconds: 1 } });
    if (!spec.ok) throw new Error('invalid job spec');
    for (let i = 1; i <= ids.length; i++) void member.proposer.send({ type: 'submitJob', job: { id: `job-${i}`, spec: spec.spec, createdAt: clock.now() }, maxPending: 100 });
    const placed = await until('every job running', () => {
      const jobs = [...member.state.jobs.values()];
      return jobs.length === ids.length && jobs.every((j) => j.state === 'running' && j.node !== null && checker.stats.starts >= ids.length) ? jobs : null;
    }, 30_000);
    const worker = ids.find((id) => id !== l1) as NodeId;
    run.worker = worker;
    workerJob = placed.find((j) => j.node === worker)?.id ?? null;
    if (workerJob === null) throw new Error(`no job on ${worker}`);
    // The majority's jobs are cancelled: their slots take the cut-off side's jobs.
    const majority = ids.filter((id) => id !== l1 && id !== worker);
    for (const j of placed) if (j.node !== null && majority.includes(j.node)) void member.proposer.send({ type: 'cancelJob', jobId: j.id });
    // Slow answers from two of the majority's voters; a few seconds for them to settle in.
    for (const id of majority.slice(1)) net.slowLinks.set(`${id}>${l1}`, SLOW_LINK_MS);
    const settled = clock.monotonic() + 2 * SLOW_LINK_MS;
    await until('slow links in steady state', () => (clock.monotonic() >= settled ? true : null), 3 * SLOW_LINK_MS);
    if (leaderOf(ids) !== l1) throw new Error('the leader changed before the partition');

    net.partition([l1, worker], 'symmetric', 'delivered');
    run.partitionAtMs = clock.monotonic();
    note(`partition: ${l1} (leader) and ${worker} cut off from ${majority.join(',')}`);
    // Their links to L1 broke (as when a connection is reset): the majority elects at
    // once, without waiting out L1's lease, while L1 lives on and knows nothing of it.
    for (const id of majority) boxes.get(id)?.member?.peerUnreachable(l1);
    const l2 = await until('new leader on the majority side', () => leaderOf(majority), 20_000);
    run.newLeader = l2;
    run.electedAtMs = clock.monotonic();
    note(`${l2} leads term ${boxes.get(l2)?.member?.raft.status().term}; ${l1} still leads: ${boxes.get(l1)?.member?.raft.status().role === 'leader'}`);
    await until("the worker's job running elsewhere", () => run.resumedAtMs ?? (violation ? -1 : null), 30_000);
    const end = clock.monotonic() + AFTER_MS;
    await until('the end', () => (clock.monotonic() >= end || violation ? true : null), AFTER_MS + 1000);
  } finally {
    for (const b of boxes.values()) b.crash();
    realTime.end();
    rmSync(workRoot, { recursive: true, force: true });
  }
  run.violation = violation;
  return run;
}

/** What must hold of a run (empty: all of it); each failure says what broke. */
export function judge(r: PartitionedLeaderRun): string[] {
  const failures: string[] = [];
  const bound = r.electedAtMs === null ? null : r.electedAtMs + CONTACT_MS + OPTIONS.leaseTimeoutMs + FENCE_MARGIN_MS;
  if (r.violation) failures.push(`invariant ${r.violation.invariant} at ${r.violation.atMs} ms: ${r.violation.detail}`);
  if (r.acksAfterPartition === 0) failures.push('the old leader acknowledged no renewal after the partition: the run does not exercise the case');
  if (r.electedAtMs === null || r.reassignedAtMs === null || r.resumedAtMs === null || r.workerFencedAtMs === null) {
    failures.push(`incomplete run: elected ${r.electedAtMs}, reassigned ${r.reassignedAtMs}, resumed ${r.resumedAtMs}, worker fenced ${r.workerFencedAtMs}`);
    return failures;
  }
  if (r.lastAckAtMs !== null && r.lastAckAtMs >= r.electedAtMs + CONTACT_MS) {
    failures.push(`the old leader acknowledged a renewal at ${r.lastAckAtMs} ms, not before the new leader's election (${r.electedAtMs}) + the contact window (${CONTACT_MS})`);
  }
  if (bound !== null && r.reassignedAtMs < bound) failures.push(`the job was reassigned at ${r.reassignedAtMs} ms, before the bound ${bound} ms (election + contact window + lease + fence margin)`);
  if (r.workerFencedAtMs > r.resumedAtMs) failures.push(`the new attempt began at ${r.resumedAtMs} ms, before the worker froze the old one (${r.workerFencedAtMs} ms)`);
  return failures;
}
