import type { Entry, NodeId, Role } from '../../raft/types.js';
import { chainOfEntry } from './digest.js';

/**
 * The invariants of Raft (Ongaro's thesis, Figure 3.2) plus the client-visible ones,
 * checked on every simulator step from what the harness observes: the entries and
 * snapshots each node's core hands out in ready(), the entries its application
 * applies, roles and terms from status(), and client acknowledgements and reads.
 *
 * Logs are compared through chains (digest.ts): the chain at index i digests the
 * whole prefix up to i, so two logs agree up to i exactly when their chains at i are
 * equal. The checker keeps, over all history:
 *   - chainByIndexTerm: for every (index, term) any node ever held, its chain
 *     (log matching: a second, different chain for the same pair is a violation);
 *   - committedChain[i]: the chain of the committed prefix up to i, from the first
 *     application of i anywhere (state machine safety: every later application of i,
 *     on any node, must have the same chain);
 *   - the term of the first node that applied each index, an upper bound of the term
 *     in which it was committed (leader completeness: a leader of any higher term
 *     must hold it).
 */

export type Invariant =
  | 'election safety'
  | 'log matching'
  | 'leader completeness'
  | 'state machine safety'
  | 'applied twice'
  | 'acknowledged proposal lost'
  | 'linearizable read'
  | 'ready contract'
  | 'core assertion'
  | 'liveness failure: no leader'
  | 'liveness failure: not committed'
  | 'liveness failure: disruption';

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: Invariant,
    readonly detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

function violated(invariant: Invariant, detail: string): never {
  throw new InvariantViolation(invariant, detail);
}

/** What a node's core holds in its log (persisted and not yet persisted), as chains. */
class LogMirror {
  /** The snapshot the log starts after (0 for none) and the chain of the prefix it covers. */
  baseIndex = 0;
  baseChain = 0;
  /** terms[k] and chains[k] are those of index baseIndex + 1 + k. */
  terms: number[] = [];
  chains: number[] = [];

  lastIndex(): number {
    return this.baseIndex + this.terms.length;
  }

  /** The chain at `index`, or undefined when it is compacted away or beyond the log. */
  chainAt(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseChain;
    if (index < this.baseIndex) return undefined;
    return this.chains[index - this.baseIndex - 1];
  }
}

interface AppliedState {
  index: number;
  chain: number;
}

interface Read {
  /** The highest index of a write acknowledged before the read was issued. */
  mustSee: number;
  issuedBy: string;
}

export class Checker {
  private readonly logs = new Map<NodeId, LogMirror>();
  private readonly applied = new Map<NodeId, AppliedState>();
  private readonly chainByIndexTerm = new Map<string, number>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** committedChain[i] for i ≥ 1; index 0 is the empty prefix. */
  private readonly committedChain: number[] = [0];
  private readonly committedTerm: number[] = [0];
  /** Per observer term, the highest index first applied by a node in that term. */
  private readonly committedByObserverTerm = new Map<number, number>();
  /** (clientId, requestId) → the index at which the application applied it as new. */
  private readonly appliedAsNew = new Map<string, number>();
  private readonly acknowledged = new Map<string, number>();
  private maxAcknowledgedIndex = 0;
  private readonly reads = new Map<string, Read>();

  // ------------------------------------------------------------------ logs

  /** A node (re)starts from its persisted state: its log is the snapshot plus the entries after it. */
  loadLog(node: NodeId, snapshot: { index: number; term: number } | null, entries: Entry[]): void {
    const mirror = new LogMirror();
    this.logs.set(node, mirror);
    if (snapshot) this.resetToSnapshot(node, mirror, snapshot.index, snapshot.term);
    this.appendEntries(node, entries);
  }

  /** The node crashed: its log is no longer live (history stays in the global maps). */
  dropLog(node: NodeId): void {
    this.logs.delete(node);
    this.applied.delete(node);
  }

  /** ready().entries: they replace every entry from entries[0].index on. */
  appendEntries(node: NodeId, entries: Entry[]): void {
    const first = entries[0];
    if (!first) return;
    const log = this.log(node);
    if (first.index <= log.baseIndex || first.index > log.lastIndex() + 1) {
      violated('ready contract', `node ${node} was handed entries from ${first.index} but its log is ${log.baseIndex + 1}..${log.lastIndex()} (after snapshot ${log.baseIndex})`);
    }
    const keep = first.index - log.baseIndex - 1;
    log.terms.length = keep;
    log.chains.length = keep;
    let chain = log.chainAt(first.index - 1) as number;
    for (const e of entries) {
      if (e.index !== log.lastIndex() + 1) violated('ready contract', `node ${node} was handed entry ${e.index} after ${log.lastIndex()}`);
      chain = chainOfEntry(chain, e);
      this.recordChain(node, e.index, e.term, chain);
      log.terms.push(e.term);
      log.chains.push(chain);
    }
  }

  /** ready().snapshot: the whole log is replaced by the snapshot. */
  installSnapshot(node: NodeId, index: number, term: number): void {
    this.resetToSnapshot(node, this.log(node), index, term);
  }

  /** The driver compacted the node's log up to `index` (an index it applied). */
  compactLog(node: NodeId, index: number): void {
    const log = this.log(node);
    const chain = log.chainAt(index);
    if (chain === undefined || index > log.lastIndex()) {
      violated('ready contract', `node ${node} compacted at ${index} outside its log ${log.baseIndex}..${log.lastIndex()}`);
    }
    const drop = index - log.baseIndex;
    log.terms = log.terms.slice(drop);
    log.chains = log.chains.slice(drop);
    log.baseIndex = index;
    log.baseChain = chain;
  }

  /** The core's own idea of its last index must match what it handed out. */
  checkLastIndex(node: NodeId, lastIndex: number): void {
    const mirrored = this.log(node).lastIndex();
    if (mirrored !== lastIndex) {
      violated('ready contract', `node ${node} reports last index ${lastIndex} but its readies delivered a log ending at ${mirrored}`);
    }
  }

  // ------------------------------------------------------------------ roles

  observeRole(node: NodeId, role: Role, term: number): void {
    if (role !== 'leader') return;
    const other = this.leaderOfTerm.get(term);
    if (other === undefined) this.leaderOfTerm.set(term, node);
    else if (other !== node) violated('election safety', `nodes ${other} and ${node} are both leaders of term ${term}`);
    this.checkLeaderCompleteness(node, term);
  }

  private checkLeaderCompleteness(node: NodeId, term: number): void {
    let mustHold = 0;
    for (const [observerTerm, index] of this.committedByObserverTerm) {
      if (observerTerm < term && index > mustHold) mustHold = index;
    }
    if (mustHold === 0) return;
    const log = this.log(node);
    const expected = this.committedChain[mustHold];
    if (mustHold <= log.baseIndex) {
      // Compacted: the snapshot the log starts from covers it; it was checked when installed.
      return;
    }
    const chain = log.chainAt(mustHold);
    if (chain !== expected) {
      const has = mustHold > log.lastIndex() ? `its log ends at ${log.lastIndex()}` : `its entry ${mustHold} has term ${log.terms[mustHold - log.baseIndex - 1]} (committed: term ${this.committedTerm[mustHold]}) or a different prefix`;
      violated('leader completeness', `node ${node} leads term ${term} but lacks committed entry ${mustHold}: ${has}`);
    }
  }

  // ------------------------------------------------------------------ application

  /** The node's application (re)starts at `index` (0, or the snapshot it was reloaded from) with that chain. */
  restartApplication(node: NodeId, index: number, chain: number): void {
    if (index > 0) this.checkCommittedPrefix(node, index, chain, 'restarted from a snapshot');
    this.applied.set(node, { index, chain });
  }

  /** The node's application applied a committed entry; `nodeTerm` is the node's current term. */
  applyEntry(node: NodeId, e: Entry, nodeTerm: number): number {
    const state = this.appliedState(node);
    if (e.index !== state.index + 1) {
      violated('state machine safety', `node ${node} was given entry ${e.index} to apply after applying ${state.index} (an index twice, or a gap)`);
    }
    const chain = chainOfEntry(state.chain, e);
    const logChain = this.log(node).chainAt(e.index);
    if (logChain !== chain) {
      violated('state machine safety', `node ${node} applied entry ${e.index} (term ${e.term}) which is not the one in its log or whose prefix differs from what it applied before`);
    }
    const committed = this.committedChain[e.index];
    if (committed === undefined) {
      if (e.index !== this.committedChain.length) {
        violated('state machine safety', `node ${node} applied ${e.index} but nothing was applied anywhere at ${this.committedChain.length}`);
      }
      this.committedChain.push(chain);
      this.committedTerm.push(e.term);
      const prev = this.committedByObserverTerm.get(nodeTerm) ?? 0;
      if (e.index > prev) this.committedByObserverTerm.set(nodeTerm, e.index);
    } else if (committed !== chain) {
      violated('state machine safety', `node ${node} applied entry ${e.index} of term ${e.term}, but another node applied a different entry (term ${this.committedTerm[e.index]}) or prefix there`);
    }
    state.index = e.index;
    state.chain = chain;
    return chain;
  }

  /** The node's application replaced its state by a snapshot's (index, term, chain from its data). */
  applySnapshot(node: NodeId, index: number, term: number, chain: number): void {
    const state = this.appliedState(node);
    if (index <= state.index) {
      violated('ready contract', `node ${node} was given snapshot ${index} to apply after applying ${state.index}`);
    }
    this.checkCommittedPrefix(node, index, chain, `applied snapshot ${index} (term ${term})`);
    if (this.committedTerm[index] !== term) {
      violated('state machine safety', `node ${node} applied snapshot ${index} of term ${term} but entry ${index} committed with term ${this.committedTerm[index]}`);
    }
    state.index = index;
    state.chain = chain;
  }

  /** The application applied a client command; `isNew` when its dedupe table did not know it. */
  applyCommand(node: NodeId, clientId: string, requestId: number, index: number, isNew: boolean): void {
    if (!isNew) return;
    const key = `${clientId}#${requestId}`;
    const first = this.appliedAsNew.get(key);
    if (first === undefined) this.appliedAsNew.set(key, index);
    else if (first !== index) {
      violated('applied twice', `request ${key} was applied as new at index ${first} and again at ${index} (node ${node})`);
    }
  }

  /** The term of entry `index` in the node's live log, if it holds it. */
  termAt(node: NodeId, index: number): number | undefined {
    const log = this.logs.get(node);
    if (!log || index <= log.baseIndex) return undefined;
    return log.terms[index - log.baseIndex - 1];
  }

  appliedIndex(node: NodeId): number {
    return this.applied.get(node)?.index ?? 0;
  }

  committedLength(): number {
    return this.committedChain.length - 1;
  }

  // ------------------------------------------------------------------ clients

  /** The node a client proposed to applied the client's entry at (index, term): the write is acknowledged. */
  acknowledge(clientId: string, requestId: number, index: number): void {
    const key = `${clientId}#${requestId}`;
    if (!this.acknowledged.has(key)) this.acknowledged.set(key, index);
    if (index > this.maxAcknowledgedIndex) this.maxAcknowledgedIndex = index;
  }

  readIssued(ctx: string, issuedBy: string): void {
    this.reads.set(ctx, { mustSee: this.maxAcknowledgedIndex, issuedBy });
  }

  /** A ReadIndex read was served at read index `index` (the node had applied at least that far). */
  readServed(node: NodeId, ctx: string, index: number): void {
    const read = this.reads.get(ctx);
    if (!read) return; // a duplicate answer to a read already served
    this.reads.delete(ctx);
    if (index < read.mustSee) {
      violated('linearizable read', `read ${ctx} of ${read.issuedBy} served by node ${node} at read index ${index}, but a write acknowledged before it was issued is at index ${read.mustSee}`);
    }
  }

  /** At the end of a run: every acknowledged write is applied, once. */
  checkAcknowledgedDurable(): void {
    for (const [key, ackIndex] of this.acknowledged) {
      const at = this.appliedAsNew.get(key);
      if (at === undefined) {
        violated('acknowledged proposal lost', `request ${key} was acknowledged at index ${ackIndex} but no node applied it`);
      }
      if (at > ackIndex) {
        violated('acknowledged proposal lost', `request ${key} was acknowledged at index ${ackIndex} but first applied at ${at}`);
      }
    }
  }

  isApplied(clientId: string, requestId: number): boolean {
    return this.appliedAsNew.has(`${clientId}#${requestId}`);
  }

  // ------------------------------------------------------------------ helpers

  private log(node: NodeId): LogMirror {
    const log = this.logs.get(node);
    if (!log) throw new Error(`checker: node ${node} has no live log (harness bug)`);
    return log;
  }

  private appliedState(node: NodeId): AppliedState {
    const state = this.applied.get(node);
    if (!state) throw new Error(`checker: node ${node} has no live application (harness bug)`);
    return state;
  }

  private recordChain(node: NodeId, index: number, term: number, chain: number): void {
    const key = `${index}:${term}`;
    const known = this.chainByIndexTerm.get(key);
    if (known === undefined) this.chainByIndexTerm.set(key, chain);
    else if (known !== chain) {
      violated('log matching', `node ${node} holds entry ${index} of term ${term}, but another log held an entry ${index} of term ${term} with different content or a different prefix`);
    }
  }

  private resetToSnapshot(node: NodeId, log: LogMirror, index: number, term: number): void {
    const chain = this.committedChain[index];
    if (chain === undefined) {
      violated('state machine safety', `node ${node} holds a snapshot at ${index}, but no node ever applied ${index}`);
    }
    if (this.committedTerm[index] !== term) {
      violated('state machine safety', `node ${node} holds a snapshot at ${index} of term ${term}, but entry ${index} committed with term ${this.committedTerm[index]}`);
    }
    this.recordChain(node, index, term, chain);
    log.baseIndex = index;
    log.baseChain = chain;
    log.terms = [];
    log.chains = [];
  }

  private checkCommittedPrefix(node: NodeId, index: number, chain: number, what: string): void {
    const committed = this.committedChain[index];
    if (committed === undefined) violated('state machine safety', `node ${node} ${what}, but no node ever applied ${index}`);
    if (committed !== chain) violated('state machine safety', `node ${node} ${what} whose state differs from the committed prefix up to ${index}`);
  }
}
