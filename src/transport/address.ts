// Where a peer's link endpoint is: "host:port" as configured (src/util/peer-address.ts),
// the path of the link, and the websocket URL.
import { parsePeerAddress } from '../util/peer-address.js';

export { parsePeerAddress, type PeerAddress } from '../util/peer-address.js';

export const PEER_PATH = '/peer';

/** The websocket URL of a peer's link endpoint (wss in secure mode). */
export function peerUrl(address: string, secure = false): string {
  const { host, port } = parsePeerAddress(address);
  return `${secure ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${port}${PEER_PATH}`;
}
