import { Raft } from '../../raft/raft.js';
import type { ConfChange, ConfState, Entry, NodeId, RaftConfig, RaftStatus, Role } from '../../raft/types.js';
import { encodeCommand, type ApplyOutcome } from './app.js';
import { Checker, InvariantViolation } from './checker.js';
import { Cluster } from './cluster.js';
import { Network, NO_FAULTS, type NetworkFaults, type Partition } from './network.js';
import { Random } from './random.js';
import { Trace } from './trace.js';

/**
 * One simulated run of a seed: a cluster of 3 or 5 voters plus nodes that join later,
 * clients writing and reading through whichever node they believe leads, membership
 * changes and leadership transfers, and a hostile network and crashing processes.
 *
 *   safety phase   `steps` steps with faults on; the invariants are checked after
 *                  every step (checker.ts), so a run crashes at the first bad step.
 *   liveness phase faults off, every node restarted, partitions healed: a leader must
 *                  emerge and every pending request commit within bounded ticks; then
 *                  one follower is isolated for several election timeouts and
 *                  healed, and the leader must keep its leadership and term throughout.
 *
 * A step is one simulator event: a tick of every node, one message delivery, one
 * client action, one fault or one membership action.
 */

export const MUTANTS = ['none', 'no-prevote', 'no-figure8', 'send-before-persist', 'concurrent-confchange', 'reads-without-quorum'] as const;
export type Mutant = (typeof MUTANTS)[number];

export function isMutant(name: string): name is Mutant {
  return (MUTANTS as readonly string[]).includes(name);
}

/**
 * Which violations count as catching a mutant: the failure the broken rule leads to.
 * Pre-vote is a liveness feature (a healed node must not depose a healthy leader);
 * the others break safety. A liveness failure a mutant run hits for another reason
 * (a core bug that shows without the mutant too) does not count as catching it.
 */
export function catchesMutant(mutant: Mutant, invariant: string): boolean {
  if (mutant === 'none') return false;
  if (mutant === 'no-prevote') return invariant === 'liveness failure: disruption';
  return !invariant.startsWith('liveness failure') && invariant !== 'harness error';
}

export interface RunOptions {
  seed: number;
  /** Steps of the safety phase. */
  steps: number;
  mutant: Mutant;
  /** Keep the whole trace (replay writes it to a file). */
  keepTrace: boolean;
}

export interface RunStats {
  ticks: number;
  steps: number;
  delivered: number;
  leadersElected: number;
  acknowledgedWrites: number;
  servedReads: number;
  confChangesApplied: number;
  snapshotsInstalled: number;
  compactions: number;
  crashes: number;
  pauses: number;
  partitions: number;
  transfers: number;
  maxTerm: number;
  /** Messages refused by the stranger rule (raft.ts isStranger): removed nodes, joiners not yet known. */
  strangersRefused: number;
}

export interface RunResult {
  seed: number;
  mutant: Mutant;
  violation: { invariant: string; detail: string; step: number; phase: string } | null;
  traceHash: string;
  traceTail: string[];
  fullTrace: string[] | null;
  params: string;
  stats: RunStats;
}

/** What a seed decides about the cluster, drawn before anything runs. */
interface Params {
  voters: NodeId[];
  /** Nodes that start empty and join as learners during the run (0–2 learners and one spare). */
  joiners: NodeId[];
  maxVoters: number;
  config: Omit<RaftConfig, 'id' | 'random'>;
  compactEveryEntries: number;
  clients: number;
  faults: NetworkFaults;
  /** Share of the non-delivery steps that are faults and membership actions. */
  faultRate: number;
  adminRate: number;
  /**
   * Per node, the share of ticks its clock misses in the safety phase. A slow clock
   * stretches a leader's lease past its followers' election timeouts: what makes a
   * deposed leader believe it still leads (stale reads, stale proposals).
   */
  clockLag: Record<NodeId, number>;
  /**
   * Chance that a leader crashes at the very next step after being elected, or after
   * its commit index moves: the moments the rules of Figure 8 and of persistence are
   * about, which random crashes rarely hit.
   */
  leaderCrashRate: number;
}

function drawParams(rng: Random, mutant: Mutant): Params {
  const voterCount = rng.chance(0.5) ? 3 : 5;
  const learners = rng.int(0, 2);
  const ids = Array.from({ length: voterCount + learners + 1 }, (_, i) => String(i + 1));
  const electionTicks = rng.int(10, 20);
  const tinyMessages = rng.chance(0.5);
  return {
    voters: ids.slice(0, voterCount),
    joiners: ids.slice(voterCount),
    maxVoters: voterCount + 1,
    config: {
      electionTicks,
      heartbeatTicks: rng.int(1, 3),
      preVote: mutant !== 'no-prevote',
      checkQuorum: true,
      // 1 byte: every append carries exactly one entry.
      maxSizePerMsgBytes: tinyMessages ? 1 : rng.pick([256, 4096, 1 << 20]),
      maxInflightMsgs: rng.pick([1, 2, 4, rng.int(1, 256), 256]),
      maxInflightBytes: rng.chance(0.3) ? rng.int(200, 4000) : 0,
      maxUncommittedBytes: rng.chance(0.2) ? rng.int(300, 3000) : 0,
      snapshotChunkBytes: rng.pick([64, 128, rng.int(64, 1024)]),
      deferCommitNotice: rng.chance(0.5),
      unsafe: {
        commitPriorTermEntriesByCount: mutant === 'no-figure8',
        allowConcurrentConfChanges: mutant === 'concurrent-confchange',
        readsWithoutQuorum: mutant === 'reads-without-quorum',
      },
    },
    compactEveryEntries: rng.int(5, 40),
    clients: rng.int(3, 6),
    faults: {
      dropRate: rng.pick([0, 0.01, 0.05, 0.1]),
      duplicateRate: rng.pick([0, 0.01, 0.05]),
      maxDelayTicks: rng.int(0, 3),
      longDelayRate: rng.pick([0, 0.02, 0.05]),
    },
    faultRate: rng.pick([0.01, 0.03, 0.06, 0.12]),
    adminRate: rng.pick([0.02, 0.05]),
    clockLag: Object.fromEntries(ids.map((id) => [id, rng.pick([0, 0, 0.2, 0.5, 0.8])])),
    leaderCrashRate: rng.pick([0, 0.1, 0.2, 0.3]),
  };
}

function describeParams(p: Params, mutant: Mutant): string {
  const c = p.config;
  return (
    `voters=${p.voters.join(',')} joiners=${p.joiners.join(',')} election=${c.electionTicks} heartbeat=${c.heartbeatTicks} ` +
    `preVote=${c.preVote} maxMsg=${c.maxSizePerMsgBytes} inflight=${c.maxInflightMsgs}/${c.maxInflightBytes}B ` +
    `uncommitted=${c.maxUncommittedBytes} chunk=${c.snapshotChunkBytes} deferCommit=${c.deferCommitNotice === true} compactEvery=${p.compactEveryEntries} clients=${p.clients} ` +
    `drop=${p.faults.dropRate} dup=${p.faults.duplicateRate} delay=${p.faults.maxDelayTicks} long=${p.faults.longDelayRate} ` +
    `faults=${p.faultRate} admin=${p.adminRate} leaderCrash=${p.leaderCrashRate} clockLag=${Object.entries(p.clockLag).filter(([, lag]) => lag > 0).map(([id, lag]) => `${id}:${lag}`).join(',') || 'none'} mutant=${mutant}`
  );
}

interface Attempt {
  clientId: string;
  requestId: number;
  node: NodeId;
  index: number;
  term: number;
}

interface Write {
  requestId: number;
  data: Uint8Array;
  /** Tick of the latest attempt; the client retries elsewhere when it is older than its timeout. */
  triedAtTick: number;
  timeoutTicks: number;
  waiting: boolean;
}

interface Read {
  ctx: string;
  issuedAtTick: number;
}

class Client {
  nextRequestId = 1;
  nextRead = 1;
  write: Write | null = null;
  read: Read | null = null;

  constructor(
    readonly id: string,
    public leaderGuess: NodeId,
    readonly readRatio: number,
  ) {}
}

interface PendingChange {
  index: number;
  term: number;
  change: ConfChange;
}

class Run {
  readonly trace: Trace;
  readonly checker = new Checker();
  readonly cluster: Cluster;
  readonly network: Network;
  readonly params: Params;
  private readonly rng: Random;
  private readonly faultRng: Random;
  private readonly clientRng: Random;
  private readonly adminRng: Random;
  private readonly clients: Client[] = [];
  /** Client proposals awaiting their fate, by `${node}@${index}`. */
  private readonly attempts = new Map<string, Attempt[]>();
  /** Accepted membership changes not yet applied anywhere at their index. */
  private pendingChanges: PendingChange[] = [];
  private readonly partitionHeals = new Map<number, number>();
  private readonly clientTimeoutTicks: number;
  private acceptNewRequests = true;
  phase = 'setup';
  readonly stats: RunStats = {
    ticks: 0,
    steps: 0,
    delivered: 0,
    leadersElected: 0,
    acknowledgedWrites: 0,
    servedReads: 0,
    confChangesApplied: 0,
    snapshotsInstalled: 0,
    compactions: 0,
    crashes: 0,
    pauses: 0,
    partitions: 0,
    transfers: 0,
    maxTerm: 0,
    strangersRefused: 0,
  };
  /** Each node's role and term as last seen, to trace changes. */
  private readonly roles = new Map<NodeId, { role: Role; term: number }>();
  /** Per term, the leader's commit index as last seen (for the targeted crashes). */
  private readonly leaderCommit = new Map<number, number>();
  private crashSoon: NodeId | null = null;
  private deliveriesSinceTick = 0;
  private readonly confChangeIndexes = new Set<number>();

  constructor(readonly options: RunOptions) {
    const root = new Random(options.seed);
    this.params = drawParams(root.fork(), options.mutant);
    this.rng = root.fork();
    this.faultRng = root.fork();
    this.clientRng = root.fork();
    this.adminRng = root.fork();
    this.network = new Network(root.fork());
    this.trace = new Trace(options.keepTrace);
    this.clientTimeoutTicks = 3 * this.params.config.electionTicks;
    this.cluster = new Cluster(
      this.network,
      this.checker,
      this.trace,
      { persistBeforeSend: options.mutant !== 'send-before-persist', compactEveryEntries: this.params.compactEveryEntries },
      {
        onApplied: (node, e, outcome) => this.onApplied(node, e, outcome),
        onReadServed: (node, ctx) => this.onReadServed(node, ctx),
        onStatus: (status) => this.onStatus(status),
      },
    );
    this.trace.add(`params ${describeParams(this.params, options.mutant)}`);
    const bootstrap = Raft.bootstrap(this.params.voters);
    for (const id of [...this.params.voters, ...this.params.joiners]) {
      const nodeRng = root.fork();
      const config: RaftConfig = { ...this.params.config, id, random: () => nodeRng.next() };
      this.cluster.addNode(config, this.params.voters.includes(id) ? bootstrap : Raft.empty());
    }
    for (let i = 1; i <= this.params.clients; i++) {
      this.clients.push(new Client(`c${i}`, this.clientRng.pick(this.params.voters), this.clientRng.pick([0, 0.3, 0.5, 0.7])));
    }
  }

  // ------------------------------------------------------------------ phases

  safetyPhase(): void {
    this.phase = 'safety';
    this.network.faults = this.params.faults;
    const nonDelivery = 1 - this.params.faultRate - this.params.adminRate;
    for (let i = 0; i < this.options.steps; i++) {
      this.nextStep();
      if (this.targetedFault()) continue;
      if (this.network.hasDue() && this.rng.chance(0.8)) {
        this.deliverOne();
        continue;
      }
      const r = this.rng.next();
      if (r < nonDelivery * 0.45) this.tick();
      else if (r < nonDelivery) this.clientAction(this.clientRng.pick(this.clients));
      else if (r < nonDelivery + this.params.faultRate) this.fault();
      else this.admin();
    }
  }

  livenessPhase(): void {
    this.phase = 'liveness';
    const e = this.params.config.electionTicks;
    this.network.faults = NO_FAULTS;
    this.acceptNewRequests = false;
    this.nextStep();
    this.network.healAll();
    this.partitionHeals.clear();
    this.cluster.resumeAll();
    this.trace.add('liveness: faults off, partitions healed, pauses ended');
    for (const id of this.cluster.ids()) {
      if (!this.cluster.node(id).live) {
        this.nextStep();
        this.cluster.start(id);
      }
    }
    const leader = this.runUntil(20 * e, () => this.stableLeader(), 'liveness failure: no leader', () => 'no stable leader');
    this.trace.add(`liveness: leader ${leader.id} term ${leader.term}`);
    this.runUntil(60 * e, () => (this.converged() ? true : undefined), 'liveness failure: not committed', () => this.describeBacklog());
    this.trace.add('liveness: every request committed, members converged');
    this.idleMembershipChange();
    this.disruptionTest();
    this.checker.checkAcknowledgedDurable();
  }

  /**
   * A membership change on an idle cluster must reach every member too: a node outside
   * the cluster (removing a learner first if there is none) joins as a learner, with no
   * client traffic after it, and must catch up.
   */
  private idleMembershipChange(): void {
    const e = this.params.config.electionTicks;
    const members = (conf: ConfState): NodeId[] => [...conf.voters, ...conf.learners];
    let leader = this.runUntil(20 * e, () => this.stableLeader(), 'liveness failure: no leader', () => 'no stable leader before the idle membership change');
    let outsiders = this.cluster.ids().filter((id) => !members(leader.conf).includes(id));
    if (outsiders.length === 0) {
      if (leader.conf.learners.length === 0) return;
      const learner = this.rng.pick(leader.conf.learners);
      this.changeWhenIdle({ type: 'removeNode', node: learner });
      leader = this.runUntil(20 * e, () => this.stableLeader(), 'liveness failure: no leader', () => `no stable leader after removing learner ${learner}`);
      outsiders = [learner];
    }
    this.changeWhenIdle({ type: 'addLearner', node: this.rng.pick(outsiders) });
  }

  /** Proposes `change` through the leader until it is accepted, then waits until every member applied everything. */
  private changeWhenIdle(change: ConfChange): void {
    const e = this.params.config.electionTicks;
    const what = `${change.type} ${change.node} on an idle cluster`;
    this.runUntil(20 * e, () => {
      const leader = this.stableLeader();
      if (!leader) return undefined;
      const result = this.cluster.proposeConfChange(leader.id, change);
      this.trace.add(`liveness: ${what} via ${leader.id}: ${result === null ? 'down' : result.ok ? `i${result.index}/t${result.term}` : result.reason}`);
      return result?.ok ? true : undefined;
    }, 'liveness failure: not committed', () => `the leader did not accept ${what}`);
    const applied = (): boolean | undefined => {
      const leader = this.cluster.leader();
      const done = leader !== null && this.converged() && (change.type === 'removeNode') !== [...leader.conf.voters, ...leader.conf.learners].includes(change.node);
      return done ? true : undefined;
    };
    this.runUntil(60 * e, applied, 'liveness failure: not committed', () => `after ${what}: ${this.describeBacklog()}`);
    this.trace.add(`liveness: ${what} applied, members converged`);
  }

  /** Pre-vote + check-quorum: a follower cut off and then healed must not depose a healthy leader. */
  private disruptionTest(): void {
    const e = this.params.config.electionTicks;
    const leader = this.runUntil(20 * e, () => this.stableLeader(), 'liveness failure: no leader', () => 'no stable leader before the disruption test');
    const followers = leader.conf.voters.filter((id) => id !== leader.id);
    if (followers.length === 0) return;
    const isolated = this.rng.pick(followers);
    const watch = (): void => {
      const s = this.cluster.status(leader.id);
      if (s?.role !== 'leader' || s.term !== leader.term) {
        throw new InvariantViolation(
          'liveness failure: disruption',
          `leader ${leader.id} of term ${leader.term} is now ${s ? `${s.role} of term ${s.term}` : 'down'} after follower ${isolated} was isolated and healed`,
        );
      }
    };
    const p = this.network.partition([isolated], 'symmetric');
    this.trace.add(`liveness: isolate ${isolated} from leader ${leader.id} term ${leader.term}`);
    this.runTicks(6 * e, watch);
    this.network.heal(p.id);
    this.trace.add(`liveness: heal ${isolated}`);
    this.runTicks(6 * e, watch);
    this.runUntil(60 * e, () => (this.converged() ? true : undefined), 'liveness failure: not committed', () => `after healing ${isolated}: ${this.describeBacklog()}`);
  }

  /** Steps with faults off until `done` returns a value, or fails after `boundTicks` ticks. */
  private runUntil<T>(boundTicks: number, done: () => T | undefined, invariant: 'liveness failure: no leader' | 'liveness failure: not committed', why: () => string): T {
    const deadline = this.cluster.nowTick + boundTicks;
    for (;;) {
      const value = done();
      if (value !== undefined) return value;
      if (this.cluster.nowTick >= deadline) throw new InvariantViolation(invariant, `after ${boundTicks} ticks without faults: ${why()}`);
      this.livenessStep();
    }
  }

  private runTicks(ticks: number, each: () => void): void {
    const until = this.cluster.nowTick + ticks;
    while (this.cluster.nowTick < until) {
      this.livenessStep();
      each();
    }
  }

  /** Without faults: deliver everything due, then tick and let clients retry. */
  private livenessStep(): void {
    this.nextStep();
    // Time passes even in a message storm, so the tick bounds stay bounds.
    if (this.network.hasDue() && this.deliveriesSinceTick < 1000) {
      this.deliveriesSinceTick += 1;
      this.deliverOne();
      return;
    }
    this.deliveriesSinceTick = 0;
    this.tick();
    for (const c of this.clients) {
      if (c.write) this.clientAction(c);
    }
  }

  /** A leader of the highest term whom every live member follows, at its term. */
  private stableLeader(): { id: NodeId; term: number; conf: ConfState } | undefined {
    const leader = this.cluster.leader();
    if (!leader?.conf.voters.includes(leader.id) || leader.leadTransferee !== null) return undefined;
    for (const id of [...leader.conf.voters, ...leader.conf.learners]) {
      const s = this.cluster.status(id);
      if (!s || s.leader !== leader.id || s.term !== leader.term) return undefined;
    }
    return { id: leader.id, term: leader.term, conf: leader.conf };
  }

  private converged(): boolean {
    if (this.clients.some((c) => c.write !== null)) return false;
    const leader = this.cluster.leader();
    if (!leader || leader.commit !== leader.lastIndex) return false;
    return [...leader.conf.voters, ...leader.conf.learners].every((id) => this.cluster.node(id).app.appliedIndex === leader.lastIndex);
  }

  private describeBacklog(): string {
    const pending = this.clients.filter((c) => c.write).map((c) => `${c.id}#${c.write?.requestId}`);
    const leader = this.cluster.leader();
    const nodes = this.cluster.ids().map((id) => {
      const s = this.cluster.status(id);
      return s ? `${id}:${s.role}/t${s.term}/c${s.commit}/a${this.cluster.node(id).app.appliedIndex}/l${s.lastIndex}` : `${id}:down`;
    });
    const progress = Object.entries(leader?.progress ?? {}).map(([id, p]) => `${id}:${p.state}/m${p.match}/n${p.next}`);
    return (
      `pending writes [${pending.join(' ')}], leader ${leader ? `${leader.id} conf ${leader.conf.voters.join(',')}|${leader.conf.learners.join(',')}` : 'none'}, ` +
      `nodes ${nodes.join(' ')}, leader's progress ${progress.join(' ')}`
    );
  }

  // ------------------------------------------------------------------ events

  private nextStep(): void {
    this.stats.steps += 1;
    this.trace.step = this.stats.steps;
  }

  /** Targeted faults: a leader just elected, or whose commit index just moved, may crash at the next step. */
  private onStatus(s: RaftStatus): void {
    const last = this.roles.get(s.id);
    if (last?.role !== s.role || last.term !== s.term) {
      this.roles.set(s.id, { role: s.role, term: s.term });
      if (s.role === 'leader' || s.role === 'candidate' || last?.role === 'leader') this.trace.add(`role ${s.id} ${s.role} t${s.term}`);
      if (s.role === 'leader') this.stats.leadersElected += 1;
      if (s.term > this.stats.maxTerm) this.stats.maxTerm = s.term;
    }
    if (s.role !== 'leader' || this.phase !== 'safety' || this.params.leaderCrashRate === 0) return;
    const seen = this.leaderCommit.get(s.term);
    this.leaderCommit.set(s.term, s.commit);
    if ((seen === undefined || s.commit > seen) && this.crashSoon === null && this.faultRng.chance(this.params.leaderCrashRate)) {
      this.crashSoon = s.id;
    }
  }

  /**
   * The targeted fault, if one is due: it takes the step. Isolation also loses what the
   * leader has in flight (a partition cuts messages at delivery); a crash lets it arrive.
   */
  private targetedFault(): boolean {
    const id = this.crashSoon;
    if (id === null) return false;
    this.crashSoon = null;
    if (!this.cluster.node(id).live) return false;
    if (this.faultRng.chance(0.5)) {
      if (this.network.partitions.length >= 2) return false;
      this.isolate([id], 'symmetric', 'targeted');
      return true;
    }
    const ids = this.cluster.ids();
    const down = ids.filter((x) => !this.cluster.node(x).live).length;
    if (down >= Math.floor(ids.length / 2)) return false;
    this.trace.add(`targeted crash of leader ${id}`);
    this.cluster.crash(id);
    this.stats.crashes += 1;
    return true;
  }

  private isolate(side: NodeId[], mode: Partition['mode'], why: string): void {
    const p = this.network.partition(side, mode);
    const e = this.params.config.electionTicks;
    this.partitionHeals.set(p.id, this.cluster.nowTick + this.faultRng.int(e, 6 * e));
    this.stats.partitions += 1;
    this.trace.add(`partition ${p.id} ${mode} [${side.join(',')}]${why ? ` (${why})` : ''}`);
  }

  private tick(): void {
    if (this.phase === 'safety') this.cluster.tick((id) => this.rng.chance(this.params.clockLag[id] ?? 0));
    else this.cluster.tick();
    this.stats.ticks += 1;
    // Partitions heal on their own after a while.
    for (const [id, at] of this.partitionHeals) {
      if (this.cluster.nowTick >= at) {
        this.network.heal(id);
        this.partitionHeals.delete(id);
        this.trace.add(`heal partition ${id}`);
      }
    }
  }

  private deliverOne(): void {
    const item = this.network.takeDue();
    if (!item) return;
    this.stats.delivered += 1;
    this.cluster.deliver(item);
  }

  private clientAction(c: Client): void {
    if (c.write) {
      if (c.write.waiting && this.cluster.nowTick - c.write.triedAtTick < c.write.timeoutTicks) return;
      if (c.write.waiting) {
        // The node it asked may be a deposed leader that does not know it yet: ask another.
        this.trace.add(`timeout ${c.id}#${c.write.requestId} at ${c.leaderGuess}`);
        c.leaderGuess = this.clientRng.pick(this.cluster.ids().filter((id) => id !== c.leaderGuess));
      }
      this.tryWrite(c, c.write);
      return;
    }
    if (c.read) {
      if (this.cluster.nowTick - c.read.issuedAtTick < this.clientTimeoutTicks) return;
      this.trace.add(`timeout ${c.read.ctx}`);
      c.read = null;
    }
    if (!this.acceptNewRequests) return;
    if (this.clientRng.chance(c.readRatio)) {
      this.tryRead(c);
      return;
    }
    const requestId = c.nextRequestId++;
    c.write = { requestId, data: encodeCommand({ clientId: c.id, requestId, op: `put k${this.clientRng.int(1, 20)} v${requestId}` }), triedAtTick: 0, timeoutTicks: 0, waiting: false };
    this.tryWrite(c, c.write);
  }

  private tryWrite(c: Client, w: Write): void {
    const node = c.leaderGuess;
    const result = this.cluster.propose(node, w.data);
    w.triedAtTick = this.cluster.nowTick;
    w.timeoutTicks = this.clientRng.int(this.clientTimeoutTicks / 3, this.clientTimeoutTicks);
    if (result === null) {
      this.trace.add(`propose ${c.id}#${w.requestId} -> ${node}: down`);
      c.leaderGuess = this.clientRng.pick(this.cluster.ids());
      w.waiting = false;
    } else if (!result.ok) {
      this.trace.add(`propose ${c.id}#${w.requestId} -> ${node}: ${result.reason} (leader ${result.leader ?? '?'})`);
      c.leaderGuess = result.leader !== null && result.leader !== node ? result.leader : this.clientRng.pick(this.cluster.ids());
      w.waiting = false;
    } else {
      this.trace.add(`propose ${c.id}#${w.requestId} -> ${node}: i${result.index}/t${result.term}`);
      const key = `${node}@${result.index}`;
      const attempt: Attempt = { clientId: c.id, requestId: w.requestId, node, index: result.index, term: result.term };
      const list = this.attempts.get(key);
      if (list) list.push(attempt);
      else this.attempts.set(key, [attempt]);
      w.waiting = true;
    }
  }

  private tryRead(c: Client): void {
    const node = c.leaderGuess;
    const ctx = `${c.id}r${c.nextRead++}`;
    this.checker.readIssued(ctx, c.id);
    const ok = this.cluster.readIndex(node, ctx);
    this.trace.add(`read ${ctx} -> ${node}: ${ok ? 'issued' : 'refused'}`);
    if (ok) {
      c.read = { ctx, issuedAtTick: this.cluster.nowTick };
    } else {
      const s = this.cluster.status(node);
      c.leaderGuess = s?.leader ?? this.clientRng.pick(this.cluster.ids());
    }
  }

  private onApplied(node: NodeId, e: Entry, outcome: ApplyOutcome): void {
    if (e.type === 'confChange') {
      this.pendingChanges = this.pendingChanges.filter((p) => p.index !== e.index);
      if (!this.confChangeIndexes.has(e.index)) {
        this.confChangeIndexes.add(e.index);
        this.stats.confChangesApplied += 1;
      }
    }
    const key = `${node}@${e.index}`;
    const list = this.attempts.get(key);
    if (!list) return;
    this.attempts.delete(key);
    for (const a of list) {
      const c = this.clients.find((x) => x.id === a.clientId);
      if (!c?.write || c.write.requestId !== a.requestId) continue; // an older attempt of a request already acknowledged
      const cmd = outcome.command;
      if (e.term === a.term && cmd?.clientId === a.clientId && cmd.requestId === a.requestId) {
        this.checker.acknowledge(a.clientId, a.requestId, e.index);
        this.trace.add(`ack ${a.clientId}#${a.requestId} i${e.index}/t${e.term} on ${node}${outcome.isNew ? '' : ' (duplicate)'}`);
        this.stats.acknowledgedWrites += 1;
        c.write = null;
      } else {
        this.trace.add(`lost ${a.clientId}#${a.requestId} i${e.index}: t${a.term} proposed, t${e.term} applied on ${node}`);
        c.write.waiting = false; // retry at the client's next action
      }
    }
  }

  private onReadServed(_node: NodeId, ctx: string): void {
    for (const c of this.clients) {
      if (c.read?.ctx === ctx) {
        c.read = null;
        this.stats.servedReads += 1;
      }
    }
  }

  private fault(): void {
    const rng = this.faultRng;
    const ids = this.cluster.ids();
    const down = ids.filter((id) => !this.cluster.node(id).live);
    if (down.length > 0 && rng.chance(0.5)) {
      this.cluster.start(rng.pick(down));
      return;
    }
    if (this.network.partitions.length > 0 && rng.chance(0.3)) {
      const p = rng.pick(this.network.partitions);
      this.network.heal(p.id);
      this.partitionHeals.delete(p.id);
      this.trace.add(`heal partition ${p.id}`);
      return;
    }
    // Leaders are the interesting victims: a crash or an isolation right after an
    // election or in the middle of replicating is what the rules of Figure 8 and of
    // membership changes are about.
    const leader = rng.chance(0.4) ? this.cluster.leader() : null;
    if (rng.chance(0.2)) {
      const awake = ids.filter((id) => this.cluster.node(id).responsive(this.cluster.nowTick));
      if (awake.length === 0) return;
      const victim = leader && awake.includes(leader.id) ? leader.id : rng.pick(awake);
      const e = this.params.config.electionTicks;
      this.cluster.pause(victim, this.cluster.nowTick + rng.int(e, 4 * e));
      this.stats.pauses += 1;
      return;
    }
    if (rng.chance(0.5)) {
      const live = ids.filter((id) => this.cluster.node(id).live);
      if (down.length >= Math.floor(ids.length / 2) || live.length === 0) return;
      this.cluster.crash(leader ? leader.id : rng.pick(live));
      this.stats.crashes += 1;
      return;
    }
    if (this.network.partitions.length >= 2) return;
    const size = rng.int(1, ids.length - 1);
    const side = leader ? [leader.id] : ids.filter(() => rng.chance(size / ids.length));
    if (side.length === 0 || side.length === ids.length) return;
    this.isolate(side, rng.pick(['symmetric', 'symmetric', 'outbound', 'inbound'] as const), leader ? 'leader' : '');
  }

  /** A membership change (sometimes a burst of them) or a leadership transfer, through the leader. */
  private admin(): void {
    const rng = this.adminRng;
    const leader = this.cluster.leader();
    if (!leader) return;
    if (rng.chance(0.25)) {
      const targets = leader.conf.voters.filter((id) => id !== leader.id);
      if (targets.length === 0) return;
      const to = rng.pick(targets);
      const ok = this.cluster.transferLeadership(leader.id, to);
      this.stats.transfers += 1;
      this.trace.add(`transfer ${leader.id} -> ${to}: ${ok ? 'started' : 'refused'}`);
      return;
    }
    // Bursts exercise the one-change-at-a-time rule (refused unless the mutant allows them).
    const burst = rng.chance(0.3) ? rng.int(2, 3) : 1;
    for (let i = 0; i < burst; i++) {
      const planned = this.plannedConf(this.cluster.status(leader.id) ?? leader);
      const change = this.pickChange(planned);
      if (!change) return;
      const result = this.cluster.proposeConfChange(leader.id, change);
      if (result?.ok) this.pendingChanges.push({ index: result.index, term: result.term, change });
      this.trace.add(`confchange ${change.type} ${change.node} via ${leader.id}: ${result === null ? 'down' : result.ok ? `i${result.index}/t${result.term}` : result.reason}`);
      if (!result?.ok) return;
    }
  }

  /**
   * The leader's membership with the changes in its log that it has not applied yet on
   * top (only the concurrent-confchange mutant lets more than one be pending). Changes
   * at or below its applied index are in its membership already, or were lost; those
   * no longer in its log were overwritten.
   */
  private plannedConf(leader: RaftStatus): { voters: Set<NodeId>; learners: Set<NodeId> } {
    this.pendingChanges = this.pendingChanges.filter((p) => p.index > leader.applied && this.checker.termAt(leader.id, p.index) === p.term);
    const voters = new Set(leader.conf.voters);
    const learners = new Set(leader.conf.learners);
    for (const { change } of this.pendingChanges) {
      voters.delete(change.node);
      learners.delete(change.node);
      if (change.type === 'addVoter') voters.add(change.node);
      if (change.type === 'addLearner') learners.add(change.node);
    }
    return { voters, learners };
  }

  /** A random valid change that keeps at least 3 voters. */
  private pickChange(conf: { voters: Set<NodeId>; learners: Set<NodeId> }): ConfChange | null {
    const rng = this.adminRng;
    const options: ConfChange[] = [];
    for (const id of this.cluster.ids()) {
      if (!conf.voters.has(id) && !conf.learners.has(id)) options.push({ type: 'addLearner', node: id });
    }
    if (conf.voters.size < this.params.maxVoters) {
      for (const id of conf.learners) options.push({ type: 'addVoter', node: id });
    }
    if (conf.voters.size > 3) {
      for (const id of conf.voters) options.push({ type: 'removeNode', node: id });
    }
    for (const id of conf.learners) options.push({ type: 'removeNode', node: id });
    return options.length > 0 ? rng.pick(options) : null;
  }

  result(violation: RunResult['violation']): RunResult {
    this.stats.compactions = this.cluster.counters.compactions;
    this.stats.snapshotsInstalled = this.cluster.counters.snapshotsInstalled;
    this.stats.strangersRefused = this.cluster.counters.strangersRefused;
    return {
      seed: this.options.seed,
      mutant: this.options.mutant,
      violation,
      traceHash: this.trace.hash(),
      traceTail: this.trace.lastLines(),
      fullTrace: this.trace.full,
      params: describeParams(this.params, this.options.mutant),
      stats: this.stats,
    };
  }
}

/** Runs one seed to the end or to its first violation. Deterministic: same options, same result. */
export function runSeed(options: RunOptions): RunResult {
  let run: Run | null = null;
  try {
    run = new Run(options);
    run.safetyPhase();
    run.livenessPhase();
    return run.result(null);
  } catch (err) {
    if (!run) throw err;
    const step = run.stats.steps;
    if (err instanceof InvariantViolation) {
      return run.result({ invariant: err.invariant, detail: err.detail, step, phase: run.phase });
    }
    // A bug of the harness itself: still a failed seed, with its stack.
    const e = err as Error;
    return run.result({ invariant: 'harness error', detail: `${e.message}\n${e.stack ?? ''}`, step, phase: run.phase });
  }
}
