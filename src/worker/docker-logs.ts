import { Transform, type TransformCallback } from 'node:stream';

/**
 * Splits a non-TTY container log as the Docker API returns it: frames of an 8-byte
 * header (byte 0: stream, 1 stdin / 1 stdout / 2 stderr; bytes 4-7: payload length,
 * big-endian) followed by the payload.
 */
export function demuxDockerLog(buf: Buffer): { stdout: Buffer; stderr: Buffer } {
  const { payloads, streams } = splitFrames(buf);
  return {
    stdout: Buffer.concat(payloads.filter((_, i) => streams[i] !== 2)),
    stderr: Buffer.concat(payloads.filter((_, i) => streams[i] === 2)),
  };
}

function splitFrames(buf: Buffer): { payloads: Buffer[]; streams: number[] } {
  const payloads: Buffer[] = [];
  const streams: number[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const stream = buf[at] ?? 0;
    const sizeBytes = buf.readUInt32BE(at + 4);
    const end = at + 8 + sizeBytes;
    if (end > buf.length) throw new Error(`docker log frame at byte ${at} claims ${sizeBytes} bytes, only ${buf.length - at - 8} left`);
    payloads.push(buf.subarray(at + 8, end));
    streams.push(stream);
    at = end;
  }
  if (at !== buf.length) throw new Error(`docker log ends with a partial frame header (${buf.length - at} bytes)`);
  return { payloads, streams };
}

/**
 * The payloads of a non-TTY container log in the payloads Docker recorded them: stdout
 * and stderr interleaved as the job wrote them. Byte offsets into this buffer are the
 * log offsets of checkpoints.
 */
export function mergeDockerLog(buf: Buffer): Buffer {
  const { payloads } = splitFrames(buf);
  return Buffer.concat(payloads);
}

const HEADER_BYTES = 8;
const STREAM_STDERR = 2;

/**
 * mergeDockerLog as a stream: the payloads of the frames, stdout and stderr
 * interleaved as written, passed on piece by piece as they arrive. Memory stays at
 * one chunk whatever the log's size or a frame's claimed length, and a slow reader
 * slows the container log's reading (backpressure), never piles it up here.
 */
export class DockerLogMerger extends Transform {
  /** The bytes of a frame header read so far (fewer than 8). */
  private header: Buffer = Buffer.alloc(0);
  /** Payload bytes of the current frame still to come. */
  private payloadLeft = 0;
  /** Bytes consumed, to say where a malformed log went wrong. */
  private offset = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - at);
        this.push(chunk.subarray(at, at + n));
        this.payloadLeft -= n;
        at += n;
        continue;
      }
      const take = chunk.subarray(at, at + HEADER_BYTES - this.header.length);
      this.header = this.header.length === 0 ? take : Buffer.concat([this.header, take]);
      at += take.length;
      if (this.header.length < HEADER_BYTES) break;
      const stream = this.header[0] ?? 0;
      if (stream > STREAM_STDERR) {
        done(new Error(`docker log frame at byte ${this.offset + at - HEADER_BYTES} names stream ${stream}: not a multiplexed (non-TTY) log`));
        return;
      }
      this.payloadLeft = this.header.readUInt32BE(4);
      this.header = Buffer.alloc(0);
    }
    this.offset += chunk.length;
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.payloadLeft > 0) done(new Error(`docker log ends inside a frame (${this.payloadLeft} bytes missing)`));
    else if (this.header.length > 0) done(new Error(`docker log ends with a partial frame header (${this.header.length} bytes)`));
    else done();
  }
}
