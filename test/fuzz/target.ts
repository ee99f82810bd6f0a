// A fuzz target: one fast-check property over hostile input to one parser or reader.
// Every file in test/fuzz/targets/ exports `target`. The short run in `make test`
// (short.test.ts) and the long one (`make fuzz`, run.ts) find them by listing that folder.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { IRawProperty } from 'fast-check';

export interface FuzzTarget {
  /** Short and unique: it names the target in reports. */
  name: string;
  /**
   * A fresh property each call. Inputs must be bounded in size, so that one run
   * finishes in well under a second; the property throws (or returns false) on a
   * crash, a wrong answer or a broken invariant of the code under test.
   */
  // The tuple of generated values differs per target; the runner never looks inside it.
  property(): IRawProperty<any>;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Every target under test/fuzz/targets/, in name order. */
export async function loadTargets(): Promise<FuzzTarget[]> {
  const dir = join(here, 'targets');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts')).sort();
  const targets: FuzzTarget[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { target?: FuzzTarget };
    if (!mod.target) throw new Error(`test/fuzz/targets/${f} exports no 'target'`);
    targets.push(mod.target);
  }
  const names = new Set(targets.map((t) => t.name));
  if (names.size !== targets.length) throw new Error('two fuzz targets share a name');
  return targets;
}

/** A stable seed per target for the short run, so a failure in `make test` replays. */
export function seedOf(name: string): number {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h | 0;
}
