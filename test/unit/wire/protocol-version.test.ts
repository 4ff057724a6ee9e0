/**
 * Protocol versions (src/wire/member.ts): a node speaks [MIN_PROTOCOL_VERSION, PROTOCOL_VERSION];
 * two nodes talk when their ranges overlap. The descriptor carries both ends; a member sharing no
 * version is refused with ProtocolVersionError, and only after its hello or heartbeat verified.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ClusterError, ErrorCode, FrameError, ProtocolVersionError } from '../../../src/core/errors.js';
import { ClusterKeys } from '../../../src/wire/auth.js';
import { FrameType } from '../../../src/wire/frame.js';
import { decodeHeartbeat, encodeHeartbeat, HeartbeatKind } from '../../../src/wire/heartbeat.js';
import { decodeHello, encodeHello } from '../../../src/wire/hello.js';
import {
  decodeMember,
  encodeMember,
  type MemberDescriptor,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  sharedProtocolVersion,
} from '../../../src/wire/member.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

const KEYS = new ClusterKeys('correct-horse-battery-staple-cluster-key-0001');
const OTHER = new ClusterKeys('wrong-horse-battery-staple-cluster-key-00002');

function member(protocolVersion: number, minProtocolVersion: number): MemberDescriptor {
  return {
    id: randomBytes(16).toString('hex'),
    protocolVersion,
    minProtocolVersion,
    host: '127.0.0.1',
    port: 4000,
    name: 'n',
    domain: 'd',
    startTime: 1_700_000_000_000,
    payload: new Uint8Array(0),
  };
}

/** The frame body of an encoded HELLO (header stripped). */
function helloBody(frame: Buffer): { flags: number; body: Buffer } {
  return { flags: frame.readUInt16BE(4), body: frame.subarray(10) };
}

describe('protocol versions', () => {
  it('this build speaks a non-empty range', () => {
    assert.ok(MIN_PROTOCOL_VERSION >= 2 && MIN_PROTOCOL_VERSION <= PROTOCOL_VERSION);
  });

  it('two ranges talk in the newest version both speak, or not at all', () => {
    assert.equal(sharedProtocolVersion(2, 2, 2, 2), 2);
    assert.equal(sharedProtocolVersion(2, 3, 2, 2), 2, 'a +1 node that still speaks 2');
    assert.equal(sharedProtocolVersion(2, 2, 2, 3), 2, 'the same seen from the +1 node');
    assert.equal(sharedProtocolVersion(3, 4, 2, 3), 3);
    assert.equal(sharedProtocolVersion(3, 3, 2, 2), undefined, 'a node that dropped 2');
    assert.equal(sharedProtocolVersion(2, 2, 3, 3), undefined);
    assert.equal(sharedProtocolVersion(1, 1, 2, 2), undefined);
  });

  it('the rule is symmetric: both ends of a connection reach the same verdict', () => {
    const range = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map(([a, b]) => ({
      min: Math.min(a, b),
      cur: Math.max(a, b),
    }));
    fc.assert(
      fc.property(range, range, (a, b) => {
        const ab = sharedProtocolVersion(a.min, a.cur, b.min, b.cur);
        assert.equal(ab, sharedProtocolVersion(b.min, b.cur, a.min, a.cur));
        if (ab !== undefined) assert.ok(ab >= a.min && ab <= a.cur && ab >= b.min && ab <= b.cur);
      }),
      fuzzRuns(500),
    );
  });

  it('a descriptor carries both ends of the range', () => {
    const m = member(PROTOCOL_VERSION + 1, PROTOCOL_VERSION);
    const back = decodeMember(encodeMember(m));
    assert.equal(back.protocolVersion, PROTOCOL_VERSION + 1);
    assert.equal(back.minProtocolVersion, PROTOCOL_VERSION);
  });

  it('a member sharing no version is refused with its versions, before the rest is parsed', () => {
    const m = member(PROTOCOL_VERSION + 2, PROTOCOL_VERSION + 1);
    const bytes = encodeMember(m);
    // Whatever follows the versions (another version's layout) is not read.
    const rest = Buffer.concat([bytes.subarray(0, 18), Buffer.from('garbage of another layout')]);
    for (const b of [bytes, rest]) {
      assert.throws(
        () => decodeMember(b),
        (err: unknown) => {
          assert.ok(err instanceof ProtocolVersionError);
          assert.ok(err instanceof ClusterError);
          assert.equal(err.code, ErrorCode.PROTOCOL_VERSION);
          assert.equal(err.peerId, m.id);
          assert.deepEqual(
            [err.peerMin, err.peerCurrent, err.localMin, err.localCurrent],
            [PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION],
          );
          assert.match(err.message, /no version in common/);
          return true;
        },
      );
    }
  });

  it('a version 1 descriptor (no range: byte 17 was the port) is refused as version 1, not as garbage', () => {
    // id | version 1 | port u16 | startTime f64 | host | name | domain | payload: the layout before ranges.
    const v1 = Buffer.concat([
      randomBytes(16),
      Buffer.from([1]),
      Buffer.from([0x0f, 0xa0]),
      Buffer.alloc(8),
      Buffer.from([9]),
      Buffer.from('127.0.0.1'),
      Buffer.from([1, 0x61, 0, 0, 0]),
    ]);
    assert.throws(
      () => decodeMember(v1),
      (err: unknown) => err instanceof ProtocolVersionError && err.peerMin === 1 && err.peerCurrent === 1,
    );
  });

  it('an oldest version above the newest is malformed', () => {
    const bytes = encodeMember(member(PROTOCOL_VERSION, PROTOCOL_VERSION));
    bytes[17] = PROTOCOL_VERSION + 1;
    assert.throws(() => decodeMember(bytes), FrameError);
  });

  it('a verified hello of another version is refused with what an answer needs', () => {
    const desc = encodeMember(member(PROTOCOL_VERSION + 2, PROTOCOL_VERSION + 2));
    const { frame, nonce } = encodeHello(FrameType.HELLO, desc, KEYS, true);
    const { flags, body } = helloBody(frame);
    assert.throws(
      () => decodeHello(FrameType.HELLO, flags, body, KEYS, 30_000),
      (err: unknown) =>
        err instanceof ProtocolVersionError && err.hello?.nonce.equals(nonce) === true && err.hello.keyIndex === 0,
    );
    // Under the wrong key it is an authentication failure: nobody without the key is counted as a version refusal.
    assert.throws(
      () => decodeHello(FrameType.HELLO, flags, body, OTHER, 30_000),
      (err: unknown) => !(err instanceof ProtocolVersionError) && (err as ClusterError).code === ErrorCode.AUTH,
    );
  });

  it('a hello of an adjacent version is accepted', () => {
    const desc = encodeMember(member(PROTOCOL_VERSION + 1, PROTOCOL_VERSION));
    const { frame } = encodeHello(FrameType.HELLO, desc, KEYS, true);
    const { flags, body } = helloBody(frame);
    assert.equal(decodeHello(FrameType.HELLO, flags, body, KEYS, 30_000).member.protocolVersion, PROTOCOL_VERSION + 1);
  });

  it('a heartbeat of another version is refused after its MAC verified', () => {
    const desc = encodeMember(member(PROTOCOL_VERSION + 2, PROTOCOL_VERSION + 2));
    const hb = encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, KEYS, true);
    assert.throws(() => decodeHeartbeat(hb, KEYS, 30_000, true), ProtocolVersionError);
    assert.throws(
      () => decodeHeartbeat(hb, OTHER, 30_000, true),
      (err: unknown) => err instanceof FrameError && /authentication/.test(err.message),
    );
  });
});
