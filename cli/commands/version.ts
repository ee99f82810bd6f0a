import { COMMIT, PROTOCOL, PROTOCOL_VERSION, VERSION, versionLine } from '../../src/version.js';

export function versionCommand(options: { json?: boolean }): void {
  const info = {
    version: VERSION,
    commit: COMMIT,
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    // The replication protocol (docs/upgrading.md): `version` is this build's newest;
    // it runs in clusters at versions min to max.
    protocol: { version: Math.min(PROTOCOL_VERSION, PROTOCOL.max), min: PROTOCOL.min, max: PROTOCOL.max },
  };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return;
  }
  process.stdout.write(`${versionLine()}\n`);
}
