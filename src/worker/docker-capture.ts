// A checkpoint on Docker: the attempt's memory and files captured at one instant
// (docs/host.md), then exported as a bundle (checkpoint-bundle.ts) to the staging
// folder, and the engine's copies removed. Two ways to capture:
// - with the CRIU capture hook (criu-hook.ts): `docker checkpoint create
//   --leave-running` alone; the hook copies the container's overlay upper directory
//   and its log while CRIU holds the tasks frozen. The job is frozen only as long as
//   the dump (and that copy), not while the engine files the dump away;
// - without it (not root, another storage driver, the hook not run): `pause` → CRIU
//   dump leaving it running → `commit` of its filesystem → `unpause`.
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import { WORK_DIR } from '../state/spec.js';
import { BUNDLE_VERSION, bundlePaths, folderBytes, writeBundleMeta, type BundleMeta } from './checkpoint-bundle.js';
import { ignoreGoneOrBusy, LABEL_IMAGE } from './docker-containers.js';
import type { DockerContext } from './docker-context.js';
import { CHECKPOINT_NAME, createCheckpoint, deleteCheckpoint, engineCheckpointDir, listCheckpoints } from './docker-checkpoint.js';
import { describeError, isNotFound } from './docker-errors.js';
import { jobFolderName, snapshotImageRef } from './docker-names.js';
import { mergeJsonFileLogs, placeRequest, readCapture } from './criu-hook.js';
import { freezerOf, timeFrozen } from './freeze-watch.js';
import { linkTree } from '../util/link-tree.js';
import { overlayUpperDir, packLayer } from './overlay-layer.js';
import { runKey, type CheckpointResult, type RunKey } from './runtime.js';
import { slimSavedImage } from './slim-image.js';

/** Captures the attempt and exports it as bundle `<staging>/<job>/e<epoch>-<name>`. */
export async function exportCheckpoint(ctx: DockerContext, key: RunKey, name: string): Promise<CheckpointResult> {
  if (!CHECKPOINT_NAME.test(name)) throw new Error(`invalid checkpoint name '${name}' (at least 2 of [a-zA-Z0-9_.-], starting with a letter or digit)`);
  // A restored attempt: the engine's copy of the checkpoint it started from may have this name.
  await ctx.restoreCleanups.get(runKey(key));
  const startedAt = ctx.clock.monotonic();
  const engine = await ctx.containers.engineInfo();
  const container = await ctx.containers.get(key);
  const info = await container.inspect();
  if (!info.State.Running || info.State.Paused) throw new Error(`job ${key.jobId} epoch ${key.epoch} is not running (${info.State.Status}): nothing to checkpoint`);
  const bundleDir = join(ctx.stagingDir, jobFolderName(key.jobId), `e${key.epoch}-${name}`);
  if (await exists(bundleDir)) throw new Error(`bundle ${bundleDir} exists already: checkpoint names must not be reused within an attempt`);
  if ((await listCheckpoints(container)).includes(name)) {
    ctx.log.warn({ job: key.jobId, epoch: key.epoch, name }, 'removing a stale engine checkpoint of the same name');
    await deleteCheckpoint(container, name);
  }
  const ref = snapshotImageRef(key, name);
  const fields = { job: key.jobId, epoch: key.epoch, name };

  try {
    const paths = bundlePaths(bundleDir);
    await mkdir(bundleDir, { recursive: true });
    const containerLogPath = join(bundleDir, '.container-log');
    const capture = await captureAttempt(ctx, key, container, info, name, ref, containerLogPath, join(bundleDir, '.capture'));
    const frozenMs = capture.frozenMs;
    // Linked, not copied: the engine's names go with dropEngineCopies below.
    await linkTree(engineCheckpointDir(engine.rootDir, info.Id, name), paths.checkpoint);
    const run = runConfigFromContainer(info);
    const saved =
      capture.files.kind === 'copy'
        ? await packCopiedLayer(ctx, capture.files.upperCopy, info.Image, paths)
        : await exportFilesystem(ctx, `${ref.repo}:${ref.tag}`, run.baseImage, paths, bundleDir);
    if (capture.files.kind === 'copy') await rm(capture.files.captureDir, { recursive: true, force: true });
    // What the attempt inherited, then what it printed up to the freeze: its tail.
    const logOffset = await ctx.logs.writeCheckpointTail(key, containerLogPath, paths.log);
    await rm(containerLogPath, { force: true });
    const snapshotId = capture.files.kind === 'commit' ? capture.files.snapshotId : null;
    const meta: BundleMeta = {
      version: BUNDLE_VERSION,
      jobId: key.jobId,
      epoch: key.epoch,
      node: ctx.nodeId,
      checkpointName: name,
      createdAt: capture.frozenAt,
      logOffset,
      snapshotImage: snapshotId === null ? null : { ref: `${ref.repo}:${ref.tag}`, id: snapshotId },
      run,
      dockerVersion: engine.version,
      baseLayersOmitted: saved.baseLayersOmitted,
      filesystem: saved.filesystem,
      baseDiffIds: saved.baseDiffIds,
    };
    await writeBundleMeta(bundleDir, meta);
    const criuBytes = await folderBytes(paths.checkpoint);
    const imageBytes = (await stat(saved.filesystem === 'layer' ? paths.layer : paths.image)).size;
    const bytes = await folderBytes(bundleDir);
    await dropEngineCopies(ctx, container, name, snapshotId);
    const how = capture.files.kind === 'copy' ? 'hook' : 'pause';
    const result = { bundleDir, name, durationMs: ctx.clock.monotonic() - startedAt, frozenMs, capture: how, bytes, criuBytes, imageBytes, logOffset: meta.logOffset } as const;
    ctx.log.info({ ...fields, durationMs: Math.round(result.durationMs), frozenMs: Math.round(frozenMs), capture: how, bytes }, 'checkpoint exported');
    return result;
  } catch (err) {
    await rm(bundleDir, { recursive: true, force: true });
    // Whatever got made before the failure: the dump, the snapshot image (by its tag).
    await dropEngineCopies(ctx, container, name, `${ref.repo}:${ref.tag}`).catch((e: unknown) => ctx.log.error({ ...fields, err: e }, 'cannot clean up after a failed checkpoint'));
    throw new Error(`checkpoint ${name} of job ${key.jobId} epoch ${key.epoch} failed`, { cause: err });
  }
}

/** How the files of the instant were kept: a snapshot image (commit) or the hook's copy of the upper directory. */
type CapturedFiles = { kind: 'commit'; snapshotId: string } | { kind: 'copy'; upperCopy: string; captureDir: string };
type Capture = { files: CapturedFiles; frozenMs: number; frozenAt: number };

/** The frozen part: the hook's way when it can, else pause → dump → commit → unpause. */
async function captureAttempt(
  ctx: DockerContext,
  key: RunKey,
  container: Docker.Container,
  info: Docker.ContainerInspectInfo,
  name: string,
  ref: { repo: string; tag: string },
  logPath: string,
  captureDir: string,
): Promise<Capture> {
  const id = runKey(key);
  if (ctx.frozen.has(id) || ctx.capturing.has(id)) throw new Error(`job ${key.jobId} epoch ${key.epoch} is ${ctx.frozen.has(id) ? 'frozen (self-fencing)' : 'being checkpointed'}: no checkpoint now`);
  ctx.capturing.add(id);
  try {
    const upperDir = overlayUpperDir(info);
    if (upperDir !== null && info.LogPath.startsWith('/') && (await ctx.captureHook.usable())) {
      const hooked = await captureWithHook(ctx, id, container, { initPid: info.State.Pid, upperDir, dest: captureDir, logPath: info.LogPath }, name, logPath);
      if (hooked !== null) return hooked;
    }
    return await captureFrozen(ctx, id, container, name, ref, logPath);
  } finally {
    ctx.capturing.delete(id);
    ctx.runningInCapture.delete(id);
    // Frozen by self-fencing during a hooked capture (which does not pause): freeze now.
    if (ctx.frozen.has(id)) await pauseIfRunning(container).catch((err: unknown) => ctx.log.error({ job: key.jobId, epoch: key.epoch, err }, 'cannot freeze a job fenced during its checkpoint'));
  }
}

/**
 * The dump alone, the hook copying the files while CRIU holds the job frozen; null
 * when the hook did not run (then it is not used again, and the engine's dump of this
 * attempt is removed so that the pausing capture can take its place).
 */
async function captureWithHook(ctx: DockerContext, id: string, container: Docker.Container, req: Parameters<typeof placeRequest>[0], name: string, logPath: string): Promise<Capture | null> {
  await mkdir(req.dest);
  const removeRequest = await placeRequest(req);
  const calledAt = ctx.clock.now();
  const calledAtMono = ctx.clock.monotonic();
  // The hook marks its copy before CRIU lets the job go: a thaw seen after the mark is
  // the job running again, and from then on self-fencing pauses it at once instead of
  // when the engine's call returns (docker pause works while the call files the dump).
  const onThaw = (): void => {
    if (ctx.runningInCapture.has(id) || !(existsSync(join(req.dest, 'done')) || existsSync(join(req.dest, 'failed')))) return;
    ctx.runningInCapture.add(id);
    if (ctx.frozen.has(id)) void pauseIfRunning(container).catch((err: unknown) => ctx.log.error({ err, container: container.id.slice(0, 12) }, 'cannot freeze a job fenced during its checkpoint'));
  };
  let frozenMs: number | null;
  try {
    ({ frozenMs } = await timeFrozen(freezerOf(req.initPid), () => createCheckpoint(container, name, { leaveRunning: true }), { onThaw }));
  } finally {
    await removeRequest();
  }
  const copied = await readCapture(req);
  if (copied === null) {
    ctx.captureHook.disable('the CRIU capture hook did not run for a dump');
    await deleteCheckpoint(container, name);
    await rm(req.dest, { recursive: true, force: true });
    return null;
  }
  await mergeJsonFileLogs(copied.logsDir, copied.logName, logPath);
  // Without a freezer to read, the whole call bounds the freeze.
  return { files: { kind: 'copy', upperCopy: copied.upperCopy, captureDir: req.dest }, frozenMs: frozenMs ?? ctx.clock.monotonic() - calledAtMono, frozenAt: calledAt };
}

async function captureFrozen(ctx: DockerContext, id: string, container: Docker.Container, name: string, ref: { repo: string; tag: string }, logPath: string): Promise<Capture> {
  await container.pause();
  const pausedAt = ctx.clock.monotonic();
  const frozenAt = ctx.clock.now();
  let outcome: { snapshotId: string } | undefined;
  let failure: unknown;
  try {
    await createCheckpoint(container, name, { leaveRunning: true });
    // Both while frozen: the files and the log offset belong to the same instant as
    // the memory. The dump took long enough for the log to take in all the job wrote.
    const [commit] = await Promise.all([
      container.commit({ repo: ref.repo, tag: ref.tag, pause: false }) as Promise<{ Id?: unknown }>,
      ctx.containers.output(container.id, false).then((log) => pipeline(log, createWriteStream(logPath))),
    ]);
    if (typeof commit.Id !== 'string') throw new Error(`docker commit answered without an image id: ${JSON.stringify(commit)}`);
    outcome = { snapshotId: commit.Id };
  } catch (err) {
    failure = err;
  }
  try {
    // Frozen by self-fencing meanwhile: it stays paused (thaw() unpauses it later).
    if (!ctx.frozen.has(id)) await container.unpause();
  } catch (err) {
    // A job left paused is stuck for good: this is worth more than the first error.
    throw new Error(`cannot unpause container ${container.id.slice(0, 12)} after a checkpoint: ${describeError(err)}`, { cause: failure ?? err });
  }
  const frozenMs = ctx.clock.monotonic() - pausedAt;
  if (outcome === undefined) throw failure;
  return { files: { kind: 'commit', snapshotId: outcome.snapshotId }, frozenMs, frozenAt };
}

/** The hook's copy of the upper directory as the bundle's layer.tar, over the layers of the container's image. */
async function packCopiedLayer(ctx: DockerContext, upperCopy: string, imageId: string, paths: ReturnType<typeof bundlePaths>): Promise<{ filesystem: 'layer'; baseLayersOmitted: number; baseDiffIds: string[] }> {
  const base = await baseLayersOf(ctx, imageId);
  if (base === null) throw new Error(`the engine no longer has image ${imageId}, which the checkpointed container runs`);
  await packLayer(upperCopy, paths.layer);
  return { filesystem: 'layer', baseLayersOmitted: base.length, baseDiffIds: base.slice() };
}

/** Pauses the container unless it is paused or gone already (another pause may have come first). */
async function pauseIfRunning(container: Docker.Container): Promise<void> {
  const state = (await container.inspect()).State;
  if (state.Running && !state.Paused) await ignoreGoneOrBusy(container.pause());
}

/** The engine's checkpoint folder and snapshot image are in the bundle now. */
async function dropEngineCopies(ctx: DockerContext, container: Docker.Container, name: string, snapshotImage: string | null): Promise<void> {
  try {
    await deleteCheckpoint(container, name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (snapshotImage !== null) await ctx.containers.removeSnapshotImage(snapshotImage);
}

/**
 * The snapshot image's filesystem into the bundle: its top layer alone (layer.tar)
 * when the engine uses overlay2 and the snapshot is the job's image plus that one
 * layer (overlay-layer.ts); otherwise `docker save` (image.tar, slimmed).
 */
async function exportFilesystem(
  ctx: DockerContext,
  snapshotRef: string,
  baseImage: string,
  paths: ReturnType<typeof bundlePaths>,
  bundleDir: string,
): Promise<{ filesystem: 'layer' | 'image'; baseLayersOmitted: number; baseDiffIds: string[] }> {
  const snapshot = (await ctx.docker.getImage(snapshotRef).inspect()) as { RootFS?: { Layers?: string[] }; GraphDriver?: { Name?: unknown; Data?: unknown } };
  const upper = overlayUpperDir(snapshot);
  const base = await baseLayersOf(ctx, baseImage);
  const layers = snapshot.RootFS?.Layers ?? [];
  const oneLayerOverBase = base !== null && layers.length === base.length + 1 && base.every((id, i) => layers[i] === id);
  if (upper !== null && oneLayerOverBase) {
    await packLayer(upper, paths.layer);
    return { filesystem: 'layer', baseLayersOmitted: base.length, baseDiffIds: base.slice() };
  }
  return { filesystem: 'image', baseLayersOmitted: await saveSnapshot(ctx, snapshotRef, baseImage, paths.image, bundleDir), baseDiffIds: [] };
}

/**
 * `docker save` of the snapshot image into `tarPath`, without the layers of the job's
 * own image when the snapshot is built on them (slim-image.ts); returns how many
 * layers it left out.
 */
async function saveSnapshot(ctx: DockerContext, snapshotRef: string, baseImage: string, tarPath: string, bundleDir: string): Promise<number> {
  const fullPath = `${tarPath}.full`;
  try {
    await pipeline((await ctx.docker.getImage(snapshotRef).get()) as NodeJS.ReadableStream, createWriteStream(fullPath));
    const baseLayers = (await baseLayersOf(ctx, baseImage)) ?? [];
    if (baseLayers.length === 0) {
      await rename(fullPath, tarPath);
      return 0;
    }
    return await slimSavedImage(fullPath, tarPath, baseLayers, join(bundleDir, '.image-work'));
  } finally {
    await rm(fullPath, { force: true });
  }
}

/** The layer diff ids of an image on this engine; null when the engine lacks it or lists none. */
async function baseLayersOf(ctx: DockerContext, image: string): Promise<string[] | null> {
  try {
    const inspected = (await ctx.docker.getImage(image).inspect()) as { RootFS?: { Layers?: string[] } };
    return inspected.RootFS?.Layers ?? null;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** What the dumped container ran, read back from the engine (the truth), for the bundle. */
function runConfigFromContainer(info: Docker.ContainerInspectInfo): BundleMeta['run'] {
  const memory = info.HostConfig.Memory ?? 0;
  const nanoCpus = (info.HostConfig as { NanoCpus?: number }).NanoCpus ?? 0;
  return {
    baseImage: info.Config.Labels?.[LABEL_IMAGE] ?? info.Config.Image,
    cmd: info.Config.Cmd ?? [],
    env: info.Config.Env ?? [],
    workingDir: info.Config.WorkingDir || WORK_DIR,
    memoryBytes: memory > 0 ? memory : null,
    nanoCpus: nanoCpus > 0 ? nanoCpus : null,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
