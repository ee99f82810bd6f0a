// Resuming an attempt on Docker from a checkpoint bundle (checkpoint-bundle.ts), in a
// new container on this engine, made as the dumped one was (named and labelled for the
// new epoch): from the job's image plus the bundle's filesystem layer, or from the
// bundle's snapshot image; the CRIU images are placed where the engine looks, and the
// container is started from them. What the start leaves behind (containerd's copy of
// the images, the engine's) is removed after the restore returned, so the start is
// reported without waiting for it; a checkpoint of the new attempt waits for it.
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Assignment } from '../state/views.js';
import { bundlePaths, readBundleMeta, type BundleMeta } from './checkpoint-bundle.js';
import { checkpointFingerprint, removeCheckpointLeftovers } from './ctrd-leftovers.js';
import type { DockerContext } from './docker-context.js';
import { deleteCheckpoint, engineCheckpointDir, startFromCheckpoint } from './docker-checkpoint.js';
import { describeError } from './docker-errors.js';
import { ensureImage, hasImage, loadImage } from './docker-images.js';
import { restoredRunConfig } from './docker-run-config.js';
import { linkTree } from '../util/link-tree.js';
import { overlayUpperDir, unpackLayer } from './overlay-layer.js';
import { runKey, type RunKey } from './runtime.js';

export type RestoreResult =
  | {
      restored: true;
      durationMs: number;
      containerId: string;
      logOffset: number;
      /** Settles once the copies the start left behind are removed (never rejects; errors are logged): how many containerd copies went. */
      cleanedUp: Promise<{ leftoversRemoved: number }>;
      /** Where durationMs went, ms by step, in order: container (image, create, filesystem layer), images (CRIU images placed, log), start (the engine's start from the images). */
      steps?: Record<string, number>;
    }
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
  // Asked at once, awaited where the engine's folder is needed: a node's first restore
  // asks the engine (docker info), and that overlaps the steps before.
  const engineInfo = containers.engineInfo();
  engineInfo.catch(() => undefined); // a failure is thrown where it is awaited, or moot if an earlier step failed
  try {
    const meta = await readBundleMeta(bundleDir);
    if (meta.jobId !== key.jobId) throw new Error(`the bundle is a checkpoint of job ${meta.jobId}, not ${key.jobId}`);
    if (meta.epoch >= key.epoch) throw new Error(`the bundle comes from epoch ${meta.epoch}; it can only resume a later epoch, not ${key.epoch}`);
    const existing = await containers.inspect(key);
    if (existing !== null) {
      if (existing.State.Running) {
        log.info(fields, 'the restored container of this attempt runs already; watching it');
        containers.watch(key, existing.Id, onExit);
        return { restored: true, durationMs: ctx.clock.monotonic() - startedAt, containerId: existing.Id, logOffset: meta.logOffset, cleanedUp: Promise.resolve({ leftoversRemoved: 0 }) };
      }
      await containers.remove(existing.Id);
    }
    const run = restoredRunConfig(meta.run, ctx.limits);
    const steps: Record<string, number> = {};
    let stepFrom = ctx.clock.monotonic();
    const step = (name: string): void => {
      const now = ctx.clock.monotonic();
      steps[name] = Math.round(now - stepFrom);
      stepFrom = now;
    };
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
      const snapshot = meta.snapshotImage;
      if (snapshot === null) throw new Error('the bundle holds image.tar but names no snapshot image');
      if (await ensureSnapshotImage(ctx, meta, snapshot.id, paths.image)) loadedImage = snapshot.id;
      container = await containers.create(key, snapshot.id, run, { snapshot: true });
      created = container.id;
    }
    step('container');
    const target = engineCheckpointDir((await engineInfo).rootDir, container.id, meta.checkpointName);
    await mkdir(join(target, '..'), { recursive: true });
    // Linked, not copied (CRIU images are only read): the bundle may go once this returns.
    await linkTree(paths.checkpoint, target);
    // The output up to the checkpoint, shown before what the restored processes write:
    // at most the tail a bundle keeps, whatever the bundle holds.
    await ctx.logs.inherit(key, paths.log, meta.logOffset);
    // Of the bundle's images, before the start: the caller may remove the bundle once
    // this returns, and containerd's copy is recognized by it afterwards.
    const fingerprint = await checkpointFingerprint(paths.checkpoint);
    step('images');
    startTried = true;
    await startFromCheckpoint(container, meta.checkpointName, target, {
      clock: ctx.clock,
      // Each retry waits 0.7 s or more: worth seeing in the log when a restore is slow.
      onRetry: (err) => log.warn({ ...fields, reason: describeError(err) }, 'the engine refused the start from the checkpoint for now; retrying'),
    });
    step('start');
    containers.watch(key, container.id, onExit);
    const cleanedUp = cleanUpAfterStart(ctx, key, container, meta.checkpointName, fingerprint);
    const durationMs = ctx.clock.monotonic() - startedAt;
    log.info({ ...fields, container: container.id.slice(0, 12), durationMs: Math.round(durationMs), steps }, 'restored from checkpoint');
    return { restored: true, durationMs, containerId: container.id, logOffset: meta.logOffset, cleanedUp, steps };
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

/**
 * Removes what a start from a checkpoint leaves once the processes run: containerd's
 * unpacked copy of the images (ctrd-leftovers.ts) and the engine's copy. The engine's
 * copy has the name the new attempt's first checkpoint takes (both count from c1), so
 * a checkpoint of this attempt waits for this (ctx.restoreCleanups, docker-capture.ts).
 * Failures are logged: the job runs either way, and only disk is at stake.
 */
function cleanUpAfterStart(ctx: DockerContext, key: RunKey, container: Docker.Container, checkpointName: string, fingerprint: string): Promise<{ leftoversRemoved: number }> {
  const fields = { job: key.jobId, epoch: key.epoch };
  const work = (async () => {
    const removed = await removeCheckpointLeftovers({ fingerprint }).catch((err: unknown) => {
      ctx.log.error({ ...fields, err }, "cannot remove containerd's copy of a restored checkpoint");
      return [];
    });
    await deleteCheckpoint(container, checkpointName).catch((err: unknown) => ctx.log.warn({ ...fields, err }, 'cannot delete the engine copy of a restored checkpoint'));
    return { leftoversRemoved: removed.length };
  })();
  const id = runKey(key);
  const done = work.then(() => undefined);
  ctx.restoreCleanups.set(id, done);
  void done.then(() => {
    if (ctx.restoreCleanups.get(id) === done) ctx.restoreCleanups.delete(id);
  });
  return work;
}

/** Loads the bundle's image.tar unless the engine has the snapshot image; whether it loaded. */
async function ensureSnapshotImage(ctx: DockerContext, meta: BundleMeta, snapshotId: string, tarPath: string): Promise<boolean> {
  if (await hasImage(ctx.docker, snapshotId)) return false;
  // A slim image.tar leaves out the job image's layers: the engine must have them.
  if (meta.baseLayersOmitted > 0) await ensureImage(ctx.docker, meta.run.baseImage, ctx.images, ctx.log, ctx.clock);
  await loadImage(ctx.docker, createReadStream(tarPath));
  if (!(await hasImage(ctx.docker, snapshotId))) throw new Error(`the bundle's image.tar did not provide image ${snapshotId}`);
  return true;
}
