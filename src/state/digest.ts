// A hash of the replicated state (the tables a snapshot holds), for comparing replicas
// (checkState, docs/upgrading.md "Divergence"). Canonical: object keys are sorted and
// absent fields equal undefined ones, so two nodes holding equal tables get equal hashes
// whether they applied every entry or restored a snapshot written by another build.
// The tables' own order (log order) is kept: replicas iterate them in that order, so a
// different order is a divergence too.
import { createHash, type Hash } from 'node:crypto';
import type { Tables } from './snapshot.js';

/** Hex SHA-256 of the tables in canonical form. */
export function stateDigest(t: Tables): string {
  const h = createHash('sha256');
  h.update(`workrs-state/1 ${t.appliedIndex} ${t.clusterVersion} ${t.aclBootstrapped}\n`);
  rows(h, 'jobs', t.jobs);
  rows(h, 'attempts', t.attempts);
  rows(h, 'checkpoints', t.checkpoints);
  rows(h, 'nodes', t.nodes);
  rows(h, 'blobs', t.blobs);
  rows(h, 'sessions', t.sessions);
  rows(h, 'tokens', t.tokens);
  rows(h, 'revokedCerts', t.revokedCerts);
  return h.digest('hex');
}

function rows(h: Hash, table: string, map: ReadonlyMap<string, unknown>): void {
  h.update(`${table} ${map.size}\n`);
  for (const [key, row] of map) h.update(`${JSON.stringify(key)}=${canonical(row)}\n`);
}

/** JSON with every object's keys sorted and undefined members left out. */
export function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return value === undefined ? 'null' : JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(obj).sort()) {
    const v = obj[key];
    if (v !== undefined) parts.push(`${JSON.stringify(key)}:${canonical(v)}`);
  }
  return `{${parts.join(',')}}`;
}
