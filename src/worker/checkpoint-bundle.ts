// A checkpoint bundle on disk: everything a Docker engine on another box needs to
// resume an attempt where it was frozen.
//
//   <bundle>/checkpoint/   CRIU images (as in <DockerRootDir>/containers/<id>/checkpoints/<name>/)
//   <bundle>/layer.tar     the filesystem at the instant of the dump as one overlay2
//                          layer over the job's image (overlay-layer.ts), or, where the
//                          engine does not use overlay2:
//   <bundle>/image.tar     `docker save` of the snapshot image (`docker commit`)
//   <bundle>/log           the attempt's output (stdout and stderr in order) up to the dump
//   <bundle>/meta.json     BundleMeta: how to recreate the container, where the log stops
//
// A bundle arrives from another node, so meta.json is parsed as untrusted input.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECKPOINT_NAME } from './docker-checkpoint.js';

export const BUNDLE_VERSION = 1;

export const bundlePaths = (dir: string) => ({
  checkpoint: join(dir, 'checkpoint'),
  image: join(dir, 'image.tar'),
  layer: join(dir, 'layer.tar'),
  log: join(dir, 'log'),
  meta: join(dir, 'meta.json'),
});

/** The container settings a restored container must share with the dumped one. */
export interface RunConfig {
  /** The image the job asked for (the snapshot image is built on it). */
  baseImage: string;
  cmd: string[];
  /** "KEY=value" entries, as Docker takes them. */
  env: string[];
  workingDir: string;
  memoryBytes: number | null;
  nanoCpus: number | null;
}

export interface BundleMeta {
  version: number;
  jobId: string;
  epoch: number;
  node: string;
  checkpointName: string;
  /** Milliseconds since the epoch, at the freeze. */
  createdAt: number;
  /** Bytes of the attempt's log (stdout and stderr in order) written before the freeze. */
  logOffset: number;
  /** The snapshot image image.tar holds (docker commit); null in a layer bundle made from the hook's copy. */
  snapshotImage: { ref: string; id: string } | null;
  run: RunConfig;
  /** Engine that made the dump; CRIU images restore only on compatible engines and kernels. */
  dockerVersion: string;
  /**
   * How many of the snapshot image's first layers (those of run.baseImage) image.tar
   * leaves out (slim-image.ts): the restoring engine must have the base image.
   */
  baseLayersOmitted: number;
  /** Which file holds the filesystem: layer.tar (overlay2 layer) or image.tar (`docker save`). Absent in older bundles: image. */
  filesystem: 'layer' | 'image';
  /**
   * For a layer bundle: the diff ids of run.baseImage's layers at the dump. A restore
   * refuses a base image that differs (the tag may name a newer import by then).
   */
  baseDiffIds: string[];
}

function fail(field: string, message: string): never {
  throw new Error(`bundle meta.json: ${field} ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Record<string, unknown>, field: string, pattern?: RegExp): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '') fail(field, 'must be a non-empty string');
  if (pattern && !pattern.test(v)) fail(field, `"${v.slice(0, 80)}" does not match ${String(pattern)}`);
  return v;
}

function int(o: Record<string, unknown>, field: string, min: number): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(field, `must be an integer >= ${min}`);
  return v;
}

function intOrNull(o: Record<string, unknown>, field: string): number | null {
  return o[field] === null ? null : int(o, field, 1);
}

function oneOf<T extends string>(o: Record<string, unknown>, field: string, allowed: readonly T[]): T {
  const v = o[field];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) fail(field, `must be one of ${allowed.join(', ')}`);
  return v as T;
}

function diffIds(o: Record<string, unknown>, field: string): string[] {
  const v = strings(o, field);
  if (!v.every((id) => /^sha256:[0-9a-f]{64}$/.test(id))) fail(field, 'must be sha256 digests');
  return v;
}

function strings(o: Record<string, unknown>, field: string): string[] {
  const v = o[field];
  if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string' && !s.includes('\0'))) fail(field, 'must be an array of strings');
  return v.slice();
}

export function parseBundleMeta(input: unknown): BundleMeta {
  if (!isRecord(input)) fail('(root)', 'must be an object');
  const version = int(input, 'version', 1);
  if (version !== BUNDLE_VERSION) fail('version', `is ${version}; this workrs reads version ${BUNDLE_VERSION}`);
  const snapshot = input.snapshotImage;
  const filesystem = input.filesystem === undefined ? 'image' : oneOf(input, 'filesystem', ['layer', 'image'] as const);
  if (!isRecord(snapshot) && !(snapshot === null && filesystem === 'layer')) fail('snapshotImage', filesystem === 'layer' ? 'must be an object or null' : 'must be an object');
  const run = input.run;
  if (!isRecord(run)) fail('run', 'must be an object');
  const cmd = strings(run, 'cmd');
  if (cmd.length === 0) fail('run.cmd', 'must not be empty');
  return {
    version,
    jobId: str(input, 'jobId'),
    epoch: int(input, 'epoch', 1),
    node: str(input, 'node'),
    checkpointName: str(input, 'checkpointName', CHECKPOINT_NAME),
    createdAt: int(input, 'createdAt', 0),
    logOffset: int(input, 'logOffset', 0),
    snapshotImage: isRecord(snapshot) ? { ref: str(snapshot, 'ref'), id: str(snapshot, 'id', /^sha256:[0-9a-f]{64}$/) } : null,
    run: {
      baseImage: str(run, 'baseImage'),
      cmd,
      env: strings(run, 'env'),
      workingDir: str(run, 'workingDir', /^\//),
      memoryBytes: intOrNull(run, 'memoryBytes'),
      nanoCpus: intOrNull(run, 'nanoCpus'),
    },
    dockerVersion: str(input, 'dockerVersion'),
    baseLayersOmitted: input.baseLayersOmitted === undefined ? 0 : int(input, 'baseLayersOmitted', 0),
    filesystem,
    baseDiffIds: input.baseDiffIds === undefined ? [] : diffIds(input, 'baseDiffIds'),
  };
}

/** meta.json is a few hundred bytes plus the job's command and environment (at most 256 KiB). */
const BUNDLE_META_MAX_BYTES = 1024 * 1024;

export async function readBundleMeta(dir: string): Promise<BundleMeta> {
  const path = bundlePaths(dir).meta;
  let text: string;
  try {
    const sizeBytes = (await stat(path)).size;
    if (sizeBytes > BUNDLE_META_MAX_BYTES) throw new Error(`it is ${sizeBytes} bytes, more than ${BUNDLE_META_MAX_BYTES}`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`no readable bundle metadata at ${path}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`bundle metadata ${path} is not JSON`, { cause: err });
  }
  return parseBundleMeta(json);
}

export async function writeBundleMeta(dir: string, meta: BundleMeta): Promise<void> {
  await writeFile(bundlePaths(dir).meta, `${JSON.stringify(meta, null, 2)}\n`);
}

/** Total size of the regular files under `dir`. */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await folderBytes(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}
