// The join secret: what makes a process one of the cluster's nodes. It never leaves
// the node. Two keys are derived from it (HKDF-SHA256), one per use, so neither use
// can be turned against the other:
//   - the enrollment key: MACs of an enrollment, bound to its TLS session (enroll.ts);
//   - the wrapping key: encrypts the CA's private key at rest and in enrollment
//     answers (AES-256-GCM), so a data folder or a captured answer without the secret
//     does not give the CA away.
// During a rotation a node also holds the previous secret: it accepts enrollments
// proved with either, opens a CA key wrapped under either, and wraps under the new one.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { WorkrsError } from '../errors.js';

/** A secret shorter than this is refused: it would be guessable online. */
export const MIN_SECRET_CHARS = 16;
const WRAP_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function derive(secret: Buffer, use: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'workrs-join-secret', use, 32));
}

class SecretKeys {
  readonly enroll: Buffer;
  readonly wrap: Buffer;
  constructor(secret: Buffer) {
    this.enroll = derive(secret, 'enroll-mac-v1');
    this.wrap = derive(secret, 'ca-key-wrap-v1');
  }
}

export class SecretError extends WorkrsError {
  constructor(message: string) {
    super('BAD_SECRET', 400, message);
    this.name = 'SecretError';
  }
}

/** Reads a secret file: its text, trimmed; refused when short. */
export function readSecretFile(path: string, what: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new SecretError(`${what} ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (text.length < MIN_SECRET_CHARS) throw new SecretError(`${what} ${path}: the secret must be at least ${MIN_SECRET_CHARS} characters`);
  return Buffer.from(text, 'utf8');
}

export class JoinSecret {
  private readonly current: SecretKeys;
  private readonly previous: SecretKeys | null;

  constructor(secret: Buffer, previous: Buffer | null = null) {
    this.current = new SecretKeys(secret);
    this.previous = previous === null ? null : new SecretKeys(previous);
  }

  /** HMAC-SHA256 of `parts` (JSON-encoded: unambiguous) under the current enrollment key. */
  mac(parts: unknown[]): Buffer {
    return macWith(this.current.enroll, parts);
  }

  /** Whether `proof` is the MAC of `parts` under the current or the previous secret. */
  verify(parts: unknown[], proof: Buffer): boolean {
    for (const keys of [this.current, this.previous]) {
      if (keys === null) continue;
      const expected = macWith(keys.enroll, parts);
      if (proof.length === expected.length && timingSafeEqual(proof, expected)) return true;
    }
    return false;
  }

  /** Encrypts `plain` under the current wrapping key: version ‖ iv ‖ tag ‖ ciphertext. */
  wrap(plain: Buffer, label: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.wrap, iv);
    cipher.setAAD(Buffer.from(label, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([Buffer.from([WRAP_VERSION]), iv, cipher.getAuthTag(), body]);
  }

  /** Opens what wrap made; `rewrap` is true when it took the previous secret (write it again, wrapped under the new one). Null when neither opens it. */
  unwrap(blob: Buffer, label: string): { plain: Buffer; rewrap: boolean } | null {
    if (blob.length < 1 + IV_BYTES + TAG_BYTES || blob[0] !== WRAP_VERSION) return null;
    const iv = blob.subarray(1, 1 + IV_BYTES);
    const tag = blob.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const body = blob.subarray(1 + IV_BYTES + TAG_BYTES);
    for (const keys of [this.current, this.previous]) {
      if (keys === null) continue;
      try {
        const decipher = createDecipheriv('aes-256-gcm', keys.wrap, iv);
        decipher.setAAD(Buffer.from(label, 'utf8'));
        decipher.setAuthTag(tag);
        return { plain: Buffer.concat([decipher.update(body), decipher.final()]), rewrap: keys !== this.current };
      } catch {
        // not this key
      }
    }
    return null;
  }
}

function macWith(key: Buffer, parts: unknown[]): Buffer {
  return createHmac('sha256', key).update(JSON.stringify(parts)).digest();
}
