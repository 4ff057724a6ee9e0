/** Transport counters, shared by the receiver and every connection of one channel. */
export interface TransportStats {
  /** Frames and bytes received (after unsealing) and sent. */
  framesIn: number;
  bytesIn: number;
  bytesOut: number;
  /** Inbound connections accepted / refused (maxConnections) / closed for a protocol violation. */
  connectionsAccepted: number;
  connectionsRefused: number;
  protocolErrors: number;
  /** Hellos or records that failed authentication (wrong or missing cluster key, tampering, replay). */
  authFailures: number;
  /** Connections closed for taking longer than handshakeTimeoutMs to hello or to send a first record (also protocolErrors). */
  handshakeTimeouts: number;
  /** Inbound connections closed after idleTimeoutMs without a byte. */
  idleTimeouts: number;
  /** Inbound connections closed because one frame took longer than idleTimeoutMs to arrive (slowloris). */
  slowFrames: number;
  /** Inbound connections refused because their address had maxConnectionsPerAddress already. */
  connectionsRefusedPerAddress: number;
  /** Hellos whose nonce was seen before: captured and replayed (also authFailures). */
  helloReplays: number;
  /**
   * Members refused for sharing no protocol version with this node: their verified hellos, hello
   * answers and heartbeats (not protocolErrors). Logged at most once a minute per peer address.
   */
  refusedProtocolVersion: number;
  /** Outbound connections opened and lost. */
  connects: number;
  disconnects: number;
  /** Outbound connections opened over a member's local socket (also in connects). */
  localConnects: number;
  /** Attempts that found no member listening on the local socket and went on over TCP. */
  localMisses: number;
}

export function createTransportStats(): TransportStats {
  return {
    framesIn: 0,
    bytesIn: 0,
    bytesOut: 0,
    connectionsAccepted: 0,
    connectionsRefused: 0,
    protocolErrors: 0,
    authFailures: 0,
    handshakeTimeouts: 0,
    idleTimeouts: 0,
    slowFrames: 0,
    connectionsRefusedPerAddress: 0,
    helloReplays: 0,
    refusedProtocolVersion: 0,
    connects: 0,
    disconnects: 0,
    localConnects: 0,
    localMisses: 0,
  };
}
