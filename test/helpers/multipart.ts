// multipart/form-data bodies written byte by byte, for tests that need parts a
// FormData would not produce (a spec file part, a truncated body, odd headers).

export interface Part {
  name: string;
  /** Present: the part is a file part (busboy's rule), whatever its content type. */
  filename?: string;
  contentType?: string;
  body: Buffer | string;
}

/** The delimiter and headers that open `part`, up to the first byte of its body. */
export function partHead(part: Part, boundary: string): string {
  const disposition = `form-data; name="${part.name}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
  const type = part.contentType === undefined ? '' : `content-type: ${part.contentType}\r\n`;
  return `--${boundary}\r\ncontent-disposition: ${disposition}\r\n${type}\r\n`;
}

/** The closing delimiter that follows the last part's body. */
export function closing(boundary: string): string {
  return `\r\n--${boundary}--\r\n`;
}

/** A whole body: every part, each followed by CRLF before the next delimiter, and the closing delimiter. */
export function multipartBody(parts: Part[], boundary: string): Buffer {
  const pieces: Buffer[] = [];
  parts.forEach((p, i) => {
    pieces.push(Buffer.from(`${i === 0 ? '' : '\r\n'}${partHead(p, boundary)}`, 'latin1'), Buffer.from(p.body));
  });
  pieces.push(Buffer.from(closing(boundary)));
  return Buffer.concat(pieces);
}

export function multipartType(boundary: string): string {
  return `multipart/form-data; boundary=${boundary}`;
}
