// An exited attempt's result on Docker: its log and declared outputs, copied out of
// its container (which still exists), into a result archive (result-archive.ts).
import { pipeline as pipelineCallback } from 'node:stream';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { extractTar } from '../util/tar-extract.js';
import type { DockerContext } from './docker-context.js';
import { isNotFound } from './docker-errors.js';
import { jobFolderName } from './docker-names.js';
import { OutputBudget, outputArchiveName, writeResultArchive } from './result-archive.js';
import type { RunKey } from './runtime.js';

/**
 * Collects the exited attempt's log and declared outputs into a result archive at
 * `tarPath`. A container that vanished leaves only the inherited log and the exit code.
 */
export async function exportResult(ctx: DockerContext, key: RunKey, exitCode: number, outputs: readonly string[], tarPath: string): Promise<{ missing: string[]; failure: string | null }> {
  await mkdir(ctx.stagingDir, { recursive: true });
  const workDir = await mkdtemp(join(ctx.stagingDir, `result-${jobFolderName(key.jobId)}-e${key.epoch}-`));
  let collected: { missing: string[]; failure: string | null };
  try {
    const info = await ctx.containers.inspect(key);
    const logPath = join(workDir, 'log');
    await ctx.logs.writeTail(key, info?.Id ?? null, logPath);
    const outputsDir = join(workDir, 'outputs');
    collected = info === null ? { missing: [...outputs], failure: null } : await collectOutputs(ctx, key, info.Id, outputs, outputsDir);
    // Over the cap: what was collected goes, the log and exit code stay.
    if (collected.failure !== null) await rm(outputsDir, { recursive: true, force: true });
    await writeResultArchive({ tarPath, workDir, logPath, exitCode, outputsDir });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  if (collected.missing.length > 0) ctx.log.info({ job: key.jobId, epoch: key.epoch, missing: collected.missing }, 'result: declared outputs that do not exist');
  if (collected.failure !== null) ctx.log.warn({ job: key.jobId, epoch: key.epoch, reason: collected.failure }, 'result: the outputs exceed the cap; the attempt fails');
  return collected;
}

/**
 * Copies the declared outputs out of the exited container into `outputsDir`, counted
 * against the node's result cap while they stream: past it, the copy stops and the
 * reason comes back as `failure`.
 */
async function collectOutputs(ctx: DockerContext, key: RunKey, containerId: string, outputs: readonly string[], outputsDir: string): Promise<{ missing: string[]; failure: string | null }> {
  const missing: string[] = [];
  const budget = new OutputBudget(ctx.limits.maxResultBytes);
  for (const output of outputs) {
    let archive: NodeJS.ReadableStream;
    try {
      archive = (await ctx.docker.getContainer(containerId).getArchive({ path: output })) as NodeJS.ReadableStream;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      missing.push(output);
      continue;
    }
    // Docker names the entries from the output's last segment: put them under its path.
    const name = outputArchiveName(output);
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/') + 1) : '';
    const metered = budget.meter(output);
    // An error (the cap) reaches extractTar through `metered`, and ends the engine's stream.
    pipelineCallback(archive, metered, () => undefined);
    try {
      const extracted = await extractTar(metered, outputsDir, { rename: (entry) => `${parent}${entry}` });
      if (extracted.skipped.length > 0) ctx.log.info({ job: key.jobId, epoch: key.epoch, output, skipped: extracted.skipped.slice(0, 10) }, 'result: entries not collected');
    } catch (err) {
      metered.destroy();
      // The reader may wrap the error; the budget knows whether the cap stopped it.
      if (budget.exceeded !== null) return { missing, failure: budget.exceeded.message };
      throw err;
    }
  }
  return { missing, failure: null };
}
