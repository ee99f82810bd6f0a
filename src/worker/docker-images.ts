// Images on this node's Docker engine: whether one is there, `docker load` of a
// `docker save` stream, and making sure a job's image is present before its
// container is created, loading it from the cluster's imported images if needed.
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../util/clock.js';
import { isNotFound } from './docker-errors.js';
import { UnstartableError } from './unstartable.js';

/**
 * Where an image the engine lacks can come from: a `docker save` stream that
 * provides `ref`, or null when the cluster has none. It may throw when a copy exists
 * but cannot be fetched now.
 */
export type ImageSource = (ref: string) => Promise<Readable | null>;

export async function hasImage(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/**
 * `docker load`. The engine reports a bad archive in its progress stream, not as an
 * HTTP error; a source that fails midway (a chunk that does not match its hash)
 * aborts the request, which would otherwise wait for the rest of the body for ever.
 */
export async function loadImage(docker: Docker, tar: Readable): Promise<void> {
  const abort = new AbortController();
  let sourceError: unknown;
  const onSourceError = (err: unknown): void => {
    sourceError = err;
    abort.abort();
  };
  tar.once('error', onSourceError);
  try {
    const progress = (await docker.loadImage(tar, { quiet: true, abortSignal: abort.signal })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(progress, (err: Error | null, events: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
        const failed = events?.find((e) => e.error !== undefined || e.errorDetail !== undefined);
        if (err) reject(err);
        else if (failed) reject(new Error(`docker load: ${failed.errorDetail?.message ?? failed.error ?? 'unknown error'}`));
        else resolve();
      });
    });
  } catch (err) {
    if (sourceError !== undefined) throw new Error('docker load: reading the image tar failed', { cause: sourceError });
    throw err;
  } finally {
    tar.off('error', onSourceError);
  }
}

/**
 * Makes sure the engine has `ref` before a container is created from it: present, or
 * loaded from `source`. Throws UnstartableError when no import provides it (the
 * attempt fails instead of waiting for an image that will not come), or when the
 * loaded tar does not provide it after all.
 */
export async function ensureImage(docker: Docker, ref: string, source: ImageSource | undefined, log: Logger, clock: Pick<Clock, 'monotonic'> = systemClock): Promise<'present' | 'loaded'> {
  if (await hasImage(docker, ref)) return 'present';
  const tar = source === undefined ? null : await source(ref);
  if (tar === null) {
    throw new UnstartableError(`image ${ref} is not on this node's Docker engine and no imported image provides it (import it with: workrs images import FILE.tar)`);
  }
  const started = clock.monotonic();
  try {
    await loadImage(docker, tar);
  } finally {
    tar.destroy();
  }
  if (!(await hasImage(docker, ref))) throw new UnstartableError(`docker load of the imported image did not provide ${ref}`);
  log.info({ image: ref, durationMs: Math.round(clock.monotonic() - started) }, 'image loaded from the cluster');
  return 'loaded';
}
