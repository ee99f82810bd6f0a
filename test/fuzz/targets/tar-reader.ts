// Every tar reader in src/ over valid, mutated and random archives: the streaming
// extractor (src/util/tar-extract.ts), the member index (src/images/tar-index.ts) and
// the `docker save` manifest check (src/images/docker-save.ts). Each answers with a
// correct parse or its documented error (TarExtractError, TarFormatError,
// InvalidImageError), never another exception, never a hang; valid archives round-trip
// (every file's content and every member's name, type and size come back).
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { InvalidImageError, readDockerSave } from '../../../src/images/docker-save.js';
import { normalizeReference } from '../../../src/images/references.js';
import { readMember, TarFormatError, tarMembers, type TarMember } from '../../../src/images/tar-index.js';
import { extractTar, TarExtractError } from '../../../src/util/tar-extract.js';
import type { FuzzTarget } from '../target.js';
import { buildTar, type RawEntry } from '../tar-build.js';

const BLOCK = 512;
const MAX_ENTRIES = 64;

const segment = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}$/) },
  { weight: 1, arbitrary: fc.constantFrom('日本語', 'ü-name', 'spaces in name', 'x'.repeat(120)) },
);
const relName = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));

const rawEntry: fc.Arbitrary<RawEntry> = fc.record({
  name: relName,
  type: fc.constantFrom('0', '0', '0', '5', '2'),
  content: fc.uint8Array({ maxLength: 1500 }),
  mode: fc.constantFrom(0o644, 0o755, 0o600, 0o4755),
  linkName: fc.constantFrom('target', '../../etc/passwd', '/etc/shadow'),
  longName: fc.constantFrom('pax' as const, 'gnu' as const, 'prefix' as const),
  base256: fc.boolean(),
});

/** Keeps the entries whose names clash with no earlier one (a file where a folder goes, or twice). */
function consistent(entries: RawEntry[]): RawEntry[] {
  const taken = new Set<string>();
  const folders = new Set<string>();
  const out: RawEntry[] = [];
  for (const e of entries) {
    const parts = e.name.split('/');
    const parents = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
    if (taken.has(e.name) || folders.has(e.name) || parents.some((p) => taken.has(p))) continue;
    if (e.type === '5') folders.add(e.name);
    else taken.add(e.name);
    for (const p of parents) folders.add(p);
    out.push(e.type === '5' ? { ...e, name: `${e.name}/` } : e);
  }
  return out;
}

const validTar = fc.array(rawEntry, { maxLength: 8 }).map(consistent);

/** A header field, where it starts and how long it is. */
const FIELDS = { name: [0, 100], mode: [100, 8], size: [124, 12], type: [156, 1], linkName: [157, 100], magic: [257, 6], prefix: [345, 155] } as const;
/** Values that probe the parsers: huge and negative numbers, base-256, names that leave, every type flag. */
const VALUES = ['77777777777', '7777777', '00000001000', '-1', '1e3', '0x10', ' 12 ', '', '\x80\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff',
  '\x80\0\0\0\0\0\0\0\0\0\x10\0', '../../escape', '/etc/passwd', 'a/../../b', '.', './', 'x', 'L', 'g', 'K', '1', '2', '3', '5', '6', '7', '\0', 'ustar\0', 'ustar '];

interface Mutation {
  at: number;
  byte: number;
  /** Aim at a header block rather than anywhere. */
  inHeader: boolean;
  /** Or overwrite a whole header field with a probing value. */
  field: keyof typeof FIELDS | null;
  value: string;
}
const mutations = fc.array(
  fc.record({
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
    inHeader: fc.boolean(),
    field: fc.option(fc.constantFrom(...(Object.keys(FIELDS) as Array<keyof typeof FIELDS>)), { nil: null }),
    value: fc.constantFrom(...VALUES),
  }),
  { minLength: 1, maxLength: 6 },
);

function checksumOf(h: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum;
}

function isHeader(h: Buffer): boolean {
  const stored = parseInt(h.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
  return Number.isInteger(stored) && stored === checksumOf(h);
}

function writeChecksum(h: Buffer): void {
  h.fill(' ', 148, 156);
  h.write(`${checksumOf(h).toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
}

/** The archive with bytes changed; with `fixChecksums` the changed headers still pass their checksum, so the change reaches the parser. */
function mutate(tar: Buffer, ms: Mutation[], fixChecksums: boolean, cutAt: number | null): Buffer {
  const out = Buffer.from(tar);
  const headers: number[] = [];
  for (let at = 0; at + BLOCK <= out.length; at += BLOCK) if (isHeader(out.subarray(at, at + BLOCK))) headers.push(at);
  for (const m of ms) {
    if (m.field !== null && headers.length > 0) {
      const [start, length] = FIELDS[m.field];
      const h = out.subarray(headers[m.at % headers.length]!, headers[m.at % headers.length]! + BLOCK);
      h.fill(0, start, start + length);
      h.write(m.value, start, length, 'latin1');
      continue;
    }
    const at = m.inHeader && headers.length > 0 ? headers[m.at % headers.length]! + (Math.floor(m.at / 7) % BLOCK) : m.at % Math.max(out.length, 1);
    if (at < out.length) out[at] = m.byte;
  }
  if (fixChecksums) for (const at of headers) writeChecksum(out.subarray(at, at + BLOCK));
  return cutAt === null ? out : out.subarray(0, cutAt % (out.length + 1));
}

async function scratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'workrs-fuzz-tar-'));
}

/** Runs `f`, accepting only a result or an error of `documented`. */
async function documented<T>(what: string, documentedError: new (...args: never[]) => Error, f: () => Promise<T>): Promise<T | null> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof documentedError) return null;
    throw new Error(`${what} threw an undocumented ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
  }
}

async function indexOf(path: string): Promise<Array<TarMember & { content: Buffer }>> {
  const file = await open(path, 'r');
  try {
    const out: Array<TarMember & { content: Buffer }> = [];
    for await (const m of tarMembers(file)) out.push({ ...m, content: m.type === 'file' ? await readMember(file, m, 1024 * 1024) : Buffer.alloc(0) });
    return out;
  } finally {
    await file.close();
  }
}

/** Nothing outside `out` in `dir`, and no staging folder left in `out`. */
function assertContained(dir: string): void {
  const names = readdirSync(dir).filter((n) => n !== 'archive.tar');
  if (names.some((n) => n !== 'out')) throw new Error(`extractTar wrote outside its target: ${names.join(', ')}`);
  if (existsSync(join(dir, 'out')) && readdirSync(join(dir, 'out')).some((n) => n.startsWith('.workrs-extract-'))) throw new Error('a staging folder was left behind');
}

/** Every reader over `bytes`: only documented errors; returns what each made of it. */
async function readAll(dir: string, bytes: Buffer): Promise<{ extracted: Awaited<ReturnType<typeof extractTar>> | null; members: Awaited<ReturnType<typeof indexOf>> | null }> {
  const path = join(dir, 'archive.tar');
  await writeFile(path, bytes);
  // Chunks of odd sizes: headers and data split across reads.
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 333) chunks.push(bytes.subarray(at, at + 333));
  const extracted = await documented('extractTar', TarExtractError, () => extractTar(Readable.from(chunks), join(dir, 'out'), { maxEntries: MAX_ENTRIES, existing: 'refuse' }));
  assertContained(dir);
  const members = await documented('tarMembers', TarFormatError, () => indexOf(path));
  await documented('readDockerSave', InvalidImageError, () => readDockerSave(path));
  return { extracted, members };
}

async function roundTrip(entries: RawEntry[]): Promise<void> {
  const dir = await scratch();
  try {
    const tar = buildTar(entries);
    const { extracted, members } = await readAll(dir, tar);
    if (extracted === null) throw new Error('extractTar refused a valid archive');
    if (members === null) throw new Error('tarMembers refused a valid archive');
    const files = entries.filter((e) => e.type === '0');
    if (JSON.stringify(extracted.files) !== JSON.stringify(files.map((e) => e.name))) throw new Error(`extracted files ${JSON.stringify(extracted.files)}, expected ${JSON.stringify(files.map((e) => e.name))}`);
    for (const e of files) {
      if (!readFileSync(join(dir, 'out', e.name)).equals(Buffer.from(e.content))) throw new Error(`${e.name}: content differs after extraction`);
      if ((lstatSync(join(dir, 'out', e.name)).mode & 0o7000) !== 0) throw new Error(`${e.name}: kept a setuid/setgid/sticky bit`);
    }
    for (const e of entries.filter((x) => x.type === '5')) if (!lstatSync(join(dir, 'out', e.name)).isDirectory()) throw new Error(`${e.name}: folder not made`);
    if (extracted.skippedCount !== entries.filter((e) => e.type === '2').length) throw new Error('every link is skipped, nothing else');
    const expected = entries.map((e) => ({ name: e.name.replace(/\/+$/, ''), type: e.type === '0' ? 'file' : e.type === '5' ? 'dir' : 'symlink', content: e.type === '0' ? Buffer.from(e.content) : Buffer.alloc(0) }));
    if (members.length !== expected.length) throw new Error(`tarMembers listed ${members.length} members, expected ${expected.length}`);
    members.forEach((m, i) => {
      const x = expected[i]!;
      if (m.name !== x.name || m.type !== x.type || !m.content.equals(x.content)) throw new Error(`member ${i}: ${m.name} (${m.type}), expected ${x.name} (${x.type}) with the same content`);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function hostile(bytes: Buffer): Promise<void> {
  const dir = await scratch();
  try {
    await readAll(dir, bytes);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- docker save archives --------------------------------------------------------

const TAGS = ['busybox:1', 'example.com:5000/team/app:v2', 'docker.io/library/alpine', 'repo'];
const dockerSave = fc.record({
  images: fc.array(fc.record({ layers: fc.integer({ min: 1, max: 3 }), tags: fc.subarray(TAGS) }), { minLength: 1, maxLength: 2 }),
  salt: fc.nat(),
});

function dockerSaveTar(spec: { images: Array<{ layers: number; tags: string[] }>; salt: number }): { tar: Buffer; references: string[] } {
  const entries: RawEntry[] = [];
  const manifest = spec.images.map((img, i) => {
    const id = `${spec.salt.toString(16)}${i}`.padStart(12, '0');
    const layers = Array.from({ length: img.layers }, (_, j) => `${id}${j}/layer.tar`);
    for (const l of layers) entries.push({ name: l, type: '0', content: Buffer.from(`layer ${l}`), mode: 0o644 });
    entries.push({ name: `${id}.json`, type: '0', content: Buffer.from('{"rootfs":{"diff_ids":[]}}'), mode: 0o644 });
    return { Config: `${id}.json`, Layers: layers, RepoTags: img.tags };
  });
  entries.push({ name: 'manifest.json', type: '0', content: Buffer.from(JSON.stringify(manifest)), mode: 0o644 });
  const references = [...new Set(spec.images.flatMap((img) => img.tags.map(normalizeReference)))];
  return { tar: buildTar(entries), references };
}

async function dockerSaveCase(spec: { images: Array<{ layers: number; tags: string[] }>; salt: number }, ms: Mutation[] | null, fix: boolean): Promise<void> {
  const dir = await scratch();
  try {
    const { tar, references } = dockerSaveTar(spec);
    const bytes = ms === null ? tar : mutate(tar, ms, fix, null);
    const path = join(dir, 'image.tar');
    await writeFile(path, bytes);
    const read = await documented('readDockerSave', InvalidImageError, () => readDockerSave(path));
    if (ms !== null) return;
    if (references.length === 0) {
      if (read !== null) throw new Error('readDockerSave accepted images without a name');
      return;
    }
    if (read === null) throw new Error('readDockerSave refused a valid docker save archive');
    if (JSON.stringify(read.references) !== JSON.stringify(references)) throw new Error(`references ${JSON.stringify(read.references)}, expected ${JSON.stringify(references)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type Case =
  | { kind: 'valid'; entries: RawEntry[] }
  | { kind: 'mutated'; entries: RawEntry[]; ms: Mutation[]; fix: boolean; cut: number | null; end: boolean }
  | { kind: 'random'; bytes: Uint8Array }
  | { kind: 'docker'; spec: { images: Array<{ layers: number; tags: string[] }>; salt: number }; ms: Mutation[] | null; fix: boolean };

const anyCase: fc.Arbitrary<Case> = fc.oneof(
  validTar.map((entries): Case => ({ kind: 'valid', entries })),
  fc.record({ entries: validTar, ms: mutations, fix: fc.boolean(), cut: fc.option(fc.nat(), { nil: null }), end: fc.boolean() }).map((c): Case => ({ kind: 'mutated', ...c })),
  fc.oneof(fc.uint8Array({ maxLength: 4096 }), fc.uint8Array({ minLength: 512, maxLength: 512 })).map((bytes): Case => ({ kind: 'random', bytes })),
  fc.record({ spec: dockerSave, ms: fc.option(mutations, { nil: null }), fix: fc.boolean() }).map((c): Case => ({ kind: 'docker', ...c })),
);

export const target: FuzzTarget = {
  name: 'tar-reader',
  property() {
    return fc.asyncProperty(anyCase, async (c) => {
      switch (c.kind) {
        case 'valid':
          return roundTrip(c.entries);
        case 'mutated':
          return hostile(mutate(buildTar(c.entries, c.end), c.ms, c.fix, c.cut));
        case 'random':
          return hostile(Buffer.from(c.bytes));
        case 'docker':
          return dockerSaveCase(c.spec, c.ms, c.fix);
      }
    });
  },
};
