// Unpacking a result as `workrs result -o DIR` does, with hostile archives (names that
// leave DIR or go through planted links, links and hard links pointing out, devices,
// setuid modes, sizes that lie) into a DIR someone prepared with links to a sentinel
// folder outside it. Whatever the archive: nothing is written outside DIR, no planted
// link's target changes, nothing under DIR is a new link or has a setuid, setgid or
// sticky bit, the only error is TarExtractError, a refusal leaves DIR as it was, and
// every file reported written holds the content of the archive's last entry of its name.
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { extractTar, safeRelativeName, TarExtractError } from '../../../src/util/tar-extract.js';
import type { FuzzTarget } from '../target.js';
import { buildTar, entryBlocks, type RawEntry } from '../tar-build.js';

/** Links planted in DIR before the extraction, by name, relative to the run folder. */
const PLANTED: Record<string, string> = {
  'file-link': 'sentinel/secret.txt',
  'dir-link': 'sentinel',
  dangling: 'sentinel/not-yet.txt',
  'nested/inner-link': 'sentinel',
};

const segment = fc.constantFrom('a', 'b', 'file-link', 'dir-link', 'dangling', 'nested', 'inner-link', '..', '.', '', 'sentinel', 'secret.txt', 'x'.repeat(110));
const hostileName = fc.tuple(fc.constantFrom('', '/', './', '../', '/tmp/'), fc.array(segment, { minLength: 1, maxLength: 4 }), fc.constantFrom('', '/')).map(([lead, parts, tail]) => `${lead}${parts.join('/')}${tail}`);

const hostileEntry: fc.Arbitrary<RawEntry> = fc.record({
  name: hostileName,
  type: fc.constantFrom('0', '0', '0', '5', '2', '1', '3', '6', '7'),
  content: fc.uint8Array({ maxLength: 700 }),
  mode: fc.constantFrom(0o4755, 0o2755, 0o1777, 0o7777, 0o644, 0, 0o777, 0o400),
  linkName: fc.constantFrom('../sentinel/secret.txt', '/etc/passwd', 'file-link', 'dir-link/secret.txt', '..'),
  longName: fc.constantFrom('pax' as const, 'gnu' as const, 'prefix' as const),
  base256: fc.boolean(),
});

/** Every path under `dir` with what it is: a file's content, a link's target, or a folder. */
function snapshot(dir: string, rel = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const st = lstatSync(join(dir, path));
    if (st.isSymbolicLink()) out.set(path, `link ${readlinkSync(join(dir, path))}`);
    else if (st.isDirectory()) {
      out.set(path, 'folder');
      for (const [k, v] of snapshot(dir, path)) out.set(k, v);
    } else out.set(path, `file ${(st.mode & 0o7777).toString(8)} ${readFileSync(join(dir, path)).toString('hex')}`);
  }
  return out;
}

function walk(dir: string, visit: (path: string, st: Stats) => void, rel = ''): void {
  for (const name of readdirSync(join(dir, rel))) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const st = lstatSync(join(dir, path));
    visit(path, st);
    if (st.isDirectory()) walk(dir, visit, path);
  }
}

const same = (a: Map<string, string>, b: Map<string, string>): boolean => JSON.stringify([...a]) === JSON.stringify([...b]);

async function prepare(run: string): Promise<string> {
  await mkdir(join(run, 'sentinel'));
  await writeFile(join(run, 'sentinel', 'secret.txt'), 'precious');
  const dir = join(run, 'dir');
  await mkdir(join(dir, 'nested'), { recursive: true });
  for (const [name, target] of Object.entries(PLANTED)) await symlink(join(run, target), join(dir, name));
  await writeFile(join(dir, 'b'), 'existing file');
  return dir;
}

export const target: FuzzTarget = {
  name: 'result-extract',
  property() {
    return fc.asyncProperty(
      fc.array(hostileEntry, { maxLength: 10 }),
      fc.constantFrom('refuse' as const, 'replace' as const),
      fc.option(fc.nat({ max: 12_000 }), { nil: null }),
      async (entries, existing, cutAt) => {
        const run = await mkdtemp(join(tmpdir(), 'workrs-fuzz-result-'));
        try {
          const dir = await prepare(run);
          const sentinelBefore = snapshot(join(run, 'sentinel'));
          const dirBefore = snapshot(dir);
          const tar = buildTar(entries);
          const bytes = cutAt === null ? tar : tar.subarray(0, cutAt);
          let files: string[] | null = null;
          try {
            files = (await extractTar(Readable.from([bytes]), dir, { existing, maxEntries: 64, maxBytes: 4096 })).files;
          } catch (err) {
            if (!(err instanceof TarExtractError)) throw new Error(`extractTar threw an undocumented ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
          }
          if (!same(snapshot(join(run, 'sentinel')), sentinelBefore)) throw new Error('something outside DIR changed: the sentinel folder');
          if (JSON.stringify(readdirSync(run).sort()) !== JSON.stringify(['dir', 'sentinel'])) throw new Error(`written beside DIR: ${readdirSync(run).join(', ')}`);
          if (files === null && !same(snapshot(dir), dirBefore)) throw new Error('a refused archive changed DIR');
          walk(dir, (path, st) => {
            if (st.isSymbolicLink() && !(path in PLANTED)) throw new Error(`a link was created: ${path}`);
            if ((st.mode & 0o7000) !== 0 && !st.isSymbolicLink()) throw new Error(`${path} has mode ${(st.mode & 0o7777).toString(8)}`);
            if (path.startsWith('.workrs-extract-')) throw new Error('a staging folder was left behind');
          });
          if (existing === 'refuse') {
            for (const [name, target] of Object.entries(PLANTED)) {
              if (readlinkSync(join(dir, name)) !== join(run, target)) throw new Error(`the planted link ${name} was changed when refusing`);
            }
          }
          // What was written holds the last entry of its name among those whose data the cut left whole
          // (a cut in the padding after the data loses nothing).
          let end = 0;
          const whole = entries.filter((e) => {
            const blocks = entryBlocks(e);
            const dataEnd = end + blocks.slice(0, -1).reduce((n, b) => n + b.length, 0);
            end = dataEnd + blocks.at(-1)!.length;
            return cutAt === null || dataEnd <= cutAt;
          });
          for (const f of files ?? []) {
            const last = whole.filter((e) => (e.type === '0' || e.type === '7') && safeRelativeName(e.name) === f).at(-1);
            if (!last) throw new Error(`${f} was written without a file entry of that name`);
            const st = lstatSync(join(dir, f));
            if (!st.isFile() || !readFileSync(join(dir, f)).equals(Buffer.from(last.content))) throw new Error(`${f} does not hold its entry's content`);
          }
        } finally {
          await rm(run, { recursive: true, force: true });
        }
      },
    );
  },
};
