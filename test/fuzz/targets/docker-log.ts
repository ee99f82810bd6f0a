// The streaming Docker log merger (src/worker/docker-logs.ts DockerLogMerger) against
// the whole-buffer merge, over valid logs, mutated ones and random bytes, cut into
// random chunks: a valid log comes out byte for byte as mergeDockerLog gives it,
// however it is cut; a log mergeDockerLog refuses is an error of the stream too; and a
// log the stream accepts is one mergeDockerLog accepts, with the same bytes. Errors
// are Errors saying "docker log", never another exception or a hang.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { DockerLogMerger, mergeDockerLog } from '../../../src/worker/docker-logs.js';
import type { FuzzTarget } from '../target.js';

function frame(stream: number, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, Buffer.from(payload)]);
}

const validLog = fc.array(fc.record({ stream: fc.constantFrom(1, 2, 0), payload: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 20 }).map((frames) => Buffer.concat(frames.map((f) => frame(f.stream, f.payload))));

const input = fc.oneof(
  { weight: 4, arbitrary: validLog.map((log) => ({ log, valid: true })) },
  {
    weight: 3,
    arbitrary: fc.tuple(validLog, fc.nat(), fc.uint8Array({ maxLength: 12 }), fc.boolean()).map(([log, cut, extra, truncate]) => ({
      log: truncate ? log.subarray(0, log.length === 0 ? 0 : cut % log.length) : Buffer.concat([log, Buffer.from(extra)]),
      valid: false,
    })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ log: Buffer.from(bytes), valid: false })) },
);

async function streamed(log: Buffer, cuts: number[]): Promise<{ ok: true; bytes: Buffer } | { ok: false; error: unknown }> {
  const points = [...new Set(cuts.map((c) => (log.length === 0 ? 0 : c % log.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const p of [...points, log.length]) {
    if (p > at) chunks.push(log.subarray(at, p));
    at = Math.max(at, p);
  }
  const out: Buffer[] = [];
  try {
    await pipeline(Readable.from(chunks), new DockerLogMerger(), new Writable({ write: (c: Buffer, _e, done) => (out.push(c), done()) }));
    return { ok: true, bytes: Buffer.concat(out) };
  } catch (error) {
    return { ok: false, error };
  }
}

export const target: FuzzTarget = {
  name: 'docker-log-merger',
  property() {
    return fc.asyncProperty(input, fc.array(fc.nat(), { maxLength: 8 }), async ({ log, valid }, cuts) => {
      let whole: Buffer | null = null;
      try {
        whole = mergeDockerLog(log);
      } catch {
        whole = null;
      }
      const s = await streamed(log, cuts);
      if (!s.ok) {
        if (!(s.error instanceof Error) || !s.error.message.includes('docker log')) throw new Error(`unexpected error: ${String(s.error)}`);
        if (valid) throw new Error(`a valid log was refused: ${s.error.message}`);
        return;
      }
      if (whole === null) throw new Error('the stream accepted a log mergeDockerLog refuses');
      if (!s.bytes.equals(whole)) throw new Error('the streamed merge differs from the whole-buffer merge');
    });
  },
};
