/**
 * Splits a non-TTY container log as the Docker API returns it: frames of an 8-byte
 * header (byte 0: stream, 1 stdin / 1 stdout / 2 stderr; bytes 4-7: payload length,
 * big-endian) followed by the payload.
 */
export function demuxDockerLog(buf: Buffer): { stdout: Buffer; stderr: Buffer } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const stream = buf[at];
    const sizeBytes = buf.readUInt32BE(at + 4);
    const end = at + 8 + sizeBytes;
    if (end > buf.length) throw new Error(`docker log frame at byte ${at} claims ${sizeBytes} bytes, only ${buf.length - at - 8} left`);
    (stream === 2 ? err : out).push(buf.subarray(at + 8, end));
    at = end;
  }
  if (at !== buf.length) throw new Error(`docker log ends with a partial frame header (${buf.length - at} bytes)`);
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}
