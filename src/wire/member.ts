/**
 * Member descriptor: what a member advertises in heartbeats and hellos (Tomcat's member package).
 *
 *   id (16) | protocolVersion u8 | port u16 | startTime f64 (ms since epoch) |
 *   host (u8 len + UTF-8) | name (u8 len + UTF-8) | domain (u8 len + UTF-8) | payload (u16 len + bytes)
 */
import { FrameError } from '../core/errors.js';

/** Protocol version carried in every descriptor; members with another version are refused. */
export const PROTOCOL_VERSION = 1;
/** Largest application payload a member may advertise (it travels in every heartbeat). */
export const MAX_MEMBER_PAYLOAD = 4096;
export const MEMBER_ID_BYTES = 16;

/** A member's advertised identity. `payload` is raw bytes (the channel decodes it with the codec). */
export interface MemberDescriptor {
  /** 32 lowercase hex characters: 16 random bytes chosen at start, so a restarted process is a new member. */
  readonly id: string;
  readonly protocolVersion: number;
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
    1 +
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
  buf.writeUInt16BE(m.port, 17);
  buf.writeDoubleBE(m.startTime, 19);
  let off = str(buf, 27, m.host, 1);
  off = str(buf, off, m.name, 1);
  off = str(buf, off, m.domain, 1);
  buf.writeUInt16BE(m.payload.length, off);
  buf.set(m.payload, off + 2);
  return buf;
}

/** Decodes a descriptor from untrusted bytes; throws FrameError on any inconsistency. */
export function decodeMember(buf: Buffer): MemberDescriptor {
  const fail = (why: string): never => {
    throw new FrameError(`bad member descriptor: ${why}`);
  };
  if (buf.length < 16 + 1 + 2 + 8 + 3 + 2) fail('too short');
  const id = buf.toString('hex', 0, 16);
  const protocolVersion = buf[16]!;
  const port = buf.readUInt16BE(17);
  const startTime = buf.readDoubleBE(19);
  if (!Number.isFinite(startTime)) fail('bad start time');
  let off = 27;
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
  return { id, protocolVersion, host, port, name, domain, startTime, payload };
}
