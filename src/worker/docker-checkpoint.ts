import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { retry } from '../util/backoff.js';
import { systemClock, type Clock } from '../util/clock.js';

/** Checkpoint names Docker accepts: at least 2 of [a-zA-Z0-9][a-zA-Z0-9_.-]. */
export const CHECKPOINT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

// dockerode implements the checkpoint endpoints, but @types/dockerode does not declare them.
interface CheckpointApi {
  createCheckpoint(opts: { CheckpointID: string; Exit: boolean; CheckpointDir?: string }): Promise<unknown>;
  listCheckpoint(opts?: { dir?: string }): Promise<Array<{ Name: string }>>;
  deleteCheckpoint(name: string, opts?: { dir?: string }): Promise<unknown>;
}

function checkpointApi(container: Docker.Container): CheckpointApi {
  return container as unknown as CheckpointApi;
}

/**
 * Dumps a container with CRIU into the engine's checkpoint folder. `leaveRunning`
 * false stops the container after the dump.
 */
export async function createCheckpoint(container: Docker.Container, name: string, opts: { leaveRunning: boolean }): Promise<void> {
  if (!CHECKPOINT_NAME.test(name)) throw new Error(`invalid checkpoint name '${name}'`);
  await checkpointApi(container).createCheckpoint({ CheckpointID: name, Exit: !opts.leaveRunning });
}

export async function listCheckpoints(container: Docker.Container): Promise<string[]> {
  return (await checkpointApi(container).listCheckpoint()).map((c) => c.Name);
}

function isAlreadyExists(err: unknown): boolean {
  return err instanceof Error && /already exists/.test(err.message);
}

/**
 * Starts a container from one of its checkpoints.
 *
 * dockerode's `start({checkpoint})` sends a JSON body, which Docker 20.10 refuses; the
 * checkpoint must go in the query with an empty body. Docker tars the checkpoint
 * folder into containerd's content store and fails with "content sha256:… already
 * exists" when that tar's digest is there already: right after `checkpoint create`,
 * whose own copy containerd keeps until its garbage collection runs (moby#42900; a
 * start straight from the engine's folder failed 5 times over 2 s once in CI). Given
 * the folder, a fresh nonce file goes in before every try, so no two tars are alike
 * (CRIU reads only its own image files); a few tries with back-off remain for the rest.
 */
export async function startFromCheckpoint(container: Docker.Container, name: string, checkpointDir?: string, opts: { attempts?: number; clock?: Clock; onRetry?: (err: unknown) => void } = {}): Promise<void> {
  if (!CHECKPOINT_NAME.test(name)) throw new Error(`invalid checkpoint name '${name}'`);
  const clock = opts.clock ?? systemClock;
  await retry(
    async () => {
      if (checkpointDir !== undefined) await writeFile(join(checkpointDir, RESTORE_NONCE_FILE), randomBytes(16).toString('hex'));
      await container.start({ _query: { checkpoint: name }, _body: {} } as Docker.ContainerStartOptions);
    },
    // About 10 s over the 5 waits, as long as containerd may take to forget its copy.
    {
      attempts: opts.attempts ?? 6,
      sleep: (ms) => clock.sleep(ms),
      backoff: RESTORE_RETRY,
      retryable: (err) => {
        const again = isAlreadyExists(err);
        if (again) opts.onRetry?.(err);
        return again;
      },
    },
  );
}

const RESTORE_RETRY = { baseMs: 700, maxMs: 4_000 };

/** Written into a checkpoint folder before a start from it; not a CRIU image file. */
export const RESTORE_NONCE_FILE = 'workrs-restore-nonce';

export async function deleteCheckpoint(container: Docker.Container, name: string): Promise<void> {
  await checkpointApi(container).deleteCheckpoint(name);
}

/**
 * Where an engine keeps a container's checkpoint: Docker 20.10 starts a container only
 * from this folder (a custom --checkpoint-dir is refused at start, moby#37344), so a
 * checkpoint made elsewhere is copied here before the start (docs/host.md).
 */
export function engineCheckpointDir(dockerRootDir: string, containerId: string, name: string): string {
  if (!/^[0-9a-f]{64}$/.test(containerId)) throw new Error(`'${containerId}' is not a full container id`);
  if (!CHECKPOINT_NAME.test(name)) throw new Error(`invalid checkpoint name '${name}'`);
  return `${dockerRootDir}/containers/${containerId}/checkpoints/${name}`;
}
