// Peer addresses as configured: "host:port", IPv6 hosts in brackets ("[::1]:7804").

export const PEER_PATH = '/peer';

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

/** The websocket URL of a peer's link endpoint (wss in secure mode). */
export function peerUrl(address: string, secure = false): string {
  const { host, port } = parsePeerAddress(address);
  return `${secure ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${port}${PEER_PATH}`;
}
