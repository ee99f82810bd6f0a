import { WorkrsError } from '../errors.js';

/** No leader is known right now (an election is under way): retry shortly. */
export class NoLeaderError extends WorkrsError {
  constructor() {
    super('NO_LEADER', 503, 'the cluster has no leader right now; retry shortly');
  }
}

/** A leader change dropped the proposal before it committed: retrying the same command is safe. */
export class ProposalLostError extends WorkrsError {
  constructor() {
    super('PROPOSAL_LOST', 503, 'a leader change dropped the request; retry it');
  }
}

/** The request's fate is unknown after the timeout: retrying the same command is safe (dedupe). */
export class ProposalTimeoutError extends WorkrsError {
  constructor() {
    super('TIMEOUT', 504, 'the cluster did not answer in time; retry the same request');
  }
}

/** The HTTP status of a command the state machine refused: unknown things 404, malformed 400, the rest conflicts. */
export function refusalStatus(code: string): number {
  return code === 'JOB_NOT_FOUND' || code === 'NODE_UNKNOWN' || code === 'TOKEN_UNKNOWN' ? 404 : code === 'INVALID_COMMAND' ? 400 : 409;
}
