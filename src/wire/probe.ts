/**
 * Failure-detector datagram (SWIM probes, Lifeguard extensions), sent over UDP to a member's
 * receiver port number:
 *
 *   "CLPR" | version u8 | kind u8 | flags u8 (1 = MAC, 2 = SUSPECTED) | reserved u8 | timestamp f64 |
 *   seq u32 | incarnation u32 | sender id (16) | subject id (16) | MAC (16, with a cluster key)
 *
 * Fixed size: 56 bytes, 72 with a key. `subject` is the member the message is about (the probe
 * target, the member an ack vouches for, the suspect). A datagram of any other length, magic,
 * version or kind, a MAC that fails, or (with a key) a timestamp outside the replay window is
 * refused. Replays inside the window gain nothing: an ack must match a probe sequence the
 * receiver has open, and suspect/alive claims only move a member's incarnation forward.
 */
import { FrameError } from '../core/errors.js';
import { type ClusterKeys, HEARTBEAT_MAC_BYTES } from './auth.js';

const MAGIC = 0x434c5052; // "CLPR"
export const PROBE_VERSION = 1;
/** Append-only. */
export const ProbeKind = {
  /** Are you alive? (`subject` = the target; SUSPECTED flag: the sender suspects it at `incarnation`). */
  PING: 1,
  /** `subject` is alive at `incarnation` (answer to PING or PING_REQ with the same `seq`). */
  ACK: 2,
  /** Please probe `subject` for me and answer ACK or NACK with this `seq` (indirect probe). */
  PING_REQ: 3,
  /** I probed `subject` for you and heard nothing within my probe timeout (Lifeguard). */
  NACK: 4,
  /** I suspect `subject` at `incarnation`. */
  SUSPECT: 5,
  /** I (`subject` = sender) am alive at `incarnation` (a refutation). */
  ALIVE: 6,
} as const;
export type ProbeKind = (typeof ProbeKind)[keyof typeof ProbeKind];

const FLAG_MAC = 1;
const FLAG_SUSPECTED = 2;
export const PROBE_BYTES = 56;

export interface Probe {
  readonly kind: ProbeKind;
  readonly seq: number;
  readonly incarnation: number;
  /** PING only: the sender suspects the target at `incarnation` (Lifeguard's buddy system). */
  readonly suspected: boolean;
  readonly sender: string;
  readonly subject: string;
}

export function encodeProbe(p: Probe, keys: ClusterKeys | undefined): Buffer {
  const buf = Buffer.allocUnsafe(PROBE_BYTES + (keys ? HEARTBEAT_MAC_BYTES : 0));
  buf.writeUInt32BE(MAGIC, 0);
  buf[4] = PROBE_VERSION;
  buf[5] = p.kind;
  buf[6] = (keys ? FLAG_MAC : 0) | (p.suspected ? FLAG_SUSPECTED : 0);
  buf[7] = 0;
  buf.writeDoubleBE(Date.now(), 8);
  buf.writeUInt32BE(p.seq >>> 0, 16);
  buf.writeUInt32BE(p.incarnation >>> 0, 20);
  buf.write(p.sender, 24, 16, 'hex');
  buf.write(p.subject, 40, 16, 'hex');
  if (keys) keys.heartbeatMac(buf.subarray(0, PROBE_BYTES)).copy(buf, PROBE_BYTES);
  return buf;
}

/** Checks (length and MAC first) and decodes a datagram; throws FrameError saying why it is refused. */
export function decodeProbe(buf: Buffer, keys: ClusterKeys | undefined, replayWindowMs: number): Probe {
  const expected = PROBE_BYTES + (keys ? HEARTBEAT_MAC_BYTES : 0);
  if (buf.length !== expected) throw new FrameError(`probe of ${buf.length} bytes (expected ${expected})`);
  if (buf.readUInt32BE(0) !== MAGIC) throw new FrameError('not a clowder probe');
  if (buf[4] !== PROBE_VERSION) throw new FrameError(`unsupported probe version ${buf[4]}`);
  const flags = buf[6]!;
  if (((flags & FLAG_MAC) !== 0) !== (keys !== undefined))
    throw new FrameError(
      keys ? 'probe without MAC: the sender has no cluster key' : 'probe with MAC: this node has no cluster key',
    );
  if (keys && keys.matchHeartbeat(buf.subarray(0, PROBE_BYTES), buf.subarray(PROBE_BYTES)) < 0)
    throw new FrameError('probe failed authentication: wrong cluster key');
  const kind = buf[5]!;
  if (kind < ProbeKind.PING || kind > ProbeKind.ALIVE) throw new FrameError(`unknown probe kind ${kind}`);
  if (keys && !(Math.abs(Date.now() - buf.readDoubleBE(8)) <= replayWindowMs))
    throw new FrameError(`probe timestamp outside the replay window of ${replayWindowMs} ms`);
  return {
    kind: kind as ProbeKind,
    seq: buf.readUInt32BE(16),
    incarnation: buf.readUInt32BE(20),
    suspected: (flags & FLAG_SUSPECTED) !== 0,
    sender: buf.toString('hex', 24, 40),
    subject: buf.toString('hex', 40, 56),
  };
}
