// Raft messages as objects, field by field: a correct message is accepted as it is; the
// same message with any Raft number replaced by an attacker's value (2^52, 2^53-1, -1,
// 0.5, NaN, a string, a bigint) is refused; with any field replaced by anything, the
// parser answers without throwing and what it accepts keeps the contract. Whatever it
// accepts is then stepped into a live three-node core: no assertion breaks and no node
// reaches a term or index of 2^52.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Raft } from '../../../raft/raft.js';
import { RAFT_NUMBER_LIMIT, type Message, type NodeId, type RaftConfig } from '../../../raft/types.js';
import { parsePeerFrame } from '../../../src/node/frames.js';
import { badNumber, canonical, contractBreach, MEMBERS, raftNumberPaths, validMessage, withLeaf } from '../raft-frames.js';
import type { FuzzTarget } from '../target.js';

function config(id: NodeId): RaftConfig {
  return {
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    random: () => (id === 'n1' ? 0 : 0.9),
    preVote: true,
    checkQuorum: true,
    maxSizePerMsgBytes: 1024,
    maxInflightMsgs: 8,
    maxInflightBytes: 0,
    maxUncommittedBytes: 0,
    snapshotChunkBytes: 64,
  };
}

/** Three cores passing messages in memory, with n1 elected; no disk (persistence is not under test). */
class Cores {
  readonly nodes = new Map<NodeId, Raft>(MEMBERS.map((id) => [id, new Raft(config(id), structuredClone(Raft.bootstrap([...MEMBERS])))]));

  constructor() {
    for (let i = 0; i < 25 && this.node('n1').status().role !== 'leader'; i++) this.tick();
  }

  node(id: NodeId): Raft {
    const r = this.nodes.get(id);
    if (!r) throw new Error(`no node ${id}`);
    return r;
  }

  tick(): void {
    for (const r of this.nodes.values()) {
      r.tick();
      this.settle();
    }
  }

  step(m: Message): void {
    this.nodes.get(m.to)?.step(m);
    this.settle();
  }

  /** Delivers until quiet, or for a bounded number of rounds (a forged state may keep them talking). */
  private settle(): void {
    for (let round = 0; round < 50; round++) {
      const out: Message[] = [];
      for (const r of this.nodes.values()) {
        while (r.hasReady()) {
          const rd = r.ready();
          out.push(...rd.messages);
          r.advance(rd);
        }
      }
      if (out.length === 0) return;
      for (const m of out) this.nodes.get(m.to)?.step(m);
    }
  }
}

/** A leaf of `m`, by path: an attacker may change any of them. */
function leafPaths(value: unknown, path: Array<string | number> = []): Array<Array<string | number>> {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return [path];
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return [path, ...entries.flatMap(([k, v]) => leafPaths(v, [...path, k]))];
}

const anyValue = fc.oneof(badNumber, fc.anything({ maxDepth: 2, maxKeys: 4 }), fc.uint8Array({ maxLength: 8 }));

const hostile = fc.tuple(validMessage, fc.nat(), badNumber, fc.nat(), anyValue);

export const target: FuzzTarget = {
  name: 'raft-message',
  property() {
    return fc.property(fc.array(hostile, { minLength: 1, maxLength: 5 }), (cases) => {
      const cores = new Cores();
      const accepted: Message[] = [];
      for (const [m, numberPick, bad, leafPick, anything] of cases) {
        const parsed = parsePeerFrame({ k: 'raft', m });
        if (!parsed.ok) throw new Error(`a correct message was refused as ${parsed.reason} (${parsed.detail}): ${JSON.stringify(canonical(m))}`);
        if (!isDeepStrictEqual(canonical(parsed.frame), canonical({ k: 'raft', m }))) throw new Error(`parsing changed a message: ${JSON.stringify(canonical(m))}`);
        accepted.push(m);

        const numbers = raftNumberPaths(m);
        const numberPath = numbers[numberPick % numbers.length] ?? ['term'];
        const outOfRange = parsePeerFrame({ k: 'raft', m: withLeaf(m, numberPath, bad) });
        if (outOfRange.ok) throw new Error(`${numberPath.join('.')} = ${String(bad)} was accepted: ${JSON.stringify(canonical(outOfRange.frame))}`);

        const leaves = leafPaths(m);
        const leafPath = leaves[leafPick % leaves.length] ?? [];
        const changed = parsePeerFrame({ k: 'raft', m: withLeaf(m, leafPath, anything) });
        if (changed.ok) {
          const breach = contractBreach(changed.frame);
          if (breach !== null) throw new Error(`accepted a message breaking the contract (${breach}) after ${leafPath.join('.')} was changed`);
          if (changed.frame.k === 'raft') accepted.push(changed.frame.m);
        }
      }
      // Correct in form, yet forged: the core must hold whatever a peer may say.
      for (const m of accepted) {
        cores.step(m);
        cores.tick();
      }
      for (let i = 0; i < 12; i++) cores.tick();
      for (const [id, r] of cores.nodes) {
        const s = r.status();
        if (s.term >= RAFT_NUMBER_LIMIT || s.lastIndex >= RAFT_NUMBER_LIMIT || s.commit >= RAFT_NUMBER_LIMIT) throw new Error(`${id} reached term ${s.term}, last index ${s.lastIndex}, commit ${s.commit}`);
      }
      return true;
    });
  },
};
