import t from 'tap';
import { demuxDockerLog } from '../../src/worker/docker-logs.js';

function frame(stream: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

t.test('frames are split into stdout and stderr in order', async (t) => {
  const log = Buffer.concat([frame(1, 'a\n'), frame(2, 'oops\n'), frame(1, 'b\n')]);
  const { stdout, stderr } = demuxDockerLog(log);
  t.equal(stdout.toString(), 'a\nb\n');
  t.equal(stderr.toString(), 'oops\n');
});

t.test('a truncated frame is an error, not silently dropped output', async (t) => {
  const whole = frame(1, 'hello\n');
  t.throws(() => demuxDockerLog(whole.subarray(0, whole.length - 2)), /claims 6 bytes/);
  t.throws(() => demuxDockerLog(Buffer.concat([whole, Buffer.from([1, 0, 0])])), /partial frame header/);
});
