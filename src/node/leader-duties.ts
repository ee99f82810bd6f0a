// What the leader does every round, on top of Raft: the scheduler (node liveness from
// the leases, placements), the checkpoint policies of auto jobs, the Raft voters, and
// retention. The decisions are pure (src/scheduler); this part gathers their input and
// proposes what they return, one round at a time.
import type { Logger } from 'pino';
import type { NodeId } from '../../raft/types.js';
import { plan } from '../scheduler/plan.js';
import { DEFAULT_PRIORS, planPolicies, type PolicyPriors } from '../scheduler/policy.js';
import { planRetention } from '../scheduler/retention.js';
import { planVoterChange } from '../scheduler/voters.js';
import type { Command } from '../state/commands.js';
import type { ClusterState } from '../state/machine.js';
import { enabled } from '../state/versions.js';
import type { Clock } from '../util/clock.js';
import { SingleFlight } from '../util/single-flight.js';
import type { ClusterVersions } from './cluster-versions.js';
import type { Leases } from './leases.js';
import type { NodeMetrics } from './node-metrics.js';
import { Proposer } from './proposer.js';
import type { RaftNode } from './raft-node.js';

/**
 * How often the leader proposes a state check (checkState) while the log moves:
 * divergence shows within this. Every node hashes its whole state at a check (about
 * 10 µs per job here), so the interval grows by a millisecond per job in the table:
 * 10 000 jobs, a check every 15 s, under 1% of a core.
 */
const STATE_CHECK_INTERVAL_MS = 5000;
const STATE_CHECK_MS_PER_JOB = 1;

/** How often the leader looks for jobs and blobs to forget (scheduler/retention.ts), and how many batches per look. */
const RETENTION_INTERVAL_MS = 5000;
const RETENTION_MAX_COMMANDS = 8;

export interface LeaderDutyOptions {
  id: NodeId;
  clock: Clock;
  raft: Pick<RaftNode, 'status' | 'proposeConfChange' | 'propose' | 'leaderSince'>;
  state: () => ClusterState;
  leases: Leases;
  versions: ClusterVersions;
  metrics: NodeMetrics;
  logger: Logger;
  /** Voters the cluster keeps among healthy nodes. */
  voters: number;
  nodeTimeoutMs: number;
  jobRetentionSeconds: number;
  blobGcMinAgeMs: number;
  mtbfPriorSeconds: number;
  mtbfPriorWeight: number;
  restartPriorSeconds: number;
}

export class LeaderDuties {
  private readonly log: Logger;
  private readonly rounds: SingleFlight;
  private term = -1;
  private proposer: Proposer | null = null;
  /** Per running auto job, the epoch:checkpoints it was last planned at (scheduler/policy.ts). */
  private readonly policyPlanned = new Map<string, string>();
  private lastRetentionMs = 0;
  private lastCheckMs = 0;
  /** Voters with no node record yet, since when Raft has not heard from them. */
  private readonly silentUnregistered = new Map<NodeId, number>();

  constructor(private readonly opts: LeaderDutyOptions) {
    this.log = opts.logger;
    this.rounds = new SingleFlight(() => this.round(), (err) => this.log.debug({ err }, 'leader round interrupted'));
  }

  /** Runs a round if this node leads; a round already under way is not repeated. */
  tick(): void {
    if (this.opts.raft.status().role !== 'leader' || this.rounds.busy) return;
    void this.rounds.run();
  }

  /** A node's lease bound just passed (leases.ts): a round now, or right after the one under way, not at the next tick. */
  leaseBoundPassed(): void {
    if (this.leading()) void this.rounds.run();
  }

  private leading(): boolean {
    return this.opts.raft.status().role === 'leader';
  }

  private async round(): Promise<void> {
    const { raft, leases, clock } = this.opts;
    const st = raft.status();
    if (st.role !== 'leader') return;
    const state = this.opts.state();
    if (this.term !== st.term) {
      this.term = st.term;
      this.proposer = new Proposer(raft, `sched-t${st.term}`, this.opts.id, clock, Math.random, () => this.opts.state().clusterVersion);
      leases.startTerm(state.nodes.values(), raft.leaderSince() ?? clock.monotonic());
      this.opts.versions.startTerm();
      this.policyPlanned.clear();
      this.silentUnregistered.clear();
    }
    leases.admit(state.nodes.values());
    const proposer = this.proposer;
    if (!proposer) return;
    const now = clock.now();
    // The whole plan is proposed at once, in its order (the log keeps it: an assignment
    // after the nodeLost it relies on), and the round waits for all of it: a burst of
    // jobs is placed in one or two Raft rounds, not one round per job.
    const commands = plan(state, leases.liveness());
    const results = await Promise.allSettled(commands.map((cmd) => proposer.once(cmd)));
    results.forEach((r, i) => {
      const cmd = commands[i] as Command;
      if (r.status === 'rejected') this.log.debug({ cmd: cmd.type, err: r.reason as unknown }, 'scheduler command not applied');
      else if (!r.value.ok) this.log.debug({ cmd: cmd.type, code: r.value.code }, 'scheduler command refused');
      else if (cmd.type === 'nodeLost') {
        this.opts.metrics.nodeLosses.inc();
        this.log.warn({ node: cmd.node }, 'node lost: its jobs are re-queued');
      }
    });
    if (!this.leading()) return;
    const policies = planPolicies(this.opts.state(), now, this.policyPriors(), this.policyPlanned);
    const applied = await Promise.allSettled(policies.map((cmd) => proposer.once(cmd)));
    applied.forEach((r, i) => {
      const cmd = policies[i] as Command;
      if (r.status === 'fulfilled' && r.value.ok && cmd.type === 'setPolicy') this.log.info({ job: cmd.jobId, policy: cmd.policy }, 'checkpoint policy planned');
    });
    await this.manageVoters();
    await this.manageVersion(proposer, now);
    if (now - this.lastRetentionMs >= RETENTION_INTERVAL_MS) {
      this.lastRetentionMs = now;
      await this.applyRetention(proposer, now);
    }
  }

  /** Forgets old final jobs, then the blobs nobody needs (scheduler/retention.ts), a batch per command. */
  private async applyRetention(proposer: Proposer, now: number): Promise<void> {
    const input = { now, jobRetentionMs: this.opts.jobRetentionSeconds * 1000, blobMinAgeMs: this.opts.blobGcMinAgeMs };
    for (let round = 0; round < RETENTION_MAX_COMMANDS; round++) {
      const [cmd] = planRetention(this.opts.state(), input);
      if (!cmd || !this.leading()) return;
      const r = await proposer.once(cmd);
      if (!r.ok) {
        this.log.debug({ cmd: cmd.type, code: r.code }, 'retention command refused');
        return;
      }
      const forgotten = (r.value as { forgotten?: string[] }).forgotten ?? [];
      if (cmd.type === 'forgetJobs') this.opts.metrics.jobsForgotten.inc({}, forgotten.length);
      else this.opts.metrics.blobsForgotten.inc({}, forgotten.length);
      this.log.info({ cmd: cmd.type, count: forgotten.length }, 'retention');
      if (forgotten.length === 0) return; // nothing moved: do not spin on it
    }
  }

  /**
   * Raises the cluster version once every voter and learner announced (in this term) a
   * build that speaks a newer one; then, at that version, proposes a state check every
   * STATE_CHECK_INTERVAL_MS while the log moved since the last (cluster-versions.ts).
   */
  private async manageVersion(proposer: Proposer, now: number): Promise<void> {
    const st = this.opts.raft.status();
    if (st.role !== 'leader') return;
    const state = this.opts.state();
    const target = this.opts.versions.raiseTarget([...st.conf.voters, ...st.conf.learners], state.clusterVersion);
    if (target !== null) {
      const r = await proposer.once({ type: 'setClusterVersion', version: target });
      if (r.ok) this.log.warn({ from: state.clusterVersion, to: target }, `cluster version raised to ${target}: every member runs a build that speaks it`);
      return;
    }
    const interval = STATE_CHECK_INTERVAL_MS + STATE_CHECK_MS_PER_JOB * state.jobs.size;
    if (!enabled('stateChecks', state.clusterVersion) || now - this.lastCheckMs < interval) return;
    const last = state.stateChecks.at(-1)?.index ?? 0;
    if (state.appliedIndex <= last) return;
    this.lastCheckMs = now;
    const r = await proposer.once({ type: 'checkState' });
    if (!r.ok) this.log.debug({ code: r.code }, 'state check refused');
  }

  private policyPriors(): PolicyPriors {
    return {
      ...DEFAULT_PRIORS,
      failure: { mtbfSeconds: this.opts.mtbfPriorSeconds, weight: this.opts.mtbfPriorWeight },
      restartSeconds: this.opts.restartPriorSeconds,
      detectionSeconds: this.opts.leases.lossTimeoutMs() / 1000,
    };
  }

  /** Keeps the target number of voters among healthy nodes, no fewer and no more, one change per round (scheduler/voters.ts). */
  private async manageVoters(): Promise<void> {
    const st = this.opts.raft.status();
    const progress = st.progress;
    if (st.role !== 'leader' || !progress) return;
    const state = this.opts.state();
    const lost = new Set(st.conf.voters.filter((v) => v !== this.opts.id && (state.nodes.get(v)?.state === 'lost' || this.silentWithoutRecord(state, v, progress[v]?.recentActive ?? false))));
    const change = planVoterChange({
      self: this.opts.id,
      voters: st.conf.voters,
      learners: st.conf.learners,
      commit: st.commit,
      progress,
      target: this.opts.voters,
      alive: (id) => state.nodes.get(id)?.state === 'alive',
      lost: (id) => lost.has(id),
    });
    if (change === null) return;
    if (change.type === 'addVoter') this.log.warn({ node: change.node }, 'promoting a learner to voter');
    else if (lost.has(change.node)) this.log.warn({ node: change.node }, 'demoting a lost voter to learner');
    else this.log.info({ node: change.node, target: this.opts.voters }, 'demoting a voter above the target to learner');
    await this.opts.raft.proposeConfChange(change);
  }

  /**
   * A voter that died before it registered has no node record to declare lost, so it
   * would stay a voter for good. Raft's own contact stands in for the lease: one the
   * leader has not heard from for a node timeout counts as lost for voter management.
   */
  private silentWithoutRecord(state: ClusterState, id: NodeId, recentActive: boolean): boolean {
    if (state.nodes.has(id) || recentActive) {
      this.silentUnregistered.delete(id);
      return false;
    }
    const now = this.opts.clock.now();
    const since = this.silentUnregistered.get(id) ?? now;
    this.silentUnregistered.set(id, since);
    return now - since > this.opts.nodeTimeoutMs;
  }
}
