// Content-defined chunking: boundaries follow the content (not how it is pushed, not
// offsets), sizes stay within bounds around the average, an edit moves only nearby
// boundaries.
import t from 'tap';
import { Chunker, DEFAULT_CHUNKING } from '../../src/blobs/chunker.js';
import { seededBytes } from './blob-fixtures.js';

function chunkAll(data: Buffer, pieceBytes: (i: number) => number): Buffer[] {
  const chunker = new Chunker();
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = Math.max(1, pieceBytes(i));
    out.push(...chunker.push(data.subarray(at, at + n)));
    at += n;
  }
  const tail = chunker.end();
  if (tail !== null) out.push(tail);
  return out;
}

const sizes = (chunks: Buffer[]): number[] => chunks.map((c) => c.length);

t.test('boundaries do not depend on how the bytes are split into pushes', async (t) => {
  const data = seededBytes(6 * 1024 * 1024 + 12345, 11);
  const whole = sizes(chunkAll(data, () => data.length));
  const small = sizes(chunkAll(data, (i) => 1 + ((i * 7919) % 70000)));
  const odd = sizes(chunkAll(data, () => 65537));
  t.same(small, whole, 'pieces of 1 to 70,000 bytes cut where one whole push does');
  t.same(odd, whole, 'pieces of 64 KiB + 1 cut where one whole push does');
  t.equal(Buffer.concat(chunkAll(data, () => 100_000)).equals(data), true, 'chunks concatenate back to the input');
});

t.test('chunk sizes stay within min/max and average near 256 KiB on random data', async (t) => {
  const data = seededBytes(32 * 1024 * 1024, 12);
  const s = sizes(chunkAll(data, () => 1024 * 1024));
  const { minBytes, maxBytes } = DEFAULT_CHUNKING;
  t.ok(s.slice(0, -1).every((n) => n >= minBytes && n <= maxBytes), 'every chunk but the last is within [64 KiB, 1 MiB]');
  const avg = data.length / s.length;
  t.comment(`${s.length} chunks, average ${(avg / 1024).toFixed(0)} KiB, min ${Math.min(...s)}, max ${Math.max(...s)}`);
  t.ok(avg > 160 * 1024 && avg < 400 * 1024, `average ${(avg / 1024).toFixed(0)} KiB is near 256 KiB`);
});

t.test('bytes inserted at the start change only the first chunks', async (t) => {
  const data = seededBytes(8 * 1024 * 1024, 13);
  const shifted = Buffer.concat([Buffer.from('a few inserted bytes'), data]);
  const a = new Set(chunkAll(data, () => 1 << 20).map((c) => c.toString('base64')));
  const b = chunkAll(shifted, () => 1 << 20);
  const shared = b.filter((c) => a.has(c.toString('base64'))).length;
  t.ok(shared >= b.length - 2, `${shared} of ${b.length} chunks are unchanged`);
});

t.test('empty input gives no chunk; tiny input one chunk', async (t) => {
  const c = new Chunker();
  t.same(c.push(Buffer.alloc(0)), []);
  t.equal(c.end(), null);
  t.same(sizes(chunkAll(Buffer.from('hello'), () => 5)), [5]);
});

t.test('parameters are checked', async (t) => {
  t.throws(() => new Chunker({ minBytes: 1024, avgBytes: 3000, maxBytes: 8192 }), /power of two/);
  t.throws(() => new Chunker({ minBytes: 8192, avgBytes: 4096, maxBytes: 16384 }), /minBytes < avgBytes/);
});
