import type Docker from 'dockerode';

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
 * checkpoint must go in the query with an empty body. Right after a checkpoint,
 * containerd 1.6 intermittently answers "content sha256:… already exists"; a retry
 * after half a second has always worked (HOST.md), so retry a few times.
 */
export async function startFromCheckpoint(container: Docker.Container, name: string, attempts = 5): Promise<void> {
  if (!CHECKPOINT_NAME.test(name)) throw new Error(`invalid checkpoint name '${name}'`);
  for (let attempt = 1; ; attempt++) {
    try {
      await container.start({ _query: { checkpoint: name }, _body: {} } as Docker.ContainerStartOptions);
      return;
    } catch (err) {
      if (!isAlreadyExists(err) || attempt >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export async function deleteCheckpoint(container: Docker.Container, name: string): Promise<void> {
  await checkpointApi(container).deleteCheckpoint(name);
}

/**
 * Where an engine keeps a container's checkpoint: Docker 20.10 starts a container only
 * from this folder (a custom --checkpoint-dir is refused at start, moby#37344), so a
 * checkpoint made elsewhere is copied here before the start (HOST.md).
 */
export function engineCheckpointDir(dockerRootDir: string, containerId: string, name: string): string {
  if (!/^[0-9a-f]{64}$/.test(containerId)) throw new Error(`'${containerId}' is not a full container id`);
  if (!CHECKPOINT_NAME.test(name)) throw new Error(`invalid checkpoint name '${name}'`);
  return `${dockerRootDir}/containers/${containerId}/checkpoints/${name}`;
}
