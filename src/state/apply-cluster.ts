// Applying the commands about the cluster itself (protocol 2, versions.ts): its protocol
// version, and the state checks that compare replicas.
import { stateDigest } from './digest.js';
import type { Cmd, LiveTables } from './live-tables.js';
import { accepted, type ApplyResult, rejected } from './result.js';
import { UnsupportedProtocolError, unsupportedClusterVersion } from './versions.js';

/**
 * Raises the cluster version. A node whose build does not speak the new version stops
 * here (thrown, never a no-op): applying what follows with an older build's rules would
 * diverge. A version at or below the current one changes nothing: it is never lowered.
 */
export function setClusterVersion(live: LiveTables, _at: number, cmd: Cmd<'setClusterVersion'>, index: number): ApplyResult {
  const problem = unsupportedClusterVersion(cmd.version);
  if (problem !== null) throw new UnsupportedProtocolError(`entry ${index} raises the cluster version to ${cmd.version}: ${problem}`);
  const from = live.t.clusterVersion;
  if (cmd.version <= from) return rejected('VERSION_NOT_RAISED', `the cluster runs at version ${from} already; a version is never lowered`);
  live.t.clusterVersion = cmd.version;
  return accepted({ from, to: cmd.version });
}

/** The state as it is at this entry, hashed; every node computes it at the same index (LiveTables.stateChecks). */
export function checkState(live: LiveTables, _at: number, _cmd: Cmd<'checkState'>, index: number): ApplyResult {
  live.recordCheck({ index, hash: stateDigest(live.t) });
  return accepted({});
}
