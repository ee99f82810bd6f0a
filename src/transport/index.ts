// Peer links between nodes: authenticated websockets carrying batches of msgpack frames.
export { CloseCode, PeerTransport, type FrameHandler, type PeerLinkStats, type PeerTransportOptions, type TransportStats } from './peer-transport.js';
export { PEER_PATH, parsePeerAddress, peerUrl } from './address.js';
export type { BackoffOptions } from '../util/backoff.js';
