/**
 * Member descriptor: what a member advertises in heartbeats and hellos (Tomcat's member package).
 *
 *   id (16) | protocolVersion u8 | minProtocolVersion u8 | port u16 | startTime f64 (ms since epoch) |
 *   host (u8 len + UTF-8) | name (u8 len + UTF-8) | domain (u8 len + UTF-8) | payload (u16 len + bytes)
 *
 * The first 18 bytes (id and the two versions) keep their place in every version: a node reads a
 * peer's versions before anything else, and refuses a peer it shares no version with without
 * parsing the rest (whose layout may be another version's).
 */
import { FrameError, ProtocolVersionError } from '../core/errors.js';

/**
 * The protocol version this build speaks best, carried in every descriptor. Version 1 (no version
 * range in the descriptor) predates negotiation. Bump it for any change to what nodes send each
 * other (docs/wire-format.md, "Protocol versions").
 */
export const PROTOCOL_VERSION = 2;
/**
 * The oldest version this build still speaks. A node speaks every version in
 * [MIN_PROTOCOL_VERSION, PROTOCOL_VERSION]; two nodes talk when their ranges overlap, in the
 * newest version both speak. Keep it at most PROTOCOL_VERSION - 1 after a bump, so that adjacent
 * versions interoperate during a rolling upgrade.
 */
export const MIN_PROTOCOL_VERSION = 2;
/** Largest application payload a member may advertise (it travels in every heartbeat). */
export const MAX_MEMBER_PAYLOAD = 4096;
export const MEMBER_ID_BYTES = 16;

/** A member's advertised identity. `payload` is raw bytes (the channel decodes it with the codec). */
export interface MemberDescriptor {
  /** 32 lowercase hex characters: 16 random bytes chosen at start, so a restarted process is a new member. */
  readonly id: string;
  /** The newest protocol version the member speaks. */
  readonly protocolVersion: number;
  /** The oldest protocol version the member speaks; absent when encoding: only `protocolVersion`. */
  readonly minProtocolVersion?: number;
  /** Host (address) of the member's receiver, as advertised. */
  readonly host: string;
  /** Port of the member's receiver. */
  readonly port: number;
  /** Member name: the node's jvmRoute. */
  readonly name: string;
  /** Cluster partition. */
  readonly domain: string;
  /** When the member started (ms since epoch). */
  readonly startTime: number;
  /** Application payload bytes (codec-encoded), at most MAX_MEMBER_PAYLOAD. */
  readonly payload: Uint8Array;
}

function str(buf: Buffer, off: number, value: string, lenBytes: 1 | 2): number {
  const n = Buffer.byteLength(value);
  if (lenBytes === 1) buf[off] = n;
  else buf.writeUInt16BE(n, off);
  buf.write(value, off + lenBytes, 'utf8');
  return off + lenBytes + n;
}

/** Encodes a descriptor. Throws if a string is longer than 255 bytes or the payload too large. */
export function encodeMember(m: MemberDescriptor): Buffer {
  for (const [k, v] of [
    ['host', m.host],
    ['name', m.name],
    ['domain', m.domain],
  ] as const) {
    if (Buffer.byteLength(v) > 255) throw new FrameError(`member ${k} longer than 255 bytes`);
  }
  if (m.payload.length > MAX_MEMBER_PAYLOAD)
    throw new FrameError(`member payload of ${m.payload.length} bytes exceeds ${MAX_MEMBER_PAYLOAD}`);
  const size =
    16 +
    2 +
    2 +
    8 +
    3 +
    Buffer.byteLength(m.host) +
    Buffer.byteLength(m.name) +
    Buffer.byteLength(m.domain) +
    2 +
    m.payload.length;
  const buf = Buffer.allocUnsafe(size);
  buf.write(m.id, 0, 'hex');
  buf[16] = m.protocolVersion;
  buf[17] = m.minProtocolVersion ?? m.protocolVersion;
  buf.writeUInt16BE(m.port, 18);
  buf.writeDoubleBE(m.startTime, 20);
  let off = str(buf, 28, m.host, 1);
  off = str(buf, off, m.name, 1);
  off = str(buf, off, m.domain, 1);
  buf.writeUInt16BE(m.payload.length, off);
  buf.set(m.payload, off + 2);
  return buf;
}

/**
 * The version two nodes speak with each other: the newest in both ranges, or undefined when the
 * ranges [localMin, localCurrent] and [peerMin, peerCurrent] do not overlap. The rule is symmetric,
 * so both sides of a connection reach the same verdict.
 */
export function sharedProtocolVersion(
  peerMin: number,
  peerCurrent: number,
  localMin = MIN_PROTOCOL_VERSION,
  localCurrent = PROTOCOL_VERSION,
): number | undefined {
  const v = Math.min(localCurrent, peerCurrent);
  return v >= Math.max(localMin, peerMin) ? v : undefined;
}

/**
 * Decodes a descriptor from untrusted bytes; throws FrameError on any inconsistency, and
 * ProtocolVersionError (before parsing past the versions) for a member that shares no protocol
 * version with this build.
 */
export function decodeMember(buf: Buffer): MemberDescriptor {
  const fail = (why: string): never => {
    throw new FrameError(`bad member descriptor: ${why}`);
  };
  if (buf.length < 18) fail('too short');
  const id = buf.toString('hex', 0, 16);
  const protocolVersion = buf[16]!;
  // Version 1 descriptors had no range (byte 17 was the port's high byte): they speak only 1.
  const minProtocolVersion = protocolVersion < 2 ? protocolVersion : buf[17]!;
  if (minProtocolVersion > protocolVersion) fail('oldest protocol version above the newest');
  if (sharedProtocolVersion(minProtocolVersion, protocolVersion) === undefined)
    throw new ProtocolVersionError(id, minProtocolVersion, protocolVersion, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
  if (buf.length < 16 + 2 + 2 + 8 + 3 + 2) fail('too short');
  const port = buf.readUInt16BE(18);
  const startTime = buf.readDoubleBE(20);
  if (!Number.isFinite(startTime)) fail('bad start time');
  let off = 28;
  const readStr = (): string => {
    if (off + 1 > buf.length) fail('truncated');
    const n = buf[off]!;
    if (off + 1 + n > buf.length) fail('truncated');
    const s = buf.toString('utf8', off + 1, off + 1 + n);
    off += 1 + n;
    return s;
  };
  const host = readStr();
  const name = readStr();
  const domain = readStr();
  if (off + 2 > buf.length) fail('truncated');
  const plen = buf.readUInt16BE(off);
  if (plen > MAX_MEMBER_PAYLOAD) fail('payload too large');
  if (off + 2 + plen !== buf.length) fail('length mismatch');
  const payload = Buffer.from(buf.subarray(off + 2, off + 2 + plen));
  if (port === 0 || host.length === 0 || name.length === 0) fail('empty host, name or port');
  return { id, protocolVersion, minProtocolVersion, host, port, name, domain, startTime, payload };
}
