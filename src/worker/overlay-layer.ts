// A checkpoint's filesystem as one overlay2 layer, not as a `docker save` image.
//
// `docker commit` (while the job is frozen) makes an image whose top layer holds what
// the job changed. With the overlay2 storage driver that layer is a plain directory
// (GraphDriver.Data.UpperDir) in overlay's own format: a deleted file is a 0:0
// character device, a directory replaced as a whole carries the xattr
// trusted.overlay.opaque=y. `docker save` would read every layer of the image (the
// ~100 MB of a Python image at each checkpoint) to write one tar; this tars the top
// layer's directory alone with GNU tar (--xattrs keeps the overlay attributes,
// --numeric-owner the job's uids). A restore creates the container from the job's
// image and unpacks the layer into the new container's upper directory before it
// starts from the CRIU images: the same files, whiteouts and attributes, so the
// overlay mount the engine makes at start shows the filesystem of the dump.
//
// Both ends need overlay2 and GNU tar; elsewhere the runtime falls back to the
// `docker save` bundle (slim-image.ts).
import { spawn } from 'node:child_process';

/** The overlay2 upper directory from an image or container inspect, or null (another driver). */
export function overlayUpperDir(inspect: { GraphDriver?: { Name?: unknown; Data?: unknown } }): string | null {
  const driver = inspect.GraphDriver;
  if (driver?.Name !== 'overlay2' || typeof driver.Data !== 'object' || driver.Data === null) return null;
  const upper = (driver.Data as Record<string, unknown>).UpperDir;
  return typeof upper === 'string' && upper.startsWith('/') && !upper.includes('..') ? upper : null;
}

/** GNU tar's options that keep what overlay needs: owners by number, modes, devices, xattrs. */
const TAR_KEEP = ['--xattrs', '--xattrs-include=*', '--numeric-owner'];

function runTar(args: string[], what: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < 4096) stderr += s;
    });
    child.on('error', (err) => reject(new Error(`${what}: cannot run tar: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${what}: tar exited with ${code ?? signal}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** Tars the layer directory `upperDir` into `tarPath`. */
export async function packLayer(upperDir: string, tarPath: string, timeoutMs = 600_000): Promise<void> {
  // --sort=name: the same files make the same bytes, so consecutive checkpoints dedupe.
  await runTar([...TAR_KEEP, '--sort=name', '-C', upperDir, '-cf', tarPath, '.'], `packing layer ${upperDir}`, timeoutMs);
}

/**
 * Unpacks `tarPath` into a created, never started container's upper directory.
 * GNU tar refuses member names with `..` and defers symlinks that could redirect later
 * members, so a layer cannot write outside `upperDir`.
 */
export async function unpackLayer(tarPath: string, upperDir: string, timeoutMs = 600_000): Promise<void> {
  await runTar([...TAR_KEEP, '--same-permissions', '--same-owner', '-C', upperDir, '-xf', tarPath], `unpacking layer into ${upperDir}`, timeoutMs);
}
