// What the members tell the leader about themselves with their lease renewals (leases.ts):
// the build they run (its protocol range) and their newest state check. From these the
// leader decides when to raise the cluster version (every member speaks the new one),
// refuses members whose build is too old for the cluster's version, and compares state
// hashes to detect replicas that diverged. docs/upgrading.md.
//
// Leader only, and per term: a new leader hears every member again before it raises.
// Nothing here is replicated.
import type { Logger } from 'pino';
import type { NodeId } from '../../raft/types.js';
import type { StateCheck } from '../state/live-tables.js';
import { type BuildInfo, protocolOf, runsAt } from '../version.js';

/** A mismatch of state hashes the leader found: `node`'s state at `index` differs from the leader's. */
export interface Divergence {
  node: NodeId;
  index: number;
  /** Wall-clock milliseconds when the leader found it. */
  at: number;
  leaderHash: string;
  nodeHash: string;
}

/** Divergences kept for GET /v1/cluster: the first ones matter most, later ones repeat them. */
const DIVERGENCES_KEPT = 16;

export interface ClusterVersionsOptions {
  self: NodeId;
  selfBuild: BuildInfo;
  logger: Logger;
  now: () => number;
  /** The leader's own newest state checks (ClusterState.stateChecks). */
  ownChecks: () => readonly StateCheck[];
  onDivergence?: (d: Divergence) => void;
}

export class ClusterVersions {
  /** Per member, the build it announced in this term (null: it renewed without one, an older build). */
  private readonly builds = new Map<NodeId, BuildInfo | null>();
  /** Per member, its newest state check as reported. */
  private readonly checks = new Map<NodeId, StateCheck>();
  /** Per member, the index of the last check compared: each is compared once. */
  private readonly compared = new Map<NodeId, number>();
  private readonly found: Divergence[] = [];
  /** Per member, what its last logged refusal said: logged again only when that changes (one entry per member, whatever it announces). */
  private readonly refusedLogged = new Map<NodeId, string>();

  constructor(private readonly opts: ClusterVersionsOptions) {}

  /** A new term: what members announced to an earlier leadership no longer counts. */
  startTerm(): void {
    this.builds.clear();
    this.compared.clear();
  }

  /**
   * A renewal from `from` with what it announced. False when the member must be
   * refused: its build cannot run at `clusterVersion` (the lease is then not granted,
   * so it runs nothing and is declared lost like a silent node).
   */
  onRenewal(from: NodeId, build: BuildInfo | null, check: StateCheck | null, clusterVersion: number): boolean {
    this.builds.set(from, build);
    if (check !== null) {
      this.checks.set(from, check);
      this.compare(from, check);
    }
    const range = protocolOf(build);
    if (runsAt(range, clusterVersion)) return true;
    const key = `${clusterVersion}:${range.min}-${range.max}`;
    if (this.refusedLogged.get(from) !== key) {
      this.refusedLogged.set(from, key);
      this.opts.logger.error(
        { node: from, build: build ?? 'none announced', clusterVersion },
        `node ${from} runs a build that speaks protocol versions ${range.min}–${range.max}${build === null ? ' (it announced none: a build from before versions)' : ''}, but the cluster runs at version ${clusterVersion}: its lease is refused, it runs no jobs. Start it with a build that speaks version ${clusterVersion}`,
      );
    }
    return false;
  }

  /** The build each member announced in this term; undefined: not heard yet. */
  buildOf(id: NodeId): BuildInfo | null | undefined {
    return id === this.opts.self ? this.opts.selfBuild : this.builds.get(id);
  }

  checkOf(id: NodeId): StateCheck | null {
    return id === this.opts.self ? (this.opts.ownChecks().at(-1) ?? null) : (this.checks.get(id) ?? null);
  }

  /**
   * The version the cluster can be raised to: the highest every member speaks, when
   * all of `members` announced their build in this term and that is above `current`;
   * otherwise null. A member not heard from holds the version where it is.
   */
  raiseTarget(members: readonly NodeId[], current: number): number | null {
    let target = Number.POSITIVE_INFINITY;
    for (const id of members) {
      const build = this.buildOf(id);
      if (build === undefined) return null;
      const range = protocolOf(build);
      if (range.min > current) return null; // cannot happen for a running member; never raise around it
      target = Math.min(target, range.max);
    }
    return Number.isFinite(target) && target > current ? target : null;
  }

  /** The mismatches found so far (oldest first, at most DIVERGENCES_KEPT). */
  get divergences(): readonly Divergence[] {
    return this.found;
  }

  /** Compares a member's check with the leader's own at the same index, once per index. */
  private compare(from: NodeId, check: StateCheck): void {
    if (this.compared.get(from) === check.index) return;
    const own = this.opts.ownChecks().find((c) => c.index === check.index);
    if (own === undefined) return; // not applied here yet, or already out of the window: the next report is compared
    this.compared.set(from, check.index);
    if (own.hash === check.hash) return;
    const d: Divergence = { node: from, index: check.index, at: this.opts.now(), leaderHash: own.hash, nodeHash: check.hash };
    if (this.found.length < DIVERGENCES_KEPT) this.found.push(d);
    this.opts.logger.error(d, `STATE DIVERGENCE: node ${from}'s replicated state at index ${check.index} differs from the leader's (${check.hash.slice(0, 12)} ≠ ${own.hash.slice(0, 12)})`);
    this.opts.onDivergence?.(d);
  }
}
