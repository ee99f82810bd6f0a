import { readFileSync } from 'node:fs';

// The bundler (scripts/build.mjs) replaces these with literals; a run from source
// (tsx, tap) reads package.json instead.
declare const __WORKRS_VERSION__: string | undefined;
declare const __WORKRS_COMMIT__: string | undefined;

function versionFromPackageJson(): string {
  const url = new URL('../package.json', import.meta.url);
  const parsed: unknown = JSON.parse(readFileSync(url, 'utf8'));
  if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string') {
    return parsed.version;
  }
  throw new Error(`package.json at ${url.pathname} has no version`);
}

export const VERSION: string = typeof __WORKRS_VERSION__ === 'string' ? __WORKRS_VERSION__ : versionFromPackageJson();
export const COMMIT: string = typeof __WORKRS_COMMIT__ === 'string' ? __WORKRS_COMMIT__ : 'source';

/** What `workrs version` and `workrs --version` print. */
export function versionLine(): string {
  return `workrs ${VERSION} (${COMMIT}, node ${process.versions.node}, ${process.platform}-${process.arch})`;
}

/**
 * The replication protocol a build speaks (docs/upgrading.md): the commands it may
 * propose and apply, the shape of its snapshots. A cluster runs at one version, held in
 * its replicated state; a build runs in a cluster whose version is in its range.
 *   1: builds up to b200c26, which carry no version (they announce none);
 *   2: the cluster version itself (setClusterVersion), state checks (checkState),
 *      snapshot format 2.
 * What each version adds is gated in src/state/versions.ts.
 */
export const PROTOCOL_VERSION = 2;
/** The oldest cluster version this build runs in. */
export const PROTOCOL_MIN = 1;

export interface ProtocolRange {
  min: number;
  max: number;
}

/**
 * This build's range. WORKRS_TEST_PROTOCOL_MAX (tests only) lowers its top, so that a
 * test can run a build that does not know the newest commands, as an older one would.
 */
export const PROTOCOL: ProtocolRange = { min: PROTOCOL_MIN, max: testProtocolMax() ?? PROTOCOL_VERSION };

function testProtocolMax(): number | null {
  const raw = process.env.WORKRS_TEST_PROTOCOL_MAX;
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < PROTOCOL_MIN || n > PROTOCOL_VERSION) {
    throw new Error(`WORKRS_TEST_PROTOCOL_MAX=${raw}: must be an integer from ${PROTOCOL_MIN} to ${PROTOCOL_VERSION}`);
  }
  return n;
}

/** What a node tells the others about its build (lease frames, joins) and GET /v1/cluster shows. */
export interface BuildInfo {
  version: string;
  commit: string;
  protocol: ProtocolRange;
}

export const BUILD: BuildInfo = { version: VERSION, commit: COMMIT, protocol: PROTOCOL };

/** The range of a node that announced none: a build from before versions, which speaks version 1 only. */
export const UNANNOUNCED_PROTOCOL: ProtocolRange = { min: 1, max: 1 };

/** The range a node's announced build speaks; null (it announced none): UNANNOUNCED_PROTOCOL. */
export function protocolOf(build: BuildInfo | null): ProtocolRange {
  return build?.protocol ?? UNANNOUNCED_PROTOCOL;
}

/** Whether a build of `range` runs in a cluster at `version`. */
export function runsAt(range: ProtocolRange, version: number): boolean {
  return version >= range.min && version <= range.max;
}
