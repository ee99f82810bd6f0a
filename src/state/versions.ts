// The one place where what each protocol version adds is gated (docs/upgrading.md).
// A build speaks the versions PROTOCOL gives (src/version.ts); the cluster runs at the
// version its replicated state holds (ClusterState.clusterVersion), raised by the
// leader through setClusterVersion only once every member announced that it speaks
// the new one. Until then nothing new in it may be proposed: a node of an older build
// would not know it, and must never apply what it does not know (it stops instead).
//
// To add a command or a behaviour: give it the next version here, raise
// PROTOCOL_VERSION, and ask `proposable` (commands) or `enabled` (behaviours) before
// using it.
import { PROTOCOL, runsAt } from '../version.js';
import type { CommandType } from './command-types.js';

/** The protocol version each command appeared in. */
export const COMMAND_SINCE: { readonly [T in CommandType]: number } = {
  submitJob: 1,
  cancelJob: 1,
  assignJob: 1,
  jobStarted: 1,
  jobExited: 1,
  checkpointCommitted: 1,
  setPolicy: 1,
  nodeJoined: 1,
  nodeAlive: 1,
  nodeSuspect: 1,
  nodeLost: 1,
  nodeLeft: 1,
  setRole: 1,
  setDraining: 1,
  jobDrained: 1,
  blobAdded: 1,
  blobHolders: 1,
  forgetJobs: 1,
  forgetBlobs: 1,
  aclBootstrap: 1,
  tokenCreated: 1,
  tokenRevoked: 1,
  setClusterVersion: 2,
  checkState: 2,
};

/** Behaviours that are not commands, and the version they need. */
export const FEATURE_SINCE = {
  /** Snapshots carry the cluster version (format 2); an older build refuses them. */
  snapshotFormat2: 2,
  /** The leader proposes checkState to compare the members' state hashes. */
  stateChecks: 2,
} as const;

export type Feature = keyof typeof FEATURE_SINCE;

/** Whether this build knows a command: one from a version above its range is unknown to it, as to an older build. */
export function knownCommand(type: CommandType): boolean {
  return COMMAND_SINCE[type] <= PROTOCOL.max;
}

/**
 * Whether a command may be proposed in a cluster at `clusterVersion`. setClusterVersion
 * is the exception: it is what raises the version, and the leader proposes it only
 * when every member speaks the new one.
 */
export function proposable(type: CommandType, clusterVersion: number): boolean {
  return type === 'setClusterVersion' ? knownCommand(type) : COMMAND_SINCE[type] <= clusterVersion;
}

/** Whether a behaviour is on in a cluster at `clusterVersion`. */
export function enabled(feature: Feature, clusterVersion: number): boolean {
  return FEATURE_SINCE[feature] <= clusterVersion;
}

/** Why this build cannot run in a cluster at `clusterVersion`, or null when it can. */
export function unsupportedClusterVersion(clusterVersion: number): string | null {
  if (runsAt(PROTOCOL, clusterVersion)) return null;
  const range = `${PROTOCOL.min}–${PROTOCOL.max}`;
  if (clusterVersion > PROTOCOL.max) {
    return `the cluster runs at protocol version ${clusterVersion}, and this build speaks versions ${range}: the cluster was upgraded past this build. Start this node with a build that speaks version ${clusterVersion} (\`workrs version --json\` shows a build's range); a cluster version is never lowered (docs/upgrading.md)`;
  }
  return `the cluster runs at protocol version ${clusterVersion}, and this build speaks versions ${range}: it is too new for this cluster. Upgrade the cluster through a build that speaks both (docs/upgrading.md)`;
}

/**
 * Thrown by apply and restore when the state needs a protocol version this build does
 * not speak, and by decoding for a command it does not know. Never a no-op: the node
 * stops (the Raft driver's fatal path) rather than apply less than its peers do.
 */
export class UnsupportedProtocolError extends Error {
  readonly code = 'UNSUPPORTED_PROTOCOL';
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedProtocolError';
  }
}
