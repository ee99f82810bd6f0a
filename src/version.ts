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
