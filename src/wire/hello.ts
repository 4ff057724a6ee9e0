/**
 * HELLO and HELLO_ACK bodies: the first frame each side of a connection sends.
 *
 *   nonce (16) | timestamp f64 (ms) | descriptor length u16 | member descriptor | MAC (32, only with AUTH flag)
 *
 * The client's MAC covers "C" + its body; the server's covers "S" + the client's nonce + its body,
 * so an answer recorded from another connection is useless. The client signs with its first key;
 * the server tries each of its keys (a rotation list) and answers under the one that matched,
 * which also makes that connection's record keys. The wire format does not name the key.
 */
import { randomBytes } from 'node:crypto';
import { ClusterError, ErrorCode, FrameError, ProtocolVersionError } from '../core/errors.js';
import { type ClusterKeys, MAC_BYTES, NONCE_BYTES } from './auth.js';
import { encodeFrame, FrameFlag, FrameType } from './frame.js';
import { decodeMember, type MemberDescriptor } from './member.js';

const LABEL_C = Buffer.from('C');
const LABEL_S = Buffer.from('S');

/** A decoded, verified hello. */
export interface Hello {
  readonly nonce: Buffer;
  readonly timestamp: number;
  readonly member: MemberDescriptor;
  /** Which of the receiver's keys verified it (0 without keys). */
  readonly keyIndex: number;
}

/** Builds a HELLO (client) or HELLO_ACK (server, with the client's nonce) frame. */
export function encodeHello(
  kind: typeof FrameType.HELLO | typeof FrameType.HELLO_ACK,
  descriptor: Buffer,
  keys: ClusterKeys | undefined,
  encrypt: boolean,
  clientNonce?: Buffer,
  keyIndex = 0,
): { frame: Buffer; nonce: Buffer } {
  const nonce = randomBytes(NONCE_BYTES);
  const head = Buffer.allocUnsafe(NONCE_BYTES + 8 + 2);
  nonce.copy(head, 0);
  head.writeDoubleBE(Date.now(), NONCE_BYTES);
  head.writeUInt16BE(descriptor.length, NONCE_BYTES + 8);
  let flags = 0;
  const parts: Buffer[] = [head, descriptor];
  if (keys) {
    flags |= FrameFlag.AUTH;
    if (encrypt) flags |= FrameFlag.ENCRYPT;
    const mac =
      kind === FrameType.HELLO
        ? keys.helloMacWith(keyIndex, LABEL_C, head, descriptor)
        : keys.helloMacWith(keyIndex, LABEL_S, clientNonce!, head, descriptor);
    parts.push(mac);
  }
  return { frame: encodeFrame(kind, flags, Buffer.concat(parts)), nonce };
}

/**
 * Verifies and decodes a hello body. The MAC is checked before the descriptor is parsed: under
 * each key, or only under key `onlyKey` (a client checking the answer to the hello it signed).
 * @throws FrameError with the reason (wrong key, no key, stale timestamp, malformed);
 *   ProtocolVersionError (after verification) for a member that shares no protocol version with this node.
 */
export function decodeHello(
  kind: typeof FrameType.HELLO | typeof FrameType.HELLO_ACK,
  flags: number,
  body: Buffer,
  keys: ClusterKeys | undefined,
  replayWindowMs: number,
  clientNonce?: Buffer,
  onlyKey?: number,
): Hello {
  const hasMac = (flags & FrameFlag.AUTH) !== 0;
  if (keys && !hasMac) throw authError('peer sent no MAC: it has no cluster key, this node requires one');
  if (!keys && hasMac)
    throw authError('peer uses a cluster key and this node has none: configure the same clusterKey on every node');
  const macLen = hasMac ? MAC_BYTES : 0;
  if (body.length < NONCE_BYTES + 10 + macLen) throw new FrameError('hello too short');
  const descLen = body.readUInt16BE(NONCE_BYTES + 8);
  const descEnd = NONCE_BYTES + 10 + descLen;
  if (descEnd + macLen !== body.length) throw new FrameError('hello length mismatch');
  let keyIndex = 0;
  if (keys) {
    const head = body.subarray(0, NONCE_BYTES + 10);
    const desc = body.subarray(NONCE_BYTES + 10, descEnd);
    const parts = kind === FrameType.HELLO ? [LABEL_C, head, desc] : [LABEL_S, clientNonce!, head, desc];
    keyIndex = keys.matchHello(body.subarray(descEnd), parts, onlyKey);
    if (keyIndex < 0) throw authError('hello failed authentication: wrong cluster key');
  }
  const timestamp = body.readDoubleBE(NONCE_BYTES);
  if (keys && !(Math.abs(Date.now() - timestamp) <= replayWindowMs)) {
    throw authError(
      `hello timestamp outside the replay window of ${replayWindowMs} ms (replayed, or clocks out of sync)`,
    );
  }
  const nonce = Buffer.from(body.subarray(0, NONCE_BYTES));
  let member: MemberDescriptor;
  try {
    member = decodeMember(body.subarray(NONCE_BYTES + 10, descEnd));
  } catch (err) {
    // Verified, but from a member of another protocol version: the receiver answers it anyway
    // (so the peer learns this node's versions and refuses it too) and closes.
    if (err instanceof ProtocolVersionError) err.hello = { nonce, keyIndex };
    throw err;
  }
  return { nonce, timestamp, member, keyIndex };
}

/** Authentication failures are ERR_CLOWDER_AUTH (counted apart from malformed input). */
function authError(message: string): ClusterError {
  return new ClusterError(ErrorCode.AUTH, message);
}
