// Resuming an attempt on Docker from a checkpoint bundle (checkpoint-bundle.ts), in a
// new container on this engine, made as the dumped one was (named and labelled for the
// new epoch): from the job's image plus the bundle's filesystem layer, or from the
// bundle's snapshot image; the CRIU images are placed where the engine looks, and the
// container is started from them.
import { createReadStream } from 'node:fs';
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Assignment } from '../state/views.js';
import { bundlePaths, readBundleMeta, type BundleMeta } from './checkpoint-bundle.js';
import { removeCheckpointLeftovers } from './ctrd-leftovers.js';
import type { DockerContext } from './docker-context.js';
import { deleteCheckpoint, engineCheckpointDir, startFromCheckpoint } from './docker-checkpoint.js';
import { describeError } from './docker-errors.js';
import { ensureImage, hasImage, loadImage } from './docker-images.js';
import { restoredRunConfig } from './docker-run-config.js';
import { overlayUpperDir, unpackLayer } from './overlay-layer.js';

export type RestoreResult =
  | { restored: true; durationMs: number; containerId: string; logOffset: number; leftoversRemoved: number }
  | { restored: false; reason: string };

/**
 * Does not throw: on failure whatever it made is removed, the reason comes back, and
 * the caller starts the attempt from scratch instead.
 */
export async function restoreAttempt(ctx: DockerContext, a: Assignment, bundleDir: string, onExit: (exitCode: number) => void): Promise<RestoreResult> {
  const { containers, log } = ctx;
  const startedAt = ctx.clock.monotonic();
  const key = { jobId: a.jobId, epoch: a.epoch };
  const fields = { job: key.jobId, epoch: key.epoch, bundleDir };
  const paths = bundlePaths(bundleDir);
  let created: string | undefined;
  let loadedImage: string | undefined;
  let startTried = false;
  try {
    const meta = await readBundleMeta(bundleDir);
    if (meta.jobId !== key.jobId) throw new Error(`the bundle is a checkpoint of job ${meta.jobId}, not ${key.jobId}`);
    if (meta.epoch >= key.epoch) throw new Error(`the bundle comes from epoch ${meta.epoch}; it can only resume a later epoch, not ${key.epoch}`);
    const existing = await containers.inspect(key);
    if (existing !== null) {
      if (existing.State.Running) {
        log.info(fields, 'the restored container of this attempt runs already; watching it');
        containers.watch(key, existing.Id, onExit);
        return { restored: true, durationMs: ctx.clock.monotonic() - startedAt, containerId: existing.Id, logOffset: meta.logOffset, leftoversRemoved: 0 };
      }
      await containers.remove(existing.Id);
    }
    const run = restoredRunConfig(meta.run, ctx.limits);
    const engine = await containers.engineInfo();
    let container: Docker.Container;
    if (meta.filesystem === 'layer') {
      // The job's image plus the dump's layer unpacked into the new container's upper directory.
      await ensureImage(ctx.docker, meta.run.baseImage, ctx.images, log, ctx.clock);
      const base = (await ctx.docker.getImage(meta.run.baseImage).inspect()) as { RootFS?: { Layers?: string[] } };
      const here = base.RootFS?.Layers ?? [];
      if (here.length !== meta.baseDiffIds.length || here.some((id, i) => id !== meta.baseDiffIds[i])) {
        throw new Error(`image ${meta.run.baseImage} on this engine is not the one the checkpoint was taken on (its layers differ): the checkpoint's filesystem layer does not apply to it`);
      }
      container = await containers.create(key, meta.run.baseImage, run);
      created = container.id;
      const upper = overlayUpperDir(await container.inspect());
      if (upper === null) throw new Error('the bundle holds an overlay2 layer, and this engine does not use the overlay2 storage driver');
      await unpackLayer(paths.layer, upper);
    } else {
      if (await ensureSnapshotImage(ctx, meta, paths.image)) loadedImage = meta.snapshotImage.id;
      container = await containers.create(key, meta.snapshotImage.id, run, { snapshot: true });
      created = container.id;
    }
    const target = engineCheckpointDir(engine.rootDir, container.id, meta.checkpointName);
    await mkdir(join(target, '..'), { recursive: true });
    await cp(paths.checkpoint, target, { recursive: true });
    // The output up to the checkpoint, shown before what the restored processes write:
    // at most the tail a bundle keeps, whatever the bundle holds.
    await ctx.logs.inherit(key, paths.log, meta.logOffset);
    startTried = true;
    await startFromCheckpoint(container, meta.checkpointName, target, { clock: ctx.clock });
    const leftovers = await removeCheckpointLeftovers(paths.checkpoint);
    // The engine's copy of the images is not needed once the processes run.
    await deleteCheckpoint(container, meta.checkpointName).catch((err: unknown) => log.warn({ ...fields, err }, 'cannot delete the engine copy of a restored checkpoint'));
    containers.watch(key, container.id, onExit);
    const durationMs = ctx.clock.monotonic() - startedAt;
    log.info({ ...fields, container: container.id.slice(0, 12), durationMs: Math.round(durationMs) }, 'restored from checkpoint');
    return { restored: true, durationMs, containerId: container.id, logOffset: meta.logOffset, leftoversRemoved: leftovers.length };
  } catch (err) {
    const reason = describeError(err);
    log.warn({ ...fields, reason }, 'restore failed; the attempt must start from scratch');
    await ctx.logs.drop(key);
    if (created !== undefined) await containers.remove(created).catch((e: unknown) => log.error({ ...fields, err: e }, 'cannot remove the container of a failed restore'));
    if (loadedImage !== undefined) await containers.removeSnapshotImage(loadedImage);
    if (startTried) await removeCheckpointLeftovers(paths.checkpoint).catch((e: unknown) => log.error({ ...fields, err: e }, "cannot remove containerd's copy of a failed restore"));
    return { restored: false, reason };
  }
}

/** Loads the bundle's image.tar unless the engine has the snapshot image; whether it loaded. */
async function ensureSnapshotImage(ctx: DockerContext, meta: BundleMeta, tarPath: string): Promise<boolean> {
  if (await hasImage(ctx.docker, meta.snapshotImage.id)) return false;
  // A slim image.tar leaves out the job image's layers: the engine must have them.
  if (meta.baseLayersOmitted > 0) await ensureImage(ctx.docker, meta.run.baseImage, ctx.images, ctx.log, ctx.clock);
  await loadImage(ctx.docker, createReadStream(tarPath));
  if (!(await hasImage(ctx.docker, meta.snapshotImage.id))) throw new Error(`the bundle's image.tar did not provide image ${meta.snapshotImage.id}`);
  return true;
}
