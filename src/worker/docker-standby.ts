// Standby containers: a takeover prepared ahead on a node that holds a job's checkpoint.
//
// A restore on another box first makes a container (from the job's image, plus the
// checkpoint's filesystem layer unpacked into it) and places the CRIU images, and only
// then asks the engine to start from them: a tenth of a second at 10 MB, nearly half a
// second at 500 MB, on top of the unpacking of the bundle itself. A node holding a
// replica of a running job's newest checkpoint can do all of that while the job still
// runs elsewhere; if the job's box dies and the job lands here, the restore claims the
// container (a rename to the attempt's name, which carries the epoch, since labels cannot
// change) and only the engine's start remains, as in a raw `docker start --checkpoint`.
//
// A standby container is never started by itself and holds no memory; its disk is the
// checkpoint's files once more (the upper layer; the CRIU images are links to the
// bundle). Unclaimed ones are labelled workrs.standby with no epoch: running() and
// adopt() never take them for attempts, and adopt() removes them (the node prepares
// again what it still wants).
import type { DockerContext } from './docker-context.js';
import { readBundleMeta, type RunConfig } from './checkpoint-bundle.js';
import { isNotFound } from './docker-errors.js';
import { LABEL_CLUSTER, LABEL_NODE, LABEL_STANDBY, standbyName } from './docker-names.js';
import { removeStaged, stageFromBundle } from './docker-restore.js';

/**
 * Makes the job's standby container from the bundle in `bundleDir` (which must stay
 * until the standby is claimed or discarded), replacing one made before. `tag` names
 * the checkpoint on the container's label. Throws when it cannot; nothing stays then.
 */
export async function prepareStandby(ctx: DockerContext, jobId: string, bundleDir: string, tag: string): Promise<void> {
  await discardStandby(ctx, jobId);
  await removeStrayStandby(ctx, jobId);
  const meta = await readBundleMeta(bundleDir);
  if (meta.jobId !== jobId) throw new Error(`the bundle is a checkpoint of job ${meta.jobId}, not ${jobId}`);
  const made: { container?: string; loadedImage?: string } = {};
  try {
    const create = (image: string, run: RunConfig, opts: { snapshot?: boolean }) => ctx.containers.createStandby(jobId, tag, image, run, opts);
    const staged = await stageFromBundle(ctx, meta, bundleDir, ctx.containers.engineInfo(), create, (what) => {
      made.container = what.container ?? made.container;
      made.loadedImage = what.image ?? made.loadedImage;
    });
    ctx.standbys.set(jobId, { bundleDir, staged });
  } catch (err) {
    await removeStaged(ctx, made).catch(() => undefined);
    throw err;
  }
}

/** Removes the job's standby container, if it has one here; never throws. */
export async function discardStandby(ctx: DockerContext, jobId: string): Promise<void> {
  const standby = ctx.standbys.get(jobId);
  if (standby === undefined) return;
  ctx.standbys.delete(jobId);
  try {
    await removeStaged(ctx, standby.staged);
  } catch (err) {
    ctx.log.warn({ job: jobId, err }, 'cannot remove a standby container');
  }
}

/** A container under the standby name that this process does not know (an earlier run's): removed if it is this node's. */
async function removeStrayStandby(ctx: DockerContext, jobId: string): Promise<void> {
  let labels: Record<string, string> | undefined;
  let id: string;
  try {
    const info = await ctx.docker.getContainer(standbyName(jobId)).inspect();
    labels = info.Config.Labels;
    id = info.Id;
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  const ours = labels?.[LABEL_STANDBY] !== undefined && labels[LABEL_NODE] === ctx.nodeId && (ctx.clusterId === undefined || labels[LABEL_CLUSTER] === ctx.clusterId);
  if (!ours) throw new Error(`container ${standbyName(jobId)} exists and is not a standby of node ${ctx.nodeId}`);
  await ctx.containers.remove(id);
}
