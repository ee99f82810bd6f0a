// Peer ids and peer addresses as nodes are configured with them: checked the same by
// the peer links, the bulk transfer and node registration.

/** Ids travel in the link handshake with a one-byte length. */
export const MAX_PEER_ID_BYTES = 255;

/** Throws unless `id` is a non-empty string that fits the one-byte length prefix. */
export function assertPeerId(id: string, what: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new TypeError(`${what}: a peer id must be a non-empty string`);
  const sizeBytes = Buffer.byteLength(id, 'utf8');
  if (sizeBytes > MAX_PEER_ID_BYTES) throw new TypeError(`${what}: peer id is ${sizeBytes} bytes, at most ${MAX_PEER_ID_BYTES} allowed`);
}

/** "host:port", IPv6 hosts in brackets ("[::1]:7804"). */
export interface PeerAddress {
  host: string; // without brackets
  port: number;
}

export function parsePeerAddress(address: string): PeerAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(address);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`peer address "${address}" is not host:port (IPv6 as [addr]:port)`);
  }
  return { host, port };
}
