// Applying the membership and access commands: nodes joining, alive, suspect, lost or
// gone (their jobs go back to pending), roles, revoked node certificates and API tokens.
import { COMMAND_LIMITS } from './commands.js';
import { type Cmd, type LiveTables, unknownNode } from './live-tables.js';
import type { AttemptEnd, NodeRecord, NodeState } from './records.js';
import { accepted, type ApplyResult, rejected } from './result.js';

/**
 * A new member, or a known one (re)joining: addresses and capacity are replaced, and
 * it is alive. Whoever proposed this is trusted to speak for the node: a committed
 * command does not say who asked, and apply must be the same on every node, so it
 * cannot check. Who may register a node and change its addresses is decided before
 * proposing, at the leader and the gateway (src/node/registration.ts).
 */
export function nodeJoined(live: LiveTables, at: number, cmd: Cmd<'nodeJoined'>): ApplyResult {
  const info = cmd.node;
  live.registrations++;
  const versions = { docker: info.versions.docker, criu: info.versions.criu, kernel: info.versions.kernel };
  const known = live.t.nodes.get(info.id);
  if (known === undefined) {
    const node: NodeRecord = {
      id: info.id,
      api: info.api,
      peer: info.peer,
      role: info.role ?? 'learner',
      state: 'alive',
      slots: info.slots,
      memoryMB: info.memoryMB,
      versions,
      joinedAt: at,
      seenAt: at,
      stateSince: at,
      losses: 0,
      upMs: 0,
      ...(info.cert === undefined ? {} : { cert: info.cert }),
      // Last, where reading an older snapshot adds it (snapshot.ts): equal state, equal bytes.
      draining: false,
    };
    live.t.nodes.set(node.id, node);
    return accepted({ node: node.id, state: node.state, role: node.role });
  }
  known.api = info.api;
  known.peer = info.peer;
  known.role = info.role ?? known.role;
  known.slots = info.slots;
  known.memoryMB = info.memoryMB;
  known.versions = versions;
  known.seenAt = at;
  if (info.cert !== undefined && info.cert !== known.cert) {
    // A node registering with a new certificate (it enrolled again): the old one is done.
    if (known.cert !== undefined) revokeCert(live, known.cert, known.id, at);
    known.cert = info.cert;
  }
  if (known.state !== 'alive') moveNode(known, 'alive', at);
  return accepted({ node: known.id, state: known.state, role: known.role });
}

export function nodeAlive(live: LiveTables, at: number, cmd: Cmd<'nodeAlive'>): ApplyResult {
  const node = live.t.nodes.get(cmd.node);
  if (node === undefined) return unknownNode(cmd.node);
  if (node.state === 'left') return rejected('NODE_LEFT', `node ${node.id} left the cluster; it comes back by joining`);
  if (node.state !== 'alive') {
    moveNode(node, 'alive', at);
    node.seenAt = at;
  }
  return accepted({ node: node.id, state: node.state });
}

export function nodeSuspect(live: LiveTables, at: number, cmd: Cmd<'nodeSuspect'>): ApplyResult {
  const node = live.t.nodes.get(cmd.node);
  if (node === undefined) return unknownNode(cmd.node);
  if (node.state === 'lost' || node.state === 'left') return rejected('NODE_NOT_ALIVE', `node ${node.id} is ${node.state}`);
  if (node.state === 'alive') moveNode(node, 'suspect', at);
  return accepted({ node: node.id, state: node.state });
}

/**
 * nodeLost / nodeLeft: the node's open attempts end and their jobs go back to
 * pending (same epoch; the scheduler assigns the next one). Its late reports are
 * then STALE_EPOCH. Repeating it changes nothing; a node that left stays left.
 */
export function nodeGone(live: LiveTables, at: number, cmd: Cmd<'nodeLost'> | Cmd<'nodeLeft'>): ApplyResult {
  const node = live.t.nodes.get(cmd.node);
  if (node === undefined) return unknownNode(cmd.node);
  const next = cmd.type === 'nodeLost' ? 'lost' : 'left';
  if (node.state === next || node.state === 'left') return accepted({ node: node.id, state: node.state, requeued: [] });
  moveNode(node, next, at);
  live.departures++;
  if (next === 'left' && node.cert !== undefined) revokeCert(live, node.cert, node.id, at);
  if (next === 'lost') node.losses = (node.losses ?? 0) + 1;
  const end: AttemptEnd = cmd.type === 'nodeLost' ? 'nodeLost' : 'nodeLeft';
  const requeued: string[] = [];
  for (const job of live.runningOn(node.id)) {
    live.endAttempt(job, at, end, null);
    live.markPending(job);
    requeued.push(job.id);
  }
  return accepted({ node: node.id, state: node.state, requeued });
}

/**
 * Drains a node (no new jobs; its worker moves its jobs off) or undoes it. Kept across
 * the node's restarts and rejoins. Repeating it is a no-op.
 */
export function setDraining(live: LiveTables, _at: number, cmd: Cmd<'setDraining'>): ApplyResult {
  const node = live.t.nodes.get(cmd.node);
  if (node === undefined) return unknownNode(cmd.node);
  if (node.state === 'left') return rejected('NODE_LEFT', `node ${node.id} left the cluster`);
  node.draining = cmd.draining;
  return accepted({ node: node.id, draining: node.draining });
}

export function setRole(live: LiveTables, _at: number, cmd: Cmd<'setRole'>): ApplyResult {
  const node = live.t.nodes.get(cmd.node);
  if (node === undefined) return unknownNode(cmd.node);
  node.role = cmd.role;
  return accepted({ node: node.id, role: node.role });
}

export function tokenCreated(live: LiveTables, _at: number, cmd: Cmd<'aclBootstrap'> | Cmd<'tokenCreated'>): ApplyResult {
  const { t } = live;
  if (cmd.type === 'aclBootstrap' && t.aclBootstrapped) return rejected('ACL_BOOTSTRAPPED', "the cluster's first admin token was made already; ask an admin for a token");
  if (t.tokens.has(cmd.token.id)) return rejected('TOKEN_EXISTS', `a token with id ${cmd.token.id} exists`);
  if (t.tokens.size >= COMMAND_LIMITS.maxTokens) return rejected('TOO_MANY_TOKENS', `the cluster keeps at most ${COMMAND_LIMITS.maxTokens} tokens; revoke some first`);
  const token = cmd.token;
  t.tokens.set(token.id, { id: token.id, name: token.name, role: token.role, hash: token.hash, createdAt: token.createdAt, expiresAt: token.expiresAt });
  if (cmd.type === 'aclBootstrap') t.aclBootstrapped = true;
  return accepted({ id: token.id });
}

export function tokenRevoked(live: LiveTables, _at: number, cmd: Cmd<'tokenRevoked'>): ApplyResult {
  if (!live.t.tokens.delete(cmd.id)) return rejected('TOKEN_UNKNOWN', `no token ${cmd.id}`);
  return accepted({ id: cmd.id, revoked: true });
}

function revokeCert(live: LiveTables, serial: string, node: string, at: number): void {
  if (!live.t.revokedCerts.has(serial)) live.t.revokedCerts.set(serial, { serial, node, at });
}

/** Changes a node's state, adding the time it was up (alive or suspect) to upMs. */
function moveNode(node: NodeRecord, next: NodeState, at: number): void {
  if (node.state === 'alive' || node.state === 'suspect') node.upMs = (node.upMs ?? 0) + Math.max(0, at - node.stateSince);
  node.state = next;
  node.stateSince = at;
}
