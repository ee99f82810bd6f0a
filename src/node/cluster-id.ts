// The cluster's id: what tells this cluster's Docker containers from another's on a
// shared engine (node ids are only unique within a cluster). The nodes that bootstrap
// a cluster derive it from the --bootstrap list they all share (sorted, so the order
// it is written in does not matter); a joining node gets it in the join answer. Each
// node keeps it in its data folder.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const FILE = 'cluster-id';
const ID = /^[0-9a-f]{16}$/;

export function clusterIdFromBootstrap(bootstrap: ReadonlyMap<string, string>): string {
  const text = [...bootstrap].map(([id, addr]) => `${id}=${addr}`).sort().join(',');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

export function isClusterId(value: unknown): value is string {
  return typeof value === 'string' && ID.test(value);
}

/** The id kept in `dataDir`, or null when there is none (a new node, or a folder from before ids). */
export function readClusterId(dataDir: string): string | null {
  try {
    const text = readFileSync(join(dataDir, FILE), 'utf8').trim();
    return isClusterId(text) ? text : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function writeClusterId(dataDir: string, id: string): void {
  writeFileSync(join(dataDir, FILE), `${id}\n`);
}

/** For a data folder that predates cluster ids and has no --bootstrap to derive one from. */
export function newClusterId(): string {
  return randomBytes(8).toString('hex');
}
