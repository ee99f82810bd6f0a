// The containers of one test cluster on the machine's engine: those labelled with its
// cluster id (src/node/cluster-id.ts), so that removing "n1's containers" cannot touch
// another cluster's n1 (a demo, a benchmark, another test).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterIdFromBootstrap } from '../../src/node/cluster-id.js';
import { connectDocker } from '../../src/worker/docker-endpoint.js';
import { LocalCluster } from '../process/harness.js';
import { waitFor } from '../helpers/wait.js';

const docker = connectDocker();

/** The id the cluster's nodes derive from the --bootstrap list they were given. */
export function clusterIdOf(c: LocalCluster): string {
  const first = c.nodes.values().next().value;
  const args = first?.args ?? [];
  const list = args[args.indexOf('--bootstrap') + 1] ?? '';
  return clusterIdFromBootstrap(new Map(list.split(',').map((e) => e.split('=') as [string, string])));
}

/** Container ids of the cluster, of one node when given. */
export async function clusterContainers(c: LocalCluster, node?: string): Promise<string[]> {
  const label = [`workrs.cluster=${clusterIdOf(c)}`, ...(node === undefined ? [] : [`workrs.node=${node}`])];
  return (await docker.listContainers({ all: true, filters: { label } })).map((i) => i.Id);
}

/**
 * Kills and removes them (the box's containers die with it). A node killed while the
 * engine was creating a container for it (a standby being prepared) leaves a container
 * that appears once the engine finishes: the list is taken again a second later, until
 * one comes back empty (at most 5 times).
 */
export async function removeClusterContainers(c: LocalCluster, node?: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, 1000));
    const ids = await clusterContainers(c, node);
    if (ids.length === 0 && round > 0) return;
    for (const id of ids) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
  }
}

/**
 * A running three-node cluster of `workrs start --runtime docker` on the machine's
 * engine, with `config` (node option keys) when given. Its teardown kills the nodes,
 * keeps their folder and prints their logs unless `passed()` was called and every
 * assertion held, and removes its containers.
 */
export async function dockerCluster(
  t: { teardown(f: () => Promise<void>): void; passing(): boolean },
  config?: Record<string, unknown>,
): Promise<{ c: LocalCluster; passed: () => void }> {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  const configPath = join(c.dir, 'node-config.json');
  if (config) writeFileSync(configPath, JSON.stringify(config));
  for (const n of c.nodes.values()) {
    n.args[n.args.indexOf('fake')] = 'docker';
    if (config) n.args.push('--config', configPath);
  }
  let failed = true;
  t.teardown(async () => {
    await c.destroy(failed || !t.passing());
    await removeClusterContainers(c);
  });
  c.startAll();
  await c.leader();
  await c.allReady();
  return { c, passed: () => (failed = false) };
}

/** Waits (up to 2 minutes) until `node` reports the job succeeded or failed; its view then. */
export async function finishedJob<T extends { state: string }>(c: LocalCluster, node: string, id: string): Promise<T> {
  return waitFor(`job ${id} to finish (asking ${node})`, async () => {
    const j = (await c.get<T>(node, `/v1/jobs/${id}`).catch(() => null))?.body;
    return j && (j.state === 'succeeded' || j.state === 'failed') ? j : undefined;
  }, 120_000, 250);
}
