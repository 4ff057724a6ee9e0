import type { ProtocolVersionError } from '../core/errors.js';
import type { ClusterKeys } from '../wire/auth.js';
import type { TransportStats } from './stats.js';

/** What the transport needs from the channel config, flattened for the hot path. */
export interface TransportSettings {
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly maxRetryAttempts: number;
  readonly maxQueueBytes: number;
  readonly maxFrameBytes: number;
  readonly replayWindowMs: number;
  readonly handshakeTimeoutMs: number;
  /** Inbound: close a connection silent this long; outbound: PING an idle connection every third of it. */
  readonly idleTimeoutMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly keys: ClusterKeys | undefined;
  readonly encrypt: boolean;
  /** Try a known member's local socket (local-socket.ts) before TCP. */
  readonly localSockets: boolean;
  /** The local member descriptor (re-read at every hello: the payload may change). */
  readonly localDescriptor: () => Buffer;
  readonly stats: TransportStats;
  /**
   * A member was refused for its protocol version (already counted in `stats`): `peer` is its
   * address, `via` where it was seen. The channel logs it, rate-limited.
   */
  readonly versionRefused?: (err: ProtocolVersionError, peer: string, via: 'hello' | 'hello answer') => void;
}
