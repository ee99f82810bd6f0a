// Who may register a node and set its addresses. Every node-to-node call goes to the
// addresses in the replicated node table (peer links, bulk transfer, forwarding to the
// leader with the API token, log proxying), so they change only when that node itself
// asks:
//
// - its own registration (nodeJoined with its own id, at every start): proposed
//   locally when it leads, else forwarded to the leader over its authenticated peer
//   link, where the leader accepts a nodeJoined only from the node it names
//   (admitForwarded). A node restarted on new addresses registers them this way.
// - the API (POST /v1/cluster/nodes: a new node joining, through any member): a new
//   id, or one that left, is proposed; a registered id with the same addresses is
//   left as it is (joins are retried); with other addresses it is refused.
//
// The state machine's apply cannot make this choice: a committed command does not say
// who proposed it, and apply must be the same on every node. So these checks run
// before proposing, at the leader (forwarded proposals) and at the gateway (API).
// Pure: decisions on the node table, the command and the cluster version.
import type { NodeId } from '../../raft/types.js';
import { decodeEnvelopeBytes, type NodeInfo } from '../state/commands.js';
import type { NodeRecord } from '../state/records.js';
import { COMMAND_SINCE, proposable } from '../state/versions.js';
import { type BuildInfo, protocolOf, runsAt } from '../version.js';
import { parsePeerAddress } from '../transport/address.js';

export type ApiRegistration =
  /** Propose the nodeJoined: a new node, or one that left and comes back. */
  | { action: 'propose' }
  /** Already registered with these addresses: nothing to propose (a retried join). */
  | { action: 'unchanged' }
  | { action: 'refuse'; status: 400 | 409; code: 'INVALID_ADDRESS' | 'NODE_EXISTS'; message: string };

/** What the gateway does with POST /v1/cluster/nodes for `info`, given the node's record (if any). */
export function apiRegistration(known: Pick<NodeRecord, 'id' | 'api' | 'peer' | 'state'> | undefined, info: Pick<NodeInfo, 'id' | 'api' | 'peer'>): ApiRegistration {
  const problem = addressProblem(info);
  if (problem !== null) return { action: 'refuse', status: 400, code: 'INVALID_ADDRESS', message: problem };
  if (known === undefined || known.state === 'left') return { action: 'propose' };
  if (known.api === info.api && known.peer === info.peer) return { action: 'unchanged' };
  return {
    action: 'refuse',
    status: 409,
    code: 'NODE_EXISTS',
    message:
      `node ${known.id} is already registered (${known.state}, api ${known.api}, peer ${known.peer}); ` +
      'its addresses change only when the node itself restarts on new ones with its data folder. ' +
      `To put a new box under this id, remove the old node first (DELETE /v1/cluster/nodes/${encodeURIComponent(known.id)}), or join with another id.`,
  };
}

/** Why a node's api or peer address is not host:port, or null when both are. */
export function addressProblem(info: Pick<NodeInfo, 'api' | 'peer'>): string | null {
  const api = hostPortProblem(info.api);
  if (api !== null) return `api: ${api}`;
  const peer = hostPortProblem(info.peer);
  return peer === null ? null : `peer: ${peer}`;
}

/** Why `address` is not host:port (IPv6 in brackets), or null when it is. */
export function hostPortProblem(address: string): string | null {
  try {
    parsePeerAddress(address);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * Whether the leader proposes a command a follower forwarded over the peer link from
 * `from` (the link's authenticated node id): null when it does, else why not. A
 * nodeJoined must name the sender and carry host:port addresses. Bytes that are no
 * command are refused here too: apply would only reject them.
 */
export function admitForwarded(from: NodeId, data: Uint8Array, clusterVersion = 1): string | null {
  let cmd;
  try {
    cmd = decodeEnvelopeBytes(data).cmd;
  } catch (err) {
    return `forwarded proposal is not a command: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (cmd.type === 'setClusterVersion' || cmd.type === 'checkState') return `${cmd.type} is the leader's own command; a follower does not forward it`;
  if (!proposable(cmd.type, clusterVersion)) return `${cmd.type} needs protocol version ${COMMAND_SINCE[cmd.type]}; the cluster runs at ${clusterVersion}`;
  if (cmd.type !== 'nodeJoined') return null;
  if (cmd.node.id !== from) return `nodeJoined for ${cmd.node.id} forwarded by ${from}: a node registers only itself`;
  return addressProblem(cmd.node);
}

/**
 * Why a node of `build` (null: it announced none, a build from before versions) cannot
 * join a cluster at `clusterVersion`, or null when it can (docs/upgrading.md).
 */
export function joinVersionRefusal(id: string, build: BuildInfo | null, clusterVersion: number): string | null {
  const range = protocolOf(build);
  if (runsAt(range, clusterVersion)) return null;
  const what = build === null ? 'announces no protocol version (a build from before versions, which speaks version 1 only)' : `runs ${build.version} (${build.commit}), which speaks protocol versions ${range.min}–${range.max}`;
  return `${id} ${what}, and this cluster runs at version ${clusterVersion}: it cannot join. Start it with a build that speaks version ${clusterVersion} (\`workrs version --json\` shows a build's range; docs/upgrading.md)`;
}
