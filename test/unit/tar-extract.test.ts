// The tar reader against archives from our own writer and from GNU tar (long names,
// directories), and against hostile ones: names leaving the target, links, damage.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
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
