// The tar reader against archives from our own writer and from GNU tar (long names,
// directories), and against hostile ones: names leaving the target, links, damage,
// and a target that already holds links and files.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { extractTar, safeRelativeName } from '../../src/util/tar-extract.js';
import { tarStream } from '../../src/worker/tar-pack.js';

function scratch(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-tar-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A raw ustar header for hand-made hostile entries. */
function header(name: string, type: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write('ustar\u000000', 257);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

function entry(name: string, content: string, type = '0'): Buffer {
  const data = Buffer.from(content);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header(name, type, data.length), data, pad]);
}

t.test('round trip through our writer, including a name longer than ustar holds', async (t) => {
  const dir = scratch(t);
  const long = `${'d'.repeat(80)}/${'f'.repeat(90)}.txt`;
  writeFileSync(join(dir, 'a'), 'alpha');
  writeFileSync(join(dir, 'big'), Buffer.alloc(3 * 1024 * 1024 + 7, 7));
  const out = join(dir, 'out');
  const r = await extractTar(
    tarStream([
      { kind: 'dir', name: 'sub', mode: 0o755 },
      { kind: 'file', name: 'sub/a.txt', mode: 0o644, sourcePath: join(dir, 'a') },
      { kind: 'file', name: long, mode: 0o600, sourcePath: join(dir, 'a') },
      { kind: 'file', name: 'big.bin', mode: 0o644, sourcePath: join(dir, 'big') },
    ]),
    out,
  );
  t.same(r.files, ['sub/a.txt', long, 'big.bin']);
  t.equal(readFileSync(join(out, 'sub/a.txt'), 'utf8'), 'alpha');
  t.equal(readFileSync(join(out, long), 'utf8'), 'alpha');
  t.ok(readFileSync(join(out, 'big.bin')).equals(Buffer.alloc(3 * 1024 * 1024 + 7, 7)));
  t.equal(r.bytes, 5 + 5 + 3 * 1024 * 1024 + 7);
});

t.test('reads GNU tar archives: long names, directories; skips symbolic links', async (t) => {
  const dir = scratch(t);
  const src = join(dir, 'src');
  const deep = join(src, 'x'.repeat(120));
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'file.txt'), 'deep');
  writeFileSync(join(src, 'top.txt'), 'top');
  symlinkSync('/etc/passwd', join(src, 'link'));
  for (const format of ['gnu', 'posix']) {
    const archive = execFileSync('tar', ['-C', src, `--format=${format}`, '-cf', '-', '.']);
    const out = join(dir, `out-${format}`);
    const r = await extractTar(Readable.from([archive]), out);
    t.equal(readFileSync(join(out, 'x'.repeat(120), 'file.txt'), 'utf8'), 'deep', `${format}: the long path`);
    t.equal(readFileSync(join(out, 'top.txt'), 'utf8'), 'top');
    t.notOk(existsSync(join(out, 'link')), `${format}: no link created`);
    t.same(r.skipped, [{ name: './link', why: 'symbolic link' }]);
  }
});

t.test('names that leave the target are skipped, not written', async (t) => {
  const dir = scratch(t);
  const out = join(dir, 'out');
  const archive = Buffer.concat([entry('../escape.txt', 'x'), entry('/etc/abs.txt', 'x'), entry('ok/../../no.txt', 'x'), entry('fine.txt', 'fine'), Buffer.alloc(1024)]);
  const r = await extractTar(Readable.from([archive]), out);
  t.same(r.files, ['fine.txt']);
  t.same(r.skipped.map((s) => s.why), ['unsafe name', 'unsafe name', 'unsafe name']);
  t.notOk(existsSync(join(dir, 'escape.txt')));
  t.equal(safeRelativeName('a/./b//c'), 'a/b/c');
  t.equal(safeRelativeName('a/../b'), null);
});

t.test('rename maps and filters entries', async (t) => {
  const dir = scratch(t);
  const archive = Buffer.concat([entry('stdout.log', 'log'), entry('exit-code', '0\n'), Buffer.alloc(1024)]);
  const r = await extractTar(Readable.from([archive]), join(dir, 'o'), { rename: (n) => (n === 'stdout.log' ? 'only.log' : null) });
  t.same(r.files, ['only.log']);
  t.equal(readFileSync(join(dir, 'o', 'only.log'), 'utf8'), 'log');
});

t.test('damaged or oversized archives are refused with a reason', async (t) => {
  const dir = scratch(t);
  const bad = entry('a.txt', 'hello');
  bad[0] = 'b'.charCodeAt(0); // the checksum no longer matches
  await t.rejects(extractTar(Readable.from([bad]), join(dir, 'o1')), /bad checksum/);
  await t.rejects(extractTar(Readable.from([Buffer.from('not a tar archive at all')]), join(dir, 'o2')), /ends inside a header/);
  const cut = entry('a.txt', 'x'.repeat(2000)).subarray(0, 900);
  await t.rejects(extractTar(Readable.from([cut]), join(dir, 'o3')), /ends inside a file/);
  const big = Buffer.concat([entry('a', 'x'.repeat(600)), entry('b', 'x'.repeat(600)), Buffer.alloc(1024)]);
  await t.rejects(extractTar(Readable.from([big]), join(dir, 'o4'), { maxBytes: 1000 }), /more than 1000 bytes/);
});

t.test('refusing: a link or a file already in the target stops the whole archive, nothing moved', async (t) => {
  const dir = scratch(t);
  const outside = join(dir, 'outside');
  mkdirSync(join(outside, 'folder'), { recursive: true });
  writeFileSync(join(outside, 'secret'), 'precious');
  const out = join(dir, 'out');
  mkdirSync(out);
  symlinkSync(join(outside, 'secret'), join(out, 'b.txt'));
  const archive = Buffer.concat([entry('a.txt', 'a'), entry('b.txt', 'b'), Buffer.alloc(1024)]);
  await t.rejects(extractTar(Readable.from([archive]), out, { existing: 'refuse' }), { name: 'TarExtractError', code: 'TARGET_EXISTS', message: /b\.txt exists and is a symbolic link/ });
  t.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'precious', 'the link target is untouched');
  t.same(readdirSync(out), ['b.txt'], 'a.txt was not moved in either, and no staging folder is left');

  // A link standing where a folder of the archive goes.
  rmSync(join(out, 'b.txt'));
  symlinkSync(join(outside, 'folder'), join(out, 'sub'));
  await t.rejects(extractTar(Readable.from([Buffer.concat([entry('sub/x', 'x'), Buffer.alloc(1024)])]), out, { existing: 'refuse' }), { code: 'TARGET_EXISTS', message: /sub exists and is a symbolic link/ });
  t.same(readdirSync(join(outside, 'folder')), [], 'nothing written through the folder link');
});

t.test('replacing: links and files are replaced by name, never written through; folders are refused', async (t) => {
  const dir = scratch(t);
  const outside = join(dir, 'outside');
  mkdirSync(join(outside, 'folder'), { recursive: true });
  writeFileSync(join(outside, 'secret'), 'precious');
  writeFileSync(join(outside, 'hard'), 'hard-linked');
  const out = join(dir, 'out');
  mkdirSync(join(out, 'taken'), { recursive: true });
  symlinkSync(join(outside, 'secret'), join(out, 'link.txt'));
  symlinkSync(join(outside, 'folder'), join(out, 'sub'));
  linkSync(join(outside, 'hard'), join(out, 'hard.txt'));
  writeFileSync(join(out, 'suid'), 'old');
  chmodSync(join(out, 'suid'), 0o4755);
  const archive = Buffer.concat([entry('link.txt', 'new'), entry('sub/x', 'x'), entry('hard.txt', 'new'), entry('suid', 'new'), Buffer.alloc(1024)]);
  const r = await extractTar(Readable.from([archive]), out, { existing: 'replace' });
  t.same(r.files, ['link.txt', 'sub/x', 'hard.txt', 'suid']);
  t.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'precious', 'the link target is untouched');
  t.equal(readFileSync(join(outside, 'hard'), 'utf8'), 'hard-linked', 'the hard-linked file is untouched');
  t.same(readdirSync(join(outside, 'folder')), [], 'nothing written through the folder link');
  t.ok(lstatSync(join(out, 'link.txt')).isFile(), 'the link was replaced by a file');
  t.ok(lstatSync(join(out, 'sub')).isDirectory(), 'the folder link was replaced by a folder');
  t.equal(lstatSync(join(out, 'suid')).mode & 0o7777, 0o644, 'the replaced file has the archive mode, not the setuid one');
  await t.rejects(extractTar(Readable.from([Buffer.concat([entry('taken', 'x'), Buffer.alloc(1024)])]), out, { existing: 'replace' }), { code: 'TARGET_EXISTS', message: /taken exists and is a folder/ });
  t.same(readdirSync(join(out, 'taken')), [], 'a folder is never replaced by a file');
});

t.test('modes keep only permission bits; limits on bytes and entries; bounded extended headers', async (t) => {
  const dir = scratch(t);
  const suid = entry('suid', 'x');
  suid.write('0004755\0', 100);
  suid.fill(' ', 148, 156);
  let sum = 0;
  for (const b of suid.subarray(0, 512)) sum += b;
  suid.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  await extractTar(Readable.from([Buffer.concat([suid, Buffer.alloc(1024)])]), join(dir, 'm'));
  t.equal(lstatSync(join(dir, 'm', 'suid')).mode & 0o7000, 0, 'no setuid bit');

  const many = Buffer.concat([...Array.from({ length: 6 }, (_, i) => entry(`f${i}`, 'x')), Buffer.alloc(1024)]);
  await t.rejects(extractTar(Readable.from([many]), join(dir, 'n'), { maxEntries: 5 }), { code: 'TAR_TOO_MANY_ENTRIES' });
  t.same(readdirSync(join(dir, 'n')), [], 'nothing of a refused archive is left');
  t.equal((await extractTar(Readable.from([many]), join(dir, 'n2'), { maxEntries: 6 })).files.length, 6);

  // A PAX header claiming 8 GiB must be refused before it is read into memory.
  const hugePax = header('././@PaxHeader', 'x', 8 * 1024 ** 3);
  await t.rejects(extractTar(Readable.from([hugePax]), join(dir, 'p')), { code: 'INVALID_TAR', message: /extended tar header/ });

  // GNU base-256 size field.
  const b256 = entry('big256', 'hello');
  b256.fill(0, 124, 136);
  b256[124] = 0x80;
  b256[135] = 5;
  b256.fill(' ', 148, 156);
  sum = 0;
  for (const b of b256.subarray(0, 512)) sum += b;
  b256.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  await extractTar(Readable.from([Buffer.concat([b256, Buffer.alloc(1024)])]), join(dir, 'b'));
  t.equal(readFileSync(join(dir, 'b', 'big256'), 'utf8'), 'hello', 'a base-256 size is read');
});

t.test('entries that clash with each other are refused; a later file of the same name wins', async (t) => {
  const dir = scratch(t);
  const clash = Buffer.concat([entry('a', 'file'), entry('a/b', 'under a file'), Buffer.alloc(1024)]);
  await t.rejects(extractTar(Readable.from([clash]), join(dir, 'c')), { code: 'INVALID_TAR', message: /clashes/ });
  const twice = Buffer.concat([entry('a', 'first'), entry('a', 'second'), Buffer.alloc(1024)]);
  const r = await extractTar(Readable.from([twice]), join(dir, 't'), { existing: 'refuse' });
  t.same(r.files, ['a']);
  t.equal(readFileSync(join(dir, 't', 'a'), 'utf8'), 'second');
});
