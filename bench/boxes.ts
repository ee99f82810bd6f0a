// What the box-loss benches (bench/checkpoint.ts, bench/takeover.ts) do to a box and
// clean up after it, on the main Docker engine every local node shares.
import { rmSync } from 'node:fs';
import type Docker from 'dockerode';
import { snapshotImageRef } from '../src/worker/docker-names.js';
import type { LocalCluster } from '../test/process/harness.js';

/** The parts of GET /v1/jobs/:id the box-loss benches read. */
export interface JobView {
  state: string;
  node: string | null;
  epoch: number;
  attempts: Array<{ node: string; epoch: number; fromCheckpoint: unknown; restoreError: string | null; startedAt: number | null }>;
  checkpoints: Array<{ seq: number; bytes: number; holders: string[] }>;
}

export async function containersOf(docker: Docker, label: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [label] } });
}

export async function removeContainers(docker: Docker, label: string): Promise<void> {
  for (const c of await containersOf(docker, label)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
}

/**
 * Removes the job's snapshot images: a node loads one to restore from, and only its
 * runtime's stop() would remove it, which a killed or destroyed node never calls.
 */
export async function removeSnapshotImages(docker: Docker, jobId: string): Promise<void> {
  const prefix = `${snapshotImageRef({ jobId, epoch: 1 }, 'c1').repo}:`;
  for (const image of await docker.listImages()) {
    for (const tag of image.RepoTags ?? []) if (tag.startsWith(prefix)) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
  }
}

/** The box is gone: its workrs process (kill -9), its containers, its data. */
export async function destroyBox(cluster: LocalCluster, docker: Docker, id: string): Promise<void> {
  await cluster.kill(id);
  await removeContainers(docker, `workrs.node=${id}`);
  rmSync(cluster.node(id).dataDir, { recursive: true, force: true });
}
