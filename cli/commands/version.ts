import { COMMIT, VERSION, versionLine } from '../../src/version.js';

export function versionCommand(options: { json?: boolean }): void {
  const info = { version: VERSION, commit: COMMIT, node: process.versions.node, platform: `${process.platform}-${process.arch}` };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return;
  }
  process.stdout.write(`${versionLine()}\n`);
}
