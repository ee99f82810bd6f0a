import { existsSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Raft } from '../../raft/raft.js';
import type { NodeId } from '../../raft/types.js';
import type { MemberOptions } from '../../src/node/member.js';
import type { Command, JobSpec } from '../../src/state/commands.js';
import { validateJobSpec } from '../../src/state/spec.js';
import type { ApplyResult } from '../../src/state/result.js';
import { ManualClock } from '../../src/util/manual-clock.js';
import { Random } from '../sim/random.js';
import { Trace } from '../sim/trace.js';
import { Box, type BoxObserver } from './box.js';
import { Checker, InvariantViolation, type CheckerStats } from './checker.js';
import { CALM, type LinkFaults, SimNetwork } from './net.js';
import { drainMicrotasks, simulateRealTime } from './real-time.js';
import { BlobWorld, type TransferTiming } from './sim-blobs.js';
import { makeFsPromisesSynchronous } from './sim-fs.js';
import { BUILD } from '../../src/version.js';

/**
 * One run of a seed: 3 to 5 complete members (ClusterMember: the production Raft
 * driver, state machine, leases, leader duties, worker, checkpointer and blob service)
 * on simulated time and a simulated network, with clients submitting and cancelling
 * jobs, while boxes crash (losing unsynced Raft writes and their running containers)
 * and restart, partitions come and go, frames are dropped and delayed, and new nodes
 * join.
 *
 *   chaos phase  `chaosMs` of simulated time with faults on; the checker's invariants
 *                are asserted at every step (checker.ts).
 *   quiet phase  faults off, partitions healed, every box restarted, no new jobs:
 *                every acknowledged job must reach a final state within `quietMs`.
 *
 * A step is one instant of simulated time at which timers fire (ticks, frame
 * deliveries, leases, worker pokes, client and fault actions), followed by every
 * promise continuation that follows from them.
 */

export const MUTANTS = ['none', 'ignore-lost-lease', 'reassign-before-lease-bound', 'accept-exit-without-epoch-check'] as const;
export type Mutant = (typeof MUTANTS)[number];

export function isMutant(name: string): name is Mutant {
  return (MUTANTS as readonly string[]).includes(name);
}

/** The violations each mutant's broken rule leads to; anything else it hits is not counted as catching it. */
export function catchesMutant(mutant: Mutant, invariant: string): boolean {
  switch (mutant) {
    case 'none':
      return false;
    case 'ignore-lost-lease':
      return invariant === 'two attempts at once' || invariant === 'fenced attempt still executing';
    case 'reassign-before-lease-bound':
      return invariant === 'two attempts at once';
    case 'accept-exit-without-epoch-check':
      return invariant === 'epoch fence' || invariant === 'one accepted result' || invariant === 'one final state';
  }
}

export interface RunOptions {
  seed: number;
  mutant: Mutant;
  keepTrace: boolean;
  /** Simulated milliseconds of the chaos phase. */
  chaosMs: number;
  /**
   * blobGcMinAgeMs of every member; the production default (10 min) when absent. A
   * short one (1000, or 0) exercises what the gc keeps besides the age rule (FINDINGS.md 5).
   */
  gcMinAgeMs?: number;
}

export interface RunStats extends CheckerStats {
  steps: number;
  simulatedMs: number;
  crashes: number;
  partitions: number;
  joins: number;
  /** Times an operator drained a box (and undrained it later). */
  drains: number;
  leaderChanges: number;
  submits: number;
  cancels: number;
  framesSent: number;
  framesDelivered: number;
  snapshotsInstalled: number;
  lostWrites: number;
}

export interface RunResult {
  seed: number;
  mutant: Mutant;
  violation: { invariant: string; detail: string; atMs: number; phase: string } | null;
  traceHash: string;
  traceTail: string[];
  fullTrace: string[] | null;
  params: string;
  stats: RunStats;
  /** Call sites in the code under test that used the process's clock or timers. */
  realTime: string[];
  wallMs: number;
}

/** What a seed decides before anything runs. */
interface Params {
  voters: 3 | 5;
  joiners: number;
  options: Omit<MemberOptions, 'workDir'>;
  syncDelayMs: number | undefined;
  link: LinkFaults;
  /** Mean simulated time between two faults. */
  faultEveryMs: number;
  maxDownMs: number;
  clients: number;
  submitEveryMs: number;
  cancelRate: number;
  jobSeconds: [number, number];
  checkpointShare: number;
  failShare: number;
  transfer: TransferTiming;
  wallOffsets: number[];
}

function drawParams(rng: Random, mutant: Mutant, gcMinAgeMs: number | undefined): Params {
  const voters = rng.chance(0.5) ? 3 : 5;
  const joiners = voters === 3 ? rng.int(0, 2) : 0;
  const tickMs = rng.pick([50, 100]);
  const leaseRenewMs = rng.pick([250, 500]);
  const params: Params = {
    voters,
    joiners,
    options: {
      tickMs,
      electionTicks: 10,
      heartbeatTicks: rng.int(1, 2),
      compactEveryEntries: rng.pick([20, 50, 200]),
      leaseRenewMs,
      leaseTimeoutMs: 4 * leaseRenewMs,
      nodeTimeoutMs: 6 * leaseRenewMs,
      voters,
      jobRetentionSeconds: 7 * 86_400,
      blobGcIntervalMs: rng.pick([2000, 10_000]),
      blobGcMinAgeMs: gcMinAgeMs ?? 600_000,
      mtbfPriorSeconds: 86_400,
      mtbfPriorWeight: 1,
      restartPriorSeconds: 10,
      ...(mutant === 'ignore-lost-lease' ? { ignoreLostLease: true } : {}),
      ...(mutant === 'reassign-before-lease-bound' ? { reassignBeforeLeaseBound: true } : {}),
      ...(mutant === 'accept-exit-without-epoch-check' ? { acceptExitWithoutEpochCheck: true } : {}),
    },
    syncDelayMs: rng.pick([undefined, 1, 5]),
    link: {
      dropRate: rng.pick([0, 0.01, 0.03]),
      minDelayMs: 1,
      maxDelayMs: rng.pick([5, 20, 50]),
      longDelayRate: rng.pick([0, 0.01]),
      longDelayMs: rng.int(100, 400),
      inOrder: rng.chance(0.7),
    },
    faultEveryMs: rng.pick([1500, 3000, 6000]),
    maxDownMs: rng.pick([2000, 6000, 12_000]),
    clients: rng.int(2, 4),
    submitEveryMs: rng.pick([500, 1500, 3000]),
    cancelRate: rng.pick([0, 0.1, 0.25]),
    jobSeconds: rng.pick([[1, 5], [2, 10], [5, 20]] as Array<[number, number]>),
    checkpointShare: rng.pick([0.5, 0.8]),
    failShare: rng.pick([0, 0.1]),
    transfer: { minMs: 2, maxMs: rng.pick([20, 200]), unreachableMs: rng.pick([500, 4000]) },
    wallOffsets: Array.from({ length: voters + joiners }, () => rng.int(-5000, 5000)),
  };
  // Drawn last, so the other parameters of a seed stay what they were: 5 bootstrap
  // voters with a target of 3, whose leader demotes the 2 above it while faults go on.
  if (voters === 5 && rng.chance(0.5)) params.options = { ...params.options, voters: 3 };
  return params;
}

function describeParams(p: Params, mutant: Mutant): string {
  const o = p.options;
  return (
    `voters=${p.voters} target=${o.voters} joiners=${p.joiners} tick=${o.tickMs} heartbeat=${o.heartbeatTicks} renew=${o.leaseRenewMs} lease=${o.leaseTimeoutMs} nodeTimeout=${o.nodeTimeoutMs} ` +
    `compact=${o.compactEveryEntries} gc=${o.blobGcIntervalMs}/${o.blobGcMinAgeMs} sync=${p.syncDelayMs ?? 0} drop=${p.link.dropRate} delay=${p.link.minDelayMs}-${p.link.maxDelayMs} ` +
    `long=${p.link.longDelayRate}/${p.link.longDelayMs} inOrder=${p.link.inOrder} faultEvery=${p.faultEveryMs} maxDown=${p.maxDownMs} clients=${p.clients} ` +
    `submitEvery=${p.submitEveryMs} cancel=${p.cancelRate} jobs=${p.jobSeconds.join('-')}s checkpointed=${p.checkpointShare} fail=${p.failShare} ` +
    `transfer=${p.transfer.minMs}-${p.transfer.maxMs}/${p.transfer.unreachableMs} mutant=${mutant}`
  );
}

/** Stops the run at the first violation, wherever it was detected. */
class Stop extends Error {}

/** The quiet phase's bound: enough for every client's open jobs to run one after another on one slot, twice over. */
const QUIET_MS = 150_000;
const MAX_OPEN_PER_CLIENT = 2;

export async function runSeed(opts: RunOptions): Promise<RunResult> {
  const started = performance.now();
  makeFsPromisesSynchronous();
  const root = new Random(opts.seed);
  const params = drawParams(root.fork(), opts.mutant, opts.gcMinAgeMs);
  const rngNet = root.fork();
  const rngFaults = root.fork();
  const rngClients = root.fork();
  const rngBoxes = root.fork();
  const clock = new ManualClock();
  const rngLeaks = root.fork();
  const realTime = simulateRealTime(clock, () => rngLeaks.next());
  // Forked after the others, so that the streams above are what they were before drains.
  const rngDrains = root.fork();
  const trace = new Trace(opts.keepTrace);
  const net = new SimNetwork(clock, rngNet);
  net.faults = params.link;
  if (process.env.SIM_CLUSTER_FRAMES === '1') net.onSend = (line) => note(line);
  const blobs = new BlobWorld();
  const fenceBoundMs = params.options.leaseTimeoutMs + params.options.leaseRenewMs + 1000;
  const boxes = new Map<NodeId, Box>();
  const knownCheckpoints = (node: string, jobId: string): Set<string> | null => {
    const state = boxes.get(node)?.member?.state;
    if (!state) return null;
    return new Set((state.checkpoints.get(jobId) ?? []).map((c) => `${c.epoch}:${c.seq}`));
  };
  const checker = new Checker({ fenceBoundMs, blobs, knownCheckpoints });
  const workRoot = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `workrs-sim-cluster-${process.pid}`, `seed-${opts.seed}`);
  rmSync(workRoot, { recursive: true, force: true });
  let phase = 'chaos';
  let violation: RunResult['violation'] = null;
  const stats = { steps: 0, simulatedMs: 0, crashes: 0, partitions: 0, joins: 0, drains: 0, leaderChanges: 0, submits: 0, cancels: 0, framesSent: 0, framesDelivered: 0, snapshotsInstalled: 0, lostWrites: 0 };

  const note = (line: string): void => {
    trace.step = clock.monotonic();
    trace.add(line);
  };
  const fail = (invariant: string, detail: string): void => {
    if (violation === null) violation = { invariant, detail, atMs: clock.monotonic(), phase };
  };
  const guard = (fn: () => void): void => {
    if (violation !== null) return;
    try {
      fn();
    } catch (err) {
      if (err instanceof InvariantViolation) fail(err.invariant, err.detail);
      else fail('harness error', err instanceof Error ? (err.stack ?? err.message) : String(err));
    }
  };

  const observer: BoxObserver = {
    applied: (node, index, data, env, result) =>
      guard(() => {
        const first = checker.stats.committed;
        checker.onApplied(node, index, data, env, result, clock.monotonic());
        if (checker.stats.committed !== first && env !== null) note(`commit ${index} ${describeCommand(env.cmd)} -> ${result.ok ? 'ok' : result.code} (first applied on ${node})`);
      }),
    runEvent: (node, e) =>
      guard(() => {
        note(`${node} run ${e.type} ${e.jobId}@${e.epoch} progress=${e.progressMs}${e.checkpoint ? ` ${e.checkpoint}` : ''}${e.fromEpoch !== undefined ? ` from-epoch=${e.fromEpoch}` : ''}${e.exitCode !== undefined ? ` code=${e.exitCode}` : ''}`);
        checker.onRunEvent(node, e, clock.monotonic());
      }),
    down: (node) => guard(() => checker.onBoxDown(node)),
    fatal: (node, err) => fail('node stopped', `${node}: the Raft driver stopped: ${err.stack ?? err.message}`),
  };

  // ---------------------------------------------------------------- the boxes
  const ids = Array.from({ length: params.voters + params.joiners }, (_, i) => `n${i + 1}`);
  const voterIds = ids.slice(0, params.voters);
  const fabric = {
    diskOf: (id: NodeId) => {
      const b = boxes.get(id);
      return b?.up ? b.disk : null;
    },
    cut: (a: NodeId, b: NodeId) => net.blocked(a, b) || net.blocked(b, a),
  };
  const shared = { clock, net, blobs, fabric, transferTiming: params.transfer, observer, workRoot, options: params.options as MemberOptions, syncDelayMs: params.syncDelayMs, note };
  const bootstrap = Raft.bootstrap(voterIds);
  ids.forEach((id, i) => {
    const info = { id, api: `10.0.0.${i + 1}:7000`, peer: `10.0.0.${i + 1}:7001`, slots: rngBoxes.int(1, 3), memoryMB: 4096, versions: { docker: 'fake', criu: 'none', kernel: 'sim' } };
    const box = new Box(id, info, voterIds.includes(id) ? bootstrap : null, shared, rngBoxes.fork(), params.wallOffsets[i] ?? 0);
    boxes.set(id, box);
    net.attach(id, box);
  });
  const upBoxes = (): Box[] => [...boxes.values()].filter((b) => b.up);
  const leaderBox = (): Box | null => {
    let best: Box | null = null;
    let term = -1;
    for (const b of upBoxes()) {
      const st = b.member?.raft.status();
      if (st?.role === 'leader' && st.term > term) {
        best = b;
        term = st.term;
      }
    }
    return best;
  };

  /** Resolves with the promise's value, or with 'timeout' after `ms` of simulated time (a member that crashed never answers). */
  const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
    new Promise((resolve, reject) => {
      const timer = clock.after(ms, () => resolve('timeout'));
      p.then(
        (v) => {
          timer.cancel();
          resolve(v);
        },
        (err: unknown) => {
          timer.cancel();
          reject(err);
        },
      );
    });

  // ---------------------------------------------------------------- clients
  let quiet = false;
  let inFlight = 0;
  const acknowledged: string[] = [];
  const finalKnown = new Set<string>();

  const propose = async (cmd: Command, rng: Random, what: string): Promise<ApplyResult | null> => {
    inFlight += 1;
    try {
      for (let attempt = 0; violation === null; attempt++) {
        if (attempt > 0) await clock.sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)));
        const up = upBoxes().filter((b) => b.member !== null);
        if (up.length === 0) continue;
        const box = rng.pick(up);
        const member = box.member;
        if (member === null) continue;
        let r: ApplyResult | 'timeout';
        try {
          r = await withTimeout(member.proposer.send(cmd), 20_000);
        } catch (err) {
          note(`client ${what} via ${box.id}: ${err instanceof Error ? err.message.slice(0, 80) : String(err)}`);
          continue;
        }
        if (r === 'timeout') {
          note(`client ${what} via ${box.id}: no answer`);
          continue;
        }
        return r;
      }
      return null;
    } finally {
      inFlight -= 1;
    }
  };

  let jobCounter = 0;
  const submit = async (rng: Random, clientId: number): Promise<void> => {
    const id = `j-${clientId}-${++jobCounter}`;
    const seconds = rng.int(params.jobSeconds[0], params.jobSeconds[1]);
    const checkpointed = rng.chance(params.checkpointShare);
    const input = {
      image: 'sim',
      command: ['work'],
      env: { FAKE_SECONDS: String(seconds), ...(rng.chance(params.failShare) ? { FAKE_EXIT_CODE: '3' } : {}) },
      checkpoint: checkpointed ? { mode: 'interval', intervalSeconds: rng.int(1, 3) } : { mode: 'off' },
    };
    const checked = validateJobSpec(input);
    if (!checked.ok) throw new Error(`the simulator made an invalid spec: ${JSON.stringify(checked.errors)}`);
    const spec: JobSpec = checked.spec;
    stats.submits += 1;
    note(`client ${clientId} submits ${id} (${seconds} s, checkpoint ${checkpointed ? spec.checkpoint.intervalSeconds : 'off'})`);
    const r = await propose({ type: 'submitJob', job: { id, spec, createdAt: clock.now() }, maxPending: 1000 }, rng, `submit ${id}`);
    if (r === null) return;
    if (r.ok || r.code === 'JOB_EXISTS') {
      note(`client ${clientId}: ${id} acknowledged${r.ok ? '' : ' (a retry found it)'}`);
      acknowledged.push(id);
      guard(() => checker.onAcknowledged(id));
    } else {
      note(`client ${clientId}: ${id} refused ${r.code}`);
    }
  };

  const cancel = async (rng: Random, clientId: number): Promise<void> => {
    const open = acknowledged.filter((id) => !finalKnown.has(id));
    if (open.length === 0) return;
    const id = rng.pick(open);
    stats.cancels += 1;
    note(`client ${clientId} cancels ${id}`);
    const r = await propose({ type: 'cancelJob', jobId: id }, rng, `cancel ${id}`);
    if (r === null) return;
    note(`client ${clientId}: cancel ${id} -> ${r.ok ? 'ok' : r.code}`);
    finalKnown.add(id);
  };

  // Closed-loop clients: each keeps at most MAX_OPEN_PER_CLIENT of its jobs unfinished,
  // so the work offered stays within what the cluster can finish in the quiet phase.
  const openOf = (clientId: number): number => acknowledged.filter((id) => id.startsWith(`j-${clientId}-`) && !checker.isFinal(id)).length + pendingSubmits[clientId - 1]!;
  const pendingSubmits = Array.from({ length: params.clients }, () => 0);
  for (let c = 1; c <= params.clients; c++) {
    const rng = rngClients.fork();
    void (async () => {
      while (!quiet && violation === null) {
        await clock.sleep(rng.int(1, 2 * params.submitEveryMs));
        if (quiet) break;
        if (rng.chance(params.cancelRate)) void cancel(rng, c);
        else if (openOf(c) < MAX_OPEN_PER_CLIENT) {
          pendingSubmits[c - 1]! += 1;
          void submit(rng, c).finally(() => (pendingSubmits[c - 1]! -= 1));
        }
      }
    })();
  }

  // ---------------------------------------------------------------- faults
  const restartLater = (box: Box, ms: number): void => {
    clock.after(ms, () => {
      if (!box.up && !quiet) {
        note(`${box.id} restarts`);
        box.boot();
      }
    });
  };
  const joinNode = async (box: Box): Promise<void> => {
    note(`${box.id} boots empty and asks to join`);
    box.boot();
    stats.joins += 1;
    for (let attempt = 0; violation === null; attempt++) {
      await clock.sleep(500);
      const leader = leaderBox();
      if (leader?.member == null) continue;
      try {
        const r = await withTimeout(leader.member.admitNode(box.info, BUILD), 15_000);
        if (r === 'timeout') continue;
        note(`${leader.id} admitted ${box.id}${r === null ? '' : `: refused ${r.code}`}`);
        return;
      } catch (err) {
        note(`join of ${box.id} through ${leader.id}: ${err instanceof Error ? err.message.slice(0, 80) : String(err)}`);
      }
    }
  };
  const joiners = ids.slice(params.voters);
  joiners.forEach((id, i) => {
    const box = boxes.get(id);
    if (box) clock.after(rngFaults.int(2000, Math.max(3000, opts.chaosMs / 2)) + i, () => void joinNode(box));
  });

  const fault = (): void => {
    const rng = rngFaults;
    const started = [...boxes.values()].filter((b) => b.started);
    const up = started.filter((b) => b.up);
    const roll = rng.next();
    if (roll < 0.45) {
      if (up.length <= 1) return;
      const leader = leaderBox();
      const victim = leader !== null && rng.chance(0.4) ? leader : rng.pick(up);
      const downMs = rng.int(200, params.maxDownMs);
      stats.crashes += 1;
      stats.lostWrites -= victim.storage.lostWrites;
      stats.snapshotsInstalled += victim.member?.raft.snapshotsInstalled ?? 0;
      victim.crash();
      stats.lostWrites += victim.storage.lostWrites;
      note(`${victim.id} crashes${victim === leader ? ' (the leader)' : ''}, down for ${downMs} ms`);
      restartLater(victim, downMs);
    } else if (roll < 0.85) {
      const leader = leaderBox();
      const size = rng.int(1, Math.max(1, Math.floor(started.length / 2)));
      const side = leader !== null && rng.chance(0.4) ? [leader.id] : pickSome(rng, started.map((b) => b.id), size);
      const mode = rng.pick(['symmetric', 'symmetric', 'outbound', 'inbound'] as const);
      const p = net.partition(side, mode);
      const ms = rng.int(300, 10_000);
      stats.partitions += 1;
      note(`partition ${p.id}: ${side.join(',')} ${mode} for ${ms} ms`);
      clock.after(ms, () => {
        net.heal(p.id);
        note(`partition ${p.id} healed`);
      });
    } else {
      const old = net.faults;
      net.faults = { ...old, dropRate: rng.pick([0.1, 0.3]), maxDelayMs: Math.max(old.maxDelayMs, rng.pick([50, 200])) };
      const ms = rng.int(500, 5000);
      note(`lossy network (drop ${net.faults.dropRate}, delay up to ${net.faults.maxDelayMs} ms) for ${ms} ms`);
      clock.after(ms, () => {
        if (!quiet) net.faults = old;
      });
    }
  };
  // An operator drains a box now and then and undrains it a while later, one box at a
  // time (the others take its jobs): the drained box's worker moves its jobs off (a last
  // checkpoint, the container stopped, jobDrained) while the faults go on.
  const drainLoop = async (): Promise<void> => {
    const rng = rngDrains;
    while (!quiet && violation === null) {
      await clock.sleep(rng.int(1, 4 * params.faultEveryMs));
      const started = [...boxes.values()].filter((b) => b.started);
      if (quiet || started.length === 0) continue;
      // A box that runs jobs (as a live member's replica says), when there is one: a
      // drain of an idle box moves nothing, and the drain path is what is under test.
      const view = [...boxes.values()].find((b) => b.up)?.member?.state;
      const busy = started.filter((b) => (view?.runningOn(b.id).length ?? 0) > 0);
      const box = rng.pick(busy.length > 0 ? busy : started);
      stats.drains += 1;
      note(`operator drains ${box.id}`);
      const r = await propose({ type: 'setDraining', node: box.id, draining: true }, rng, `drain ${box.id}`);
      note(`drain ${box.id} -> ${r === null ? 'no answer' : r.ok ? 'ok' : r.code}`);
      await clock.sleep(rng.int(1000, 10_000));
      const u = await propose({ type: 'setDraining', node: box.id, draining: false }, rng, `undrain ${box.id}`);
      note(`undrain ${box.id} -> ${u === null ? 'no answer' : u.ok ? 'ok' : u.code}`);
    }
  };
  const faultLoop = async (): Promise<void> => {
    while (!quiet && violation === null) {
      await clock.sleep(rngFaults.int(1, 2 * params.faultEveryMs));
      if (!quiet) fault();
    }
  };

  // ---------------------------------------------------------------- the run
  let lastLeader = '';
  const step = async (): Promise<boolean> => {
    const next = clock.nextDeadline();
    if (next === null) return false;
    await clock.advance(next - clock.monotonic());
    await drainMicrotasks();
    stats.steps += 1;
    guard(() => checker.checkStep(clock.monotonic()));
    const leader = leaderBox();
    const label = leader === null ? '' : `${leader.id}@${leader.member?.raft.status().term}`;
    if (label !== lastLeader && label !== '') {
      lastLeader = label;
      stats.leaderChanges += 1;
      note(`leader ${label}`);
    }
    return true;
  };

  try {
    for (const id of voterIds) boxes.get(id)?.boot();
    void faultLoop();
    void drainLoop();
    while (clock.monotonic() < opts.chaosMs && violation === null) if (!(await step())) break;
    if (violation === null) {
      phase = 'quiet';
      quiet = true;
      net.healAll();
      net.faults = CALM;
      note('quiet: faults off, partitions healed, every box up, no new jobs');
      for (const b of boxes.values()) if (b.started && !b.up) b.boot();
      const deadline = clock.monotonic() + QUIET_MS;
      while (violation === null && clock.monotonic() < deadline) {
        if (inFlight === 0 && checker.openAcknowledged() === 0) break;
        if (!(await step())) break;
      }
      if (violation === null) guard(() => checker.checkFinal());
      if (violation !== null && (violation as { invariant: string }).invariant.startsWith('liveness')) {
        for (const id of checker.openJobs().slice(0, 5)) note(`open: ${checker.describeJob(id)}`);
      }
    }
  } catch (err) {
    if (!(err instanceof Stop)) fail('harness error', err instanceof Error ? (err.stack ?? err.message) : String(err));
  } finally {
    for (const b of boxes.values()) {
      stats.snapshotsInstalled += b.member?.raft.snapshotsInstalled ?? 0;
      stats.lostWrites -= b.storage.lostWrites;
      b.crash();
      stats.lostWrites += b.storage.lostWrites;
    }
    rmSync(workRoot, { recursive: true, force: true });
    try {
      rmdirSync(dirname(workRoot));
    } catch {
      // another seed of this process still uses it
    }
  }
  const sites = realTime.end();
  stats.simulatedMs = clock.monotonic();
  stats.framesSent = net.stats.sent;
  stats.framesDelivered = net.stats.delivered;
  if (violation !== null) note(`VIOLATION ${(violation as { invariant: string }).invariant}`);
  return {
    seed: opts.seed,
    mutant: opts.mutant,
    violation,
    traceHash: trace.hash(),
    traceTail: trace.lastLines(),
    fullTrace: trace.full,
    params: describeParams(params, opts.mutant),
    stats: { ...stats, ...checker.stats },
    realTime: [...sites].map(([site, n]) => `${site} (${n}×)`),
    wallMs: performance.now() - started,
  };
}

function pickSome<T>(rng: Random, items: readonly T[], n: number): T[] {
  const pool = items.slice();
  const out: T[] = [];
  while (out.length < n && pool.length > 0) out.push(pool.splice(rng.int(0, pool.length - 1), 1)[0] as T);
  return out;
}

function describeCommand(cmd: Command): string {
  switch (cmd.type) {
    case 'submitJob':
      return `submitJob ${cmd.job.id}`;
    case 'assignJob':
      return `assignJob ${cmd.jobId}@${cmd.epoch} -> ${cmd.node}${cmd.fromCheckpoint ? ` from ${cmd.fromCheckpoint.epoch}:${cmd.fromCheckpoint.seq}` : ''}`;
    case 'jobStarted':
      return `jobStarted ${cmd.jobId}@${cmd.epoch} on ${cmd.node}${cmd.restoreError === undefined ? '' : ` (restore failed: ${cmd.restoreError.slice(0, 100)})`}`;
    case 'jobExited':
      return `jobExited ${cmd.jobId}@${cmd.epoch} on ${cmd.node} code ${cmd.exitCode}`;
    case 'checkpointCommitted':
      return `checkpointCommitted ${cmd.jobId}@${cmd.epoch} c${cmd.seq} on ${cmd.node}`;
    case 'cancelJob':
      return `cancelJob ${cmd.jobId}`;
    case 'nodeLost':
    case 'nodeLeft':
    case 'nodeAlive':
    case 'nodeSuspect':
      return `${cmd.type} ${cmd.node}`;
    case 'nodeJoined':
      return `nodeJoined ${cmd.node.id}`;
    case 'blobAdded':
      return `blobAdded ${cmd.kind} ${cmd.id.slice(0, 8)} [${cmd.holders.join(',')}]`;
    case 'setRole':
      return `setRole ${cmd.node} ${cmd.role}`;
    case 'setDraining':
      return `setDraining ${cmd.node} ${cmd.draining}`;
    case 'jobDrained':
      return `jobDrained ${cmd.jobId}@${cmd.epoch} on ${cmd.node}`;
    default:
      return cmd.type;
  }
}
