// Where the worker's reports go (jobStarted, jobExited, checkpointCommitted): proposed
// to the replicated state, which decides them. Declared here so that the worker does
// not depend on the node that hosts it; the node's Proposer (src/node/proposer.ts) is
// one, and tests script their own.
import type { Command } from '../state/commands.js';
import type { ApplyResult } from '../state/result.js';

export interface ReportSink {
  /**
   * Proposes `cmd` until the state machine applied it (or refused it: a fenced report
   * is an answer too), or throws once `deadlineMs` passed without an answer.
   */
  send(cmd: Command, deadlineMs?: number): Promise<ApplyResult>;
}
