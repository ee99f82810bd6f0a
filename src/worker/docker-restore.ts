// Resuming an attempt on Docker from a checkpoint bundle (checkpoint-bundle.ts), in a
// new container on this engine, made as the dumped one was (named and labelled for the
// new epoch): from the job's image plus the bundle's filesystem layer, or from the
// bundle's snapshot image; the CRIU images are placed where the engine looks, and the
// container is started from them; or a standby container made from the same bundle
// ahead of time (docker-standby.ts) is claimed and started. What the start leaves behind (containerd's copy of
// the images, the engine's) is removed after the restore returned, so the start is
// reported without waiting for it; a checkpoint of the new attempt waits for it.
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Assignment } from '../state/views.js';
import { bundlePaths, readBundleMeta, type BundleMeta, type RunConfig } from './checkpoint-bundle.js';
import { checkpointFingerprint, removeCheckpointLeftovers } from './ctrd-leftovers.js';
import type { DockerContext } from './docker-context.js';
import { deleteCheckpoint, engineCheckpointDir, startFromCheckpoint } from './docker-checkpoint.js';
import { describeError } from './docker-errors.js';
import { ensureImage, hasImage, loadImage } from './docker-images.js';
import { restoredRunConfig } from './docker-run-config.js';
import { linkTree } from '../util/link-tree.js';
import { overlayUpperDir, unpackLayer } from './overlay-layer.js';
import { PAGES_IMAGE, referencePages, unreferencePages } from './pages-by-reference.js';
import { runKey, type RunKey } from './runtime.js';

export type RestoreResult =
  | {
      restored: true;
      durationMs: number;
      containerId: string;
      logOffset: number;
      /** Settles once the copies the start left behind are removed (never rejects; errors are logged): how many containerd copies went. */
      cleanedUp: Promise<{ leftoversRemoved: number }>;
      /** Whether a standby container made ahead from this bundle was claimed (docker-standby.ts). */
      fromStandby?: boolean;
      /** How CRIU read the memory page images: through links to the bundle's files (pages-by-reference.ts), or from files placed in the engine's folder. */
      pages?: 'linked' | 'placed';
      /** Where durationMs went, ms by step, in order: container (image, create, filesystem layer, CRIU images placed) or standby (a standby container claimed instead), log (the inherited output), start (the engine's start from the images). */
      steps?: Record<string, number>;
    }
  | { restored: false; reason: string };

/** A container made from a bundle, its CRIU images in place, not started: for a restore now, or a standby (docker-standby.ts). */
export interface StagedContainer {
  container: Docker.Container;
  /** Where the engine reads the CRIU images of the container's checkpoint. */
  target: string;
  /** Of the bundle's images: containerd's copy of them is recognized by it after the start (ctrd-leftovers.ts). */
  fingerprint: string;
  /** The snapshot image this staging loaded, which goes with the container. */
  loadedImage?: string;
  /** Whether the memory page images in `target` are links to the bundle's (pages-by-reference.ts). */
  pagesLinked: boolean;
}

type CreateFrom = (image: string, run: RunConfig, opts: { snapshot?: boolean }) => Promise<Docker.Container>;

/**
 * Makes the container a bundle resumes in: from the job's image plus the bundle's
 * filesystem layer, or from its snapshot image; then links the CRIU images where the
 * engine looks. `made` hears of the container and a loaded image at once, so that a
 * failure after them can remove them.
 */
export async function stageFromBundle(
  ctx: DockerContext,
  meta: BundleMeta,
  bundleDir: string,
  engineInfo: Promise<{ rootDir: string }>,
  create: CreateFrom,
  made: (what: { container?: string; image?: string }) => void,
): Promise<StagedContainer> {
  const paths = bundlePaths(bundleDir);
  const run = restoredRunConfig(meta.run, ctx.limits);
  let container: Docker.Container;
  let loadedImage: string | undefined;
  if (meta.filesystem === 'layer') {
    // The job's image plus the dump's layer unpacked into the new container's upper directory.
    await ensureImage(ctx.docker, meta.run.baseImage, ctx.images, ctx.log, ctx.clock);
    const base = (await ctx.docker.getImage(meta.run.baseImage).inspect()) as { RootFS?: { Layers?: string[] } };
    const here = base.RootFS?.Layers ?? [];
    if (here.length !== meta.baseDiffIds.length || here.some((id, i) => id !== meta.baseDiffIds[i])) {
      throw new Error(`image ${meta.run.baseImage} on this engine is not the one the checkpoint was taken on (its layers differ): the checkpoint's filesystem layer does not apply to it`);
    }
    container = await create(meta.run.baseImage, run, {});
    made({ container: container.id });
    const upper = overlayUpperDir(await container.inspect());
    if (upper === null) throw new Error('the bundle holds an overlay2 layer, and this engine does not use the overlay2 storage driver');
    await unpackLayer(paths.layer, upper);
  } else {
    const snapshot = meta.snapshotImage;
    if (snapshot === null) throw new Error('the bundle holds image.tar but names no snapshot image');
    if (await ensureSnapshotImage(ctx, meta, snapshot.id, paths.image)) {
      loadedImage = snapshot.id;
      made({ image: loadedImage });
    }
    container = await create(snapshot.id, run, { snapshot: true });
    made({ container: container.id });
  }
  const target = engineCheckpointDir((await engineInfo).rootDir, container.id, meta.checkpointName);
  await mkdir(join(target, '..'), { recursive: true });
  // Linked, not copied (CRIU images are only read): the bundle may go once the start
  // returned. The memory pages are read from the bundle itself through symbolic links,
  // not from Docker's two copies of them (pages-by-reference.ts).
  const linkPages = ctx.pagesByReference.usable;
  await linkTree(paths.checkpoint, target, linkPages ? (name) => PAGES_IMAGE.test(name) : undefined);
  const pagesLinked = linkPages && (await referencePages(target, paths.checkpoint)) > 0;
  const fingerprint = await checkpointFingerprint(paths.checkpoint);
  return { container, target, fingerprint, pagesLinked, ...(loadedImage === undefined ? {} : { loadedImage }) };
}

/**
 * Does not throw: on failure whatever it made is removed, the reason comes back, and
 * the caller starts the attempt from scratch instead. A standby container made from
 * this very bundle (docker-standby.ts) is claimed instead of making one: the restore
 * is then the engine's start alone.
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
    // The same epoch: the attempt's own checkpoint, after its box stopped it (a reboot).
    if (meta.epoch > key.epoch) throw new Error(`the bundle comes from epoch ${meta.epoch}; it can only resume that epoch or a later one, not ${key.epoch}`);
    const existing = await containers.inspect(key);
    if (existing !== null) {
      if (existing.State.Running) {
        log.info(fields, 'the restored container of this attempt runs already; watching it');
        containers.watch(key, existing.Id, onExit);
        return { restored: true, durationMs: ctx.clock.monotonic() - startedAt, containerId: existing.Id, logOffset: meta.logOffset, cleanedUp: Promise.resolve({ leftoversRemoved: 0 }) };
      }
      await containers.remove(existing.Id);
    }
    const steps: Record<string, number> = {};
    let stepFrom = ctx.clock.monotonic();
    const step = (name: string): void => {
      const now = ctx.clock.monotonic();
      steps[name] = Math.round(now - stepFrom);
      stepFrom = now;
    };
    let staged = await claimStandby(ctx, key, bundleDir);
    if (staged !== null) {
      created = staged.container.id;
      loadedImage = staged.loadedImage;
      step('standby');
    } else {
      const made = (what: { container?: string; image?: string }): void => {
        created = what.container ?? created;
        loadedImage = what.image ?? loadedImage;
      };
      staged = await stageFromBundle(ctx, meta, bundleDir, engineInfo, (image, run, opts) => containers.create(key, image, run, opts), made);
      step('container');
    }
    const { container, target, fingerprint } = staged;
    // The output up to the checkpoint, shown before what the restored processes write:
    // at most the tail a bundle keeps, whatever the bundle holds.
    await ctx.logs.inherit(key, paths.log, meta.logOffset);
    step('log');
    startTried = true;
    const pages = await startWithPages(ctx, staged, meta.checkpointName, paths.checkpoint, fields);
    step('start');
    containers.watch(key, container.id, onExit);
    const cleanedUp = cleanUpAfterStart(ctx, key, container, meta.checkpointName, fingerprint);
    const durationMs = ctx.clock.monotonic() - startedAt;
    log.info({ ...fields, container: container.id.slice(0, 12), durationMs: Math.round(durationMs), steps, pages }, 'restored from checkpoint');
    return { restored: true, durationMs, containerId: container.id, logOffset: meta.logOffset, cleanedUp, steps, pages, fromStandby: steps.standby !== undefined };
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
 * Starts the staged container from its images. When the start fails while the page
 * images are links to the bundle's (pages-by-reference.ts), they are put in place as
 * files and the start is tried once more; if that one succeeds, links are not made
 * again on this node. Says how CRIU read the pages.
 */
async function startWithPages(ctx: DockerContext, staged: StagedContainer, name: string, source: string, fields: Record<string, unknown>): Promise<'linked' | 'placed'> {
  const { container, target } = staged;
  const start = (): Promise<void> =>
    startFromCheckpoint(container, name, target, {
      clock: ctx.clock,
      // Each retry waits 0.7 s or more: worth seeing in the log when a restore is slow.
      onRetry: (err) => ctx.log.warn({ ...fields, reason: describeError(err) }, 'the engine refused the start from the checkpoint for now; retrying'),
    });
  try {
    await start();
    return staged.pagesLinked ? 'linked' : 'placed';
  } catch (err) {
    if (!staged.pagesLinked || (await unreferencePages(target, source)) === 0) throw err;
    ctx.log.warn({ ...fields, reason: describeError(err) }, 'the start with the memory pages linked to the bundle failed; trying again with them in the engine folder');
    await start();
    if (ctx.pagesByReference.usable) {
      ctx.pagesByReference.usable = false;
      ctx.log.warn({ ...fields, target }, "CRIU cannot read a checkpoint's memory pages through links on this node (containerd's temp folder and the node's data folder are not on one mount?): its restores place them in the engine folder from now on, as Docker copies them twice (slower)");
    }
    return 'placed';
  }
}

/**
 * The job's standby container, made from this bundle, renamed to be the attempt's;
 * null when there is none for it. A standby that cannot be claimed, or was made from
 * another bundle, is removed, and the restore makes its container as without one.
 */
async function claimStandby(ctx: DockerContext, key: RunKey, bundleDir: string): Promise<StagedContainer | null> {
  const standby = ctx.standbys.get(key.jobId);
  if (standby === undefined) return null;
  ctx.standbys.delete(key.jobId);
  if (standby.bundleDir !== bundleDir) {
    // Made from another checkpoint of the job: of no use once the job runs here.
    await removeStaged(ctx, standby.staged).catch(() => undefined);
    return null;
  }
  try {
    await ctx.containers.claim(standby.staged.container.id, key);
    return standby.staged;
  } catch (err) {
    ctx.log.warn({ job: key.jobId, epoch: key.epoch, reason: describeError(err) }, 'cannot claim the standby container; restoring without it');
    await removeStaged(ctx, standby.staged).catch(() => undefined);
    return null;
  }
}

/** Removes a staged container that was never started, and the snapshot image its staging loaded. */
export async function removeStaged(ctx: DockerContext, staged: { container?: { id: string } | string; loadedImage?: string }): Promise<void> {
  const id = typeof staged.container === 'string' ? staged.container : staged.container?.id;
  if (id !== undefined) await ctx.containers.remove(id);
  if (staged.loadedImage !== undefined) await ctx.containers.removeSnapshotImage(staged.loadedImage);
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
