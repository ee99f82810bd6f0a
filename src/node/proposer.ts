// Proposes state machine commands for one proposer incarnation (a gateway, a worker,
// the leader's scheduler): envelopes with this incarnation's client id and increasing
// request ids, retried with a NEW request id when the cluster may not have applied
// them. That is safe because every command is idempotent by design (src/state/README.md:
// a resubmitted job id is JOB_EXISTS, a second exit report is fenced, a repeated
// assignment is STALE_EPOCH), and it keeps request ids in log order as the dedupe
// table requires.
import { randomBytes } from 'node:crypto';
import { decodeEnvelope, encodeEnvelope, type Command, UnknownCommandError } from '../state/commands.js';
import type { ApplyResult } from '../state/result.js';
import { COMMAND_SINCE, proposable } from '../state/versions.js';
import { WorkrsError } from '../errors.js';
import { backoffDelayMs, type BackoffOptions } from '../util/backoff.js';
import { systemClock, type Clock } from '../util/clock.js';
import { NoLeaderError, ProposalLostError, ProposalTimeoutError } from './errors.js';

export interface Proposing {
  propose(data: Uint8Array): Promise<unknown>;
}

/** Waits between tries: from 50–100 ms, doubling up to 1–2 s (an election takes a few hundred ms). */
const RETRY_BACKOFF: BackoffOptions = { baseMs: 100, maxMs: 2000 };

const RETRYABLE = (err: unknown): boolean =>
  err instanceof NoLeaderError || err instanceof ProposalLostError || err instanceof ProposalTimeoutError;

/**
 * Throws a 400 WorkrsError for a command the state machine would refuse as malformed
 * at apply: such a command never reaches the log.
 */
export function validateCommand(cmd: Command): void {
  try {
    decodeEnvelope({ v: 1, clientId: 'validate', requestId: 1, at: 0, cmd });
  } catch (err) {
    // A field or type the decoder does not know is a malformed request here, not a newer build's entry.
    const message = err instanceof UnknownCommandError ? `invalid command: unknown ${err.detail}` : err instanceof Error ? err.message : String(err);
    throw new WorkrsError('INVALID_COMMAND', 400, message, { cause: err });
  }
}

export class Proposer {
  readonly clientId: string;
  private requestId = 0;

  constructor(
    private readonly node: Proposing,
    role: string,
    nodeId: string,
    /** Stamps each envelope's `at` and times the retries. */
    private readonly clock: Clock = systemClock,
    private readonly random: () => number = Math.random,
    /** The cluster version as this node applied it: a command newer than it is not proposed (src/state/versions.ts). */
    private readonly clusterVersion: () => number = () => 1,
  ) {
    // A fresh incarnation per process start: request ids restart from 1.
    this.clientId = `${role}-${nodeId}-${randomBytes(6).toString('hex')}`;
  }

  /** Proposes once; the result of apply, or a retryable WorkrsError. */
  async once(cmd: Command): Promise<ApplyResult> {
    const version = this.clusterVersion();
    if (!proposable(cmd.type, version)) {
      throw new WorkrsError('VERSION_GATED', 409, `${cmd.type} needs protocol version ${COMMAND_SINCE[cmd.type]}; the cluster runs at ${version} until every member runs a build that speaks it (docs/upgrading.md)`);
    }
    const env = { v: 1 as const, clientId: this.clientId, requestId: ++this.requestId, at: this.clock.now(), cmd };
    validateCommand(cmd);
    const result = (await this.node.propose(encodeEnvelope(env))) as ApplyResult;
    if (!result.ok && result.code === 'STALE_REQUEST') throw new ProposalLostError();
    return result;
  }

  /** Proposes until the command is applied or `deadlineMs` passes (elections take a few hundred ms). */
  async send(cmd: Command, deadlineMs = 15_000): Promise<ApplyResult> {
    const deadline = this.clock.monotonic() + deadlineMs;
    for (let attempt = 0; ; attempt++) {
      const delay = backoffDelayMs(attempt, this.random, RETRY_BACKOFF);
      try {
        return await this.once(cmd);
      } catch (err) {
        if (!RETRYABLE(err) || this.clock.monotonic() + delay > deadline) {
          if (err instanceof WorkrsError) throw err;
          throw new WorkrsError('PROPOSAL_FAILED', 503, `the cluster could not apply ${cmd.type}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        await this.clock.sleep(delay);
      }
    }
  }
}
