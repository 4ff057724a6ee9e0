/**
 * Multicast heartbeat datagram:
 *
 *   "CLHB" | version u8 | kind u8 (1 alive, 2 leaving) | flags u8 (1 = MAC, 2 = ENCRYPT) | seq u64 | timestamp f64 |
 *   descriptor length u16 | member descriptor | MAC (16, with a cluster key)
 *
 * `seq` starts at the sender's start time in microseconds and grows by one with every heartbeat of
 * a process; receivers drop a heartbeat whose seq is not above the last one seen from that member
 * or implausibly far above it (membership/sequence-floors.ts), and (with a key) one whose timestamp
 * is outside the window.
 */
import { FrameError } from '../core/errors.js';
import { type ClusterKeys, HEARTBEAT_MAC_BYTES } from './auth.js';
import { decodeMember, type MemberDescriptor } from './member.js';

const MAGIC = Buffer.from('CLHB');
export const HEARTBEAT_VERSION = 1;
export const HeartbeatKind = { ALIVE: 1, LEAVING: 2 } as const;
export type HeartbeatKind = (typeof HeartbeatKind)[keyof typeof HeartbeatKind];
const FIXED = 4 + 1 + 1 + 1 + 8 + 8 + 2;
const FLAG_MAC = 1;
/** The sender encrypts its records: a node with another setting could not talk to it. */
const FLAG_ENCRYPT = 2;

export interface Heartbeat {
  readonly kind: HeartbeatKind;
  readonly seq: bigint;
  readonly timestamp: number;
  readonly member: MemberDescriptor;
}

export function encodeHeartbeat(
  kind: HeartbeatKind,
  seq: bigint,
  descriptor: Buffer,
  keys: ClusterKeys | undefined,
  encrypt = false,
): Buffer {
  const macLen = keys ? HEARTBEAT_MAC_BYTES : 0;
  const buf = Buffer.allocUnsafe(FIXED + descriptor.length + macLen);
  MAGIC.copy(buf, 0);
  buf[4] = HEARTBEAT_VERSION;
  buf[5] = kind;
  buf[6] = keys ? (encrypt ? FLAG_MAC | FLAG_ENCRYPT : FLAG_MAC) : 0;
  buf.writeBigUInt64BE(seq, 7);
  buf.writeDoubleBE(Date.now(), 15);
  buf.writeUInt16BE(descriptor.length, 23);
  descriptor.copy(buf, FIXED);
  if (keys) keys.heartbeatMac(buf.subarray(0, FIXED + descriptor.length)).copy(buf, FIXED + descriptor.length);
  return buf;
}

/** Verifies (MAC first) and decodes a datagram; throws FrameError saying why it is refused. */
export function decodeHeartbeat(
  buf: Buffer,
  keys: ClusterKeys | undefined,
  replayWindowMs: number,
  encrypt = false,
): Heartbeat {
  if (buf.length < FIXED || !buf.subarray(0, 4).equals(MAGIC)) throw new FrameError('not a clowder heartbeat');
  if (buf[4] !== HEARTBEAT_VERSION) throw new FrameError(`unsupported heartbeat version ${buf[4]}`);
  const hasMac = (buf[6]! & FLAG_MAC) !== 0;
  if (keys && !hasMac) throw new FrameError('heartbeat without MAC: the sender has no cluster key');
  if (!keys && hasMac) throw new FrameError('heartbeat with MAC: the sender uses a cluster key and this node has none');
  const macLen = hasMac ? HEARTBEAT_MAC_BYTES : 0;
  const descLen = buf.readUInt16BE(23);
  if (FIXED + descLen + macLen !== buf.length) throw new FrameError('heartbeat length mismatch');
  // Any key of a rotation list is accepted (the sender signs with its first).
  if (keys && keys.matchHeartbeat(buf.subarray(0, FIXED + descLen), buf.subarray(FIXED + descLen)) < 0) {
    throw new FrameError('heartbeat failed authentication: wrong cluster key');
  }
  if (keys && ((buf[6]! & FLAG_ENCRYPT) !== 0) !== encrypt) {
    throw new FrameError(
      `heartbeat from a node whose encrypt setting differs from this node's (${encrypt}): use the same on every node`,
    );
  }
  const kind = buf[5];
  if (kind !== HeartbeatKind.ALIVE && kind !== HeartbeatKind.LEAVING)
    throw new FrameError(`unknown heartbeat kind ${kind}`);
  const timestamp = buf.readDoubleBE(15);
  if (keys && !(Math.abs(Date.now() - timestamp) <= replayWindowMs)) {
    throw new FrameError(`heartbeat timestamp outside the replay window of ${replayWindowMs} ms`);
  }
  return { kind, seq: buf.readBigUInt64BE(7), timestamp, member: decodeMember(buf.subarray(FIXED, FIXED + descLen)) };
}
