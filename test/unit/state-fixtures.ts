// Helpers for the state machine and scheduler tests: a tiny "log" that wraps commands
// in envelopes, encodes them as the Raft log would (msgpackr) and applies the bytes,
// keeping every entry so another machine can replay the same log.
import { type Command, encodeEnvelope, type Envelope, type NodeInfo, validateJobSpec, type JobSpec } from '../../src/state/commands.js';
import { ClusterState } from '../../src/state/machine.js';
import type { ApplyResult } from '../../src/state/result.js';

export const T0 = 1_700_000_000_000;

export interface Entry {
  index: number;
  data: Uint8Array;
}

export class Log {
  readonly entries: Entry[] = [];
  index = 0;
  at = T0;
  private requestIds = new Map<string, number>();

  constructor(readonly state: ClusterState = new ClusterState()) {}

  /** Wraps, encodes and applies `cmd` as the next entry; each client's request ids count up from 1. */
  apply(cmd: Command, opts: { clientId?: string; requestId?: number; at?: number } = {}): ApplyResult {
    const clientId = opts.clientId ?? 'gateway-n1';
    const requestId = opts.requestId ?? (this.requestIds.get(clientId) ?? 0) + 1;
    this.requestIds.set(clientId, Math.max(requestId, this.requestIds.get(clientId) ?? 0));
    const env: Envelope = { v: 1, clientId, requestId, at: opts.at ?? this.at, cmd };
    return this.applyEnvelope(env);
  }

  applyEnvelope(env: Envelope): ApplyResult {
    this.index += 1;
    const data = encodeEnvelope(env);
    this.entries.push({ index: this.index, data });
    const result = this.state.applyBytes(this.index, data);
    this.state.checkInvariants();
    return result;
  }

  /** Applies and insists on success; returns the value. */
  ok(cmd: Command, opts?: { clientId?: string; at?: number }): Record<string, unknown> {
    const r = this.apply(cmd, opts);
    if (!r.ok) throw new Error(`${cmd.type} rejected: ${r.code} ${r.message}`);
    return r.value;
  }
}

export function spec(partial: Record<string, unknown> = {}): JobSpec {
  const r = validateJobSpec({ command: ['sh', '-c', 'echo hi'], ...partial });
  if (!r.ok) throw new Error(`bad test spec: ${JSON.stringify(r.errors)}`);
  return r.spec;
}

export function submit(id: string, partial: Record<string, unknown> = {}, createdAt = T0): Command {
  return { type: 'submitJob', job: { id, spec: spec(partial), createdAt } };
}

export function nodeInfo(id: string, slots = 2, memoryMB = 4096): NodeInfo {
  return { id, api: `127.0.0.1:77${id.slice(1).padStart(2, '0')}`, peer: `127.0.0.1:78${id.slice(1).padStart(2, '0')}`, slots, memoryMB, versions: { docker: '20.10.24', criu: '4.1', kernel: '6.12' } };
}

export function join(id: string, slots = 2, memoryMB = 4096): Command {
  return { type: 'nodeJoined', node: nodeInfo(id, slots, memoryMB) };
}

export function assign(jobId: string, node: string, epoch: number, fromCheckpoint: { seq: number; epoch: number } | null = null): Command {
  return { type: 'assignJob', jobId, node, epoch, fromCheckpoint, reason: epoch === 1 ? 'new job' : 'test' };
}

export function checkpoint(jobId: string, epoch: number, node: string, seq: number, holders: string[] = [node, 'n9'], blob = `ckpt-${jobId}-${epoch}-${seq}`): Command {
  return { type: 'checkpointCommitted', jobId, epoch, node, seq, blob, bytes: 1000 * seq, durationMs: 120, logOffset: 10 * seq, holders };
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** A small seeded PRNG (mulberry32): the tests that draw random workloads replay exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
