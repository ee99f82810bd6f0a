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
