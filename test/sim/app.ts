import type { ConfState, Entry, Snapshot } from '../../raft/types.js';
import { chainOfEntry } from './digest.js';

/**
 * The simulated application: the replicated state machine each node runs on top of
 * the core. Its state is the ordered list of applied commands, held as
 *   - `chain`, a digest of every entry applied so far (see digest.ts), and
 *   - `lastRequest`, the dedupe table: the highest request id applied per client.
 *
 * Deduplication lives here, in the application layer, as in src/state: Raft may
 * commit the same client request twice (a client retries after a leader change, and
 * the first attempt also commits), and only the state machine can recognise the
 * copy by its (clientId, requestId) and skip it. Clients have one request in flight
 * and move on only after it is acknowledged, so "requestId ≤ lastRequest[clientId]"
 * means "already applied".
 *
 * The snapshot carries the chain, the dedupe table and the last few commands (so it
 * is a few hundred bytes and travels in several chunks); the full history of applied
 * commands is kept by the checker, which compares every node against it.
 */

export interface Command {
  clientId: string;
  requestId: number;
  op: string;
}

export interface ApplyOutcome {
  /** null for the leader's empty no-op and for membership changes. */
  command: Command | null;
  /** false when the dedupe table recognised a retried request. */
  isNew: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RECENT_COMMANDS = 8;

export function encodeCommand(c: Command): Uint8Array {
  return encoder.encode(JSON.stringify([c.clientId, c.requestId, c.op]));
}

/** Parses a command at the boundary; a malformed one is a bug in whoever wrote it. */
export function decodeCommand(data: Uint8Array): Command {
  const raw: unknown = JSON.parse(decoder.decode(data));
  if (!Array.isArray(raw) || raw.length !== 3 || typeof raw[0] !== 'string' || typeof raw[1] !== 'number' || typeof raw[2] !== 'string') {
    throw new Error(`malformed command ${decoder.decode(data)}`);
  }
  return { clientId: raw[0], requestId: raw[1], op: raw[2] };
}

interface SnapshotBody {
  v: 1;
  index: number;
  chain: number;
  lastRequest: Array<[string, number]>;
  recent: Array<[number, string, number, string]>;
}

function parseSnapshotBody(data: Uint8Array): SnapshotBody {
  const raw: unknown = JSON.parse(decoder.decode(data));
  const ok =
    typeof raw === 'object' &&
    raw !== null &&
    'v' in raw &&
    raw.v === 1 &&
    'index' in raw &&
    typeof raw.index === 'number' &&
    'chain' in raw &&
    typeof raw.chain === 'number' &&
    'lastRequest' in raw &&
    Array.isArray(raw.lastRequest) &&
    'recent' in raw &&
    Array.isArray(raw.recent);
  if (!ok) throw new Error(`malformed application snapshot ${decoder.decode(data).slice(0, 200)}`);
  return raw as SnapshotBody;
}

export class Application {
  appliedIndex = 0;
  chain = 0;
  readonly lastRequest = new Map<string, number>();
  /** The last few commands applied: [index, clientId, requestId, op]. */
  private recent: Array<[number, string, number, string]> = [];
  /** Membership as of appliedIndex, tracked from committed conf-change entries and snapshots. */
  conf: ConfState = { voters: [], learners: [] };

  static fromSnapshot(snapshot: Snapshot): Application {
    const app = new Application();
    app.restore(snapshot);
    return app;
  }

  restore(snapshot: Snapshot): void {
    const body = parseSnapshotBody(snapshot.data);
    if (body.index !== snapshot.meta.index) {
      throw new Error(`snapshot data is of index ${body.index} but its meta says ${snapshot.meta.index}`);
    }
    this.appliedIndex = body.index;
    this.chain = body.chain;
    this.lastRequest.clear();
    for (const [client, request] of body.lastRequest) this.lastRequest.set(client, request);
    this.recent = body.recent.slice();
    this.conf = { voters: snapshot.meta.conf.voters.slice(), learners: snapshot.meta.conf.learners.slice() };
  }

  apply(e: Entry): ApplyOutcome {
    this.appliedIndex = e.index;
    this.chain = chainOfEntry(this.chain, e);
    if (e.type === 'confChange') {
      this.applyConfChange(e.change.type, e.change.node);
      return { command: null, isNew: false };
    }
    if (e.data.length === 0) return { command: null, isNew: false };
    const command = decodeCommand(e.data);
    const last = this.lastRequest.get(command.clientId) ?? 0;
    if (command.requestId <= last) return { command, isNew: false };
    this.lastRequest.set(command.clientId, command.requestId);
    this.recent.push([e.index, command.clientId, command.requestId, command.op]);
    if (this.recent.length > RECENT_COMMANDS) this.recent.shift();
    return { command, isNew: true };
  }

  snapshotData(): Uint8Array {
    const body: SnapshotBody = {
      v: 1,
      index: this.appliedIndex,
      chain: this.chain,
      lastRequest: [...this.lastRequest].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
      recent: this.recent,
    };
    return encoder.encode(JSON.stringify(body));
  }

  private applyConfChange(type: 'addVoter' | 'addLearner' | 'removeNode', node: string): void {
    const voters = this.conf.voters.filter((n) => n !== node);
    const learners = this.conf.learners.filter((n) => n !== node);
    if (type === 'addVoter') voters.push(node);
    if (type === 'addLearner') learners.push(node);
    this.conf = { voters: voters.sort(), learners: learners.sort() };
  }
}
