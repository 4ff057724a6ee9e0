import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ClusterError, ErrorCode, FrameError } from '../../../src/core/errors.js';
import { ClusterKeys } from '../../../src/wire/auth.js';
import {
  encodeFrame,
  encodeNack,
  encodeSeqFrame,
  FrameFlag,
  FrameReader,
  FrameType,
  HEADER_BYTES,
  MAGIC0,
  MAGIC1,
  WIRE_VERSION,
} from '../../../src/wire/frame.js';
import { decodeHeartbeat, encodeHeartbeat, HeartbeatKind } from '../../../src/wire/heartbeat.js';
import { decodeHello, encodeHello } from '../../../src/wire/hello.js';
import {
  decodeMember,
  encodeMember,
  MAX_MEMBER_PAYLOAD,
  type MemberDescriptor,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
} from '../../../src/wire/member.js';

const KEY = 'a-cluster-key-of-at-least-32-characters!';
const OTHER_KEY = 'another-cluster-key-of-32-characters-or-more';
const WINDOW = 30_000;

interface Got {
  type: number;
  flags: number;
  body: Buffer;
}

/** A reader that records copies of every frame it delivers. */
function recorder(limit = 1 << 20): { reader: FrameReader; got: Got[] } {
  const got: Got[] = [];
  const reader = new FrameReader(limit, (type, flags, body) => {
    got.push({ type, flags, body: Buffer.from(body) });
  });
  return { reader, got };
}

function expectFrameError(fn: () => unknown, pattern: RegExp): FrameError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof FrameError, `expected FrameError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.FRAME);
  assert.match(caught.message, pattern);
  return caught;
}

/** Authentication failures (wrong/missing key, tampering, staleness) are ERR_CLOWDER_AUTH, not malformed input. */
function expectAuthError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ClusterError, `expected ClusterError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.AUTH);
  assert.match(caught.message, pattern);
}

/** A header with arbitrary (possibly invalid) fields. */
function rawHeader(fields: {
  m0?: number;
  m1?: number;
  version?: number;
  type?: number;
  flags?: number;
  length?: number;
}): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h[0] = fields.m0 ?? MAGIC0;
  h[1] = fields.m1 ?? MAGIC1;
  h[2] = fields.version ?? WIRE_VERSION;
  h[3] = fields.type ?? FrameType.DATA;
  h.writeUInt16BE(fields.flags ?? 0, 4);
  h.writeUInt32BE(fields.length ?? 0, 6);
  return h;
}

/** A varied sequence of frames: empty bodies, tiny, larger, every type. */
function sampleFrames(): { frames: Buffer[]; expected: Got[] } {
  const expected: Got[] = [
    { type: FrameType.LEAVE, flags: 0, body: Buffer.alloc(0) },
    { type: FrameType.DATA, flags: 0x0206, body: Buffer.from([0, 0, 0, 1, 0xaa]) },
    { type: FrameType.PING, flags: 0, body: Buffer.from([0, 0, 0, 7]) },
    { type: FrameType.DATA, flags: FrameFlag.FRAGMENT | 2, body: randomBytes(300) },
    { type: FrameType.ACK, flags: 0, body: Buffer.from([0, 0, 0, 9]) },
    { type: FrameType.SEALED, flags: 0xffff, body: randomBytes(17) },
    { type: FrameType.LEAVE, flags: 0, body: Buffer.alloc(0) },
  ];
  return { frames: expected.map((g) => encodeFrame(g.type as FrameType, g.flags, g.body)), expected };
}

describe('FrameReader', () => {
  it('delivers frames fed one byte at a time', () => {
    const { frames, expected } = sampleFrames();
    const all = Buffer.concat(frames);
    const { reader, got } = recorder();
    for (let i = 0; i < all.length; i++) {
      reader.push(all.subarray(i, i + 1));
    }
    assert.deepEqual(got, expected);
    assert.equal(reader.midFrame, false);
  });

  it('is mid-frame exactly while a frame is incomplete', () => {
    const frame = encodeFrame(FrameType.DATA, 0, Buffer.from([1, 2, 3, 4, 5]));
    const { reader, got } = recorder();
    for (let i = 0; i < frame.length - 1; i++) {
      reader.push(frame.subarray(i, i + 1));
      assert.equal(reader.midFrame, true, `after ${i + 1} bytes`);
    }
    reader.push(frame.subarray(frame.length - 1));
    assert.equal(reader.midFrame, false);
    assert.equal(got.length, 1);
  });

  it('delivers many frames from one chunk, in order', () => {
    const { frames, expected } = sampleFrames();
    const { reader, got } = recorder();
    reader.push(Buffer.concat([...frames, ...frames, ...frames]));
    assert.deepEqual(got, [...expected, ...expected, ...expected]);
    assert.equal(reader.midFrame, false);
  });

  it('handles a split at every offset of a stream of frames', () => {
    const { frames, expected } = sampleFrames();
    const all = Buffer.concat(frames);
    for (let cut = 0; cut <= all.length; cut++) {
      const { reader, got } = recorder();
      reader.push(all.subarray(0, cut));
      reader.push(all.subarray(cut));
      assert.deepEqual(got, expected, `split at ${cut}`);
      assert.equal(reader.midFrame, false, `split at ${cut}`);
    }
  });

  it('handles three-way splits across a frame boundary', () => {
    const a = encodeFrame(FrameType.DATA, 1, randomBytes(40));
    const b = encodeFrame(FrameType.PING, 0, Buffer.from([0, 0, 0, 2]));
    const all = Buffer.concat([a, b]);
    for (let i = 0; i <= all.length; i++) {
      for (let j = i; j <= all.length; j += 3) {
        const { reader, got } = recorder();
        reader.push(all.subarray(0, i));
        reader.push(all.subarray(i, j));
        reader.push(all.subarray(j));
        assert.equal(got.length, 2, `cuts ${i}/${j}`);
        assert.deepEqual(got[0]!.body, a.subarray(HEADER_BYTES));
        assert.deepEqual(got[1]!.body, b.subarray(HEADER_BYTES));
      }
    }
  });

  it('assembles frames that span chunks in one reused buffer while the policy allows, and says so', () => {
    const bodies = [randomBytes(3000), randomBytes(2500), randomBytes(40), randomBytes(3000)];
    const stream = Buffer.concat(bodies.map((b) => encodeFrame(FrameType.DATA, 0, b)));
    const run = (policy: { reuse: boolean } | undefined) => {
      const got: { body: Buffer; borrowed: boolean; memory: ArrayBufferLike; at: number }[] = [];
      const reader = new FrameReader(
        1 << 20,
        (_t, _f, body, borrowed) =>
          got.push({ body: Buffer.from(body), borrowed, memory: body.buffer, at: body.byteOffset }),
        policy,
      );
      for (let off = 0; off < stream.length; off += 1024) reader.push(Buffer.from(stream.subarray(off, off + 1024)));
      assert.deepEqual(
        got.map((g) => g.body),
        bodies,
      );
      return got;
    };
    const reused = run({ reuse: true });
    // The 40-byte frame may fit in one chunk; the large ones cannot.
    const spanning = reused.filter((g) => g.body.length > 1024);
    assert.ok(spanning.every((g) => g.borrowed));
    assert.equal(new Set(spanning.map((g) => g.memory)).size, 1, 'one buffer for every spanning frame');
    for (const g of reused.filter((g) => !g.borrowed)) assert.notEqual(g.memory, spanning[0]!.memory);
    for (const policy of [undefined, { reuse: false }]) {
      const own = run(policy);
      assert.ok(own.every((g) => !g.borrowed));
      // Small buffers may share Node's pool, so compare where each body lies, not just its memory.
      const places = own.map((g) => [...new Set(own.map((x) => x.memory))].indexOf(g.memory) * 1e9 + g.at);
      assert.equal(new Set(places).size, own.length, 'memory of its own each');
    }
  });

  it('gives a frame over the reuse limit (1 MiB) a buffer of its own even when reuse is on', () => {
    const big = randomBytes(1024 * 1024 + 1);
    const got: boolean[] = [];
    const reader = new FrameReader(4 << 20, (_t, _f, body, borrowed) => got.push(borrowed && body.equals(big)), {
      reuse: true,
    });
    const frame = encodeFrame(FrameType.DATA, 0, big);
    reader.push(frame.subarray(0, 100));
    reader.push(frame.subarray(100));
    assert.deepEqual(got, [false]);
  });

  it('accepts a body of exactly the limit', () => {
    const { reader, got } = recorder(100);
    reader.push(encodeFrame(FrameType.DATA, 0, Buffer.alloc(100, 7)));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.body.length, 100);
  });

  it('refuses a body over the limit from the header alone, before buffering any of it', () => {
    const { reader, got } = recorder(100);
    expectFrameError(() => reader.push(rawHeader({ length: 101 })), /exceeds maxFrameBytes 100/);
    assert.equal(got.length, 0);
  });

  it('refuses a 4 GiB claim from a header split over two pushes', () => {
    const { reader } = recorder(1 << 20);
    const h = rawHeader({ type: FrameType.HELLO, length: 0xffffffff });
    reader.push(h.subarray(0, 7));
    const before = process.memoryUsage().arrayBuffers;
    expectFrameError(() => reader.push(h.subarray(7)), /exceeds maxFrameBytes/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
  });

  it('checks the limit of a frame that follows a valid one in the same chunk', () => {
    const { reader, got } = recorder(64);
    const chunk = Buffer.concat([encodeFrame(FrameType.DATA, 0, Buffer.alloc(64)), rawHeader({ length: 65 })]);
    expectFrameError(() => reader.push(chunk), /exceeds/);
    assert.equal(got.length, 1);
  });

  it('setLimit raises and lowers the limit', () => {
    const { reader, got } = recorder(16);
    expectFrameError(() => reader.push(rawHeader({ length: 17 })), /exceeds maxFrameBytes 16/);
    const r2 = recorder(16);
    r2.reader.setLimit(1000);
    r2.reader.push(encodeFrame(FrameType.DATA, 0, Buffer.alloc(1000)));
    assert.equal(r2.got.length, 1);
    r2.reader.setLimit(10);
    expectFrameError(() => r2.reader.push(rawHeader({ length: 11 })), /exceeds maxFrameBytes 10/);
    assert.equal(got.length, 0);
  });

  it('refuses bad magic', () => {
    expectFrameError(() => recorder().reader.push(rawHeader({ m0: 0x47 })), /bad magic/);
    expectFrameError(() => recorder().reader.push(rawHeader({ m1: 0x0e })), /bad magic/);
    expectFrameError(() => recorder().reader.push(Buffer.from('GET / HTTP/1.1\r\n\r\n')), /bad magic/);
  });

  it('refuses another wire version', () => {
    expectFrameError(() => recorder().reader.push(rawHeader({ version: 0 })), /unsupported wire version 0/);
    expectFrameError(() => recorder().reader.push(rawHeader({ version: 2 })), /unsupported wire version 2/);
  });

  it('refuses unknown frame types', () => {
    for (const type of [0, 9, 0x7f, 0xff]) {
      expectFrameError(() => recorder().reader.push(rawHeader({ type })), new RegExp(`unknown frame type ${type}`));
    }
  });

  it('refuses a bad header that follows a good frame, after delivering the good one', () => {
    const { reader, got } = recorder();
    const good = encodeFrame(FrameType.LEAVE, 0, Buffer.alloc(0));
    expectFrameError(() => reader.push(Buffer.concat([good, rawHeader({ m0: 0 })])), /bad magic/);
    assert.equal(got.length, 1);
  });

  it('encodes sequence and NACK frames readably', () => {
    const { reader, got } = recorder();
    reader.push(Buffer.concat([encodeSeqFrame(FrameType.ACK, 0xfffffffe), encodeNack(5, 'x'.repeat(2000))]));
    assert.equal(got[0]!.type, FrameType.ACK);
    assert.equal(got[0]!.body.readUInt32BE(0), 0xfffffffe);
    assert.equal(got[1]!.type, FrameType.NACK);
    assert.equal(got[1]!.body.readUInt32BE(0), 5);
    assert.equal(got[1]!.body.readUInt16BE(4), 1000, 'reason cut to 1000 bytes');
    assert.equal(got[1]!.body.length, 6 + 1000);
  });

  it('cuts a NACK reason of multi-byte characters to at most 1000 bytes, at a character boundary', () => {
    for (const ch of ['é', '€', '😀']) {
      const { reader, got } = recorder();
      reader.push(encodeNack(7, ch.repeat(1000)));
      const len = got[0]!.body.readUInt16BE(4);
      assert.ok(len <= 1000 && len > 1000 - Buffer.byteLength(ch), `${ch}: ${len} bytes`);
      const text = got[0]!.body.subarray(6, 6 + len).toString('utf8');
      assert.equal(text, ch.repeat(len / Buffer.byteLength(ch)), 'whole characters only');
    }
  });
});

function member(over: Partial<MemberDescriptor> = {}): MemberDescriptor {
  return {
    id: randomBytes(16).toString('hex'),
    protocolVersion: PROTOCOL_VERSION,
    minProtocolVersion: MIN_PROTOCOL_VERSION,
    host: '127.0.0.1',
    port: 4000,
    name: 'node-1',
    domain: 'shop',
    startTime: 1_700_000_000_123,
    payload: new Uint8Array([1, 2, 3]),
    ...over,
  };
}

function plain(m: MemberDescriptor): MemberDescriptor {
  return { ...m, payload: new Uint8Array(m.payload) };
}

describe('member descriptor', () => {
  it('round-trips', () => {
    for (const m of [
      member(),
      member({ payload: new Uint8Array(0), domain: '' }),
      member({ host: 'h'.repeat(255), name: 'ü'.repeat(127), domain: 'd'.repeat(255) }),
      member({ payload: randomBytes(MAX_MEMBER_PAYLOAD), port: 65535 }),
    ]) {
      const back = decodeMember(encodeMember(m));
      assert.deepEqual(plain(back), plain(m));
    }
  });

  it('refuses to encode oversize strings and payloads', () => {
    expectFrameError(() => encodeMember(member({ host: 'h'.repeat(256) })), /host longer than 255/);
    expectFrameError(() => encodeMember(member({ name: 'é'.repeat(128) })), /name longer than 255/);
    expectFrameError(() => encodeMember(member({ payload: new Uint8Array(MAX_MEMBER_PAYLOAD + 1) })), /payload/);
  });

  it('rejects every truncation', () => {
    const bytes = encodeMember(member());
    for (let n = 0; n < bytes.length; n++) {
      expectFrameError(() => decodeMember(bytes.subarray(0, n)), /bad member descriptor/);
    }
  });

  it('rejects trailing bytes', () => {
    const bytes = encodeMember(member());
    expectFrameError(() => decodeMember(Buffer.concat([bytes, Buffer.from([0])])), /length mismatch/);
  });

  it('rejects string and payload lengths that disagree with the bytes', () => {
    const m = member({ payload: new Uint8Array([9, 9]) });
    const bytes = encodeMember(m);
    const hostLenAt = 28;
    const bigHost = Buffer.from(bytes);
    bigHost[hostLenAt] = 250;
    expectFrameError(() => decodeMember(bigHost), /bad member descriptor/);
    const payloadLenAt = bytes.length - 2 - 2;
    const shortPayload = Buffer.from(bytes);
    shortPayload.writeUInt16BE(1, payloadLenAt);
    expectFrameError(() => decodeMember(shortPayload), /length mismatch/);
    const longPayload = Buffer.from(bytes);
    longPayload.writeUInt16BE(3, payloadLenAt);
    expectFrameError(() => decodeMember(longPayload), /length mismatch/);
    const hugePayload = Buffer.from(bytes);
    hugePayload.writeUInt16BE(MAX_MEMBER_PAYLOAD + 1, payloadLenAt);
    expectFrameError(() => decodeMember(hugePayload), /payload too large/);
  });

  it('rejects port 0, an empty host or name, and a non-finite start time', () => {
    expectFrameError(() => decodeMember(encodeMember(member({ port: 0 }))), /empty host, name or port/);
    expectFrameError(() => decodeMember(encodeMember(member({ host: '' }))), /empty host, name or port/);
    expectFrameError(() => decodeMember(encodeMember(member({ name: '' }))), /empty host, name or port/);
    expectFrameError(() => decodeMember(encodeMember(member({ startTime: Number.NaN }))), /start time/);
  });

  it('returns a payload that does not alias the input', () => {
    const bytes = encodeMember(member());
    const m = decodeMember(bytes);
    bytes.fill(0);
    assert.deepEqual([...m.payload], [1, 2, 3]);
  });
});

/** Runs `fn` with Date.now shifted by `offsetMs`. */
function shiftedClock<T>(offsetMs: number, fn: () => T): T {
  const real = Date.now;
  Date.now = () => real() + offsetMs;
  try {
    return fn();
  } finally {
    Date.now = real;
  }
}

describe('heartbeat', () => {
  const keys = new ClusterKeys(KEY);
  const other = new ClusterKeys(OTHER_KEY);
  const m = member();
  const desc = encodeMember(m);

  it('round-trips without a key', () => {
    const hb = decodeHeartbeat(encodeHeartbeat(HeartbeatKind.ALIVE, 42n, desc, undefined), undefined, WINDOW);
    assert.equal(hb.kind, HeartbeatKind.ALIVE);
    assert.equal(hb.seq, 42n);
    assert.ok(Math.abs(hb.timestamp - Date.now()) < 5000);
    assert.deepEqual(plain(hb.member), plain(m));
  });

  it('round-trips with a key', () => {
    const seq = 2n ** 63n + 5n;
    const hb = decodeHeartbeat(encodeHeartbeat(HeartbeatKind.LEAVING, seq, desc, keys), keys, WINDOW);
    assert.equal(hb.kind, HeartbeatKind.LEAVING);
    assert.equal(hb.seq, seq);
    assert.deepEqual(plain(hb.member), plain(m));
  });

  it('a key on one side only is refused, both ways', () => {
    expectFrameError(
      () => decodeHeartbeat(encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, undefined), keys, WINDOW),
      /without MAC/,
    );
    expectFrameError(
      () => decodeHeartbeat(encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, keys), undefined, WINDOW),
      /with MAC/,
    );
  });

  it('the wrong key is refused', () => {
    expectFrameError(
      () => decodeHeartbeat(encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, other), keys, WINDOW),
      /failed authentication/,
    );
  });

  it('a flipped bit anywhere is refused with a key', () => {
    const hb = encodeHeartbeat(HeartbeatKind.ALIVE, 7n, desc, keys);
    for (let i = 0; i < hb.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const t = Buffer.from(hb);
        t[i]! ^= bit;
        assert.throws(() => decodeHeartbeat(t, keys, WINDOW), FrameError, `byte ${i} bit ${bit}`);
      }
    }
  });

  it('truncations and extensions are refused', () => {
    const hb = encodeHeartbeat(HeartbeatKind.ALIVE, 7n, desc, keys);
    for (let n = 0; n < hb.length; n++)
      assert.throws(() => decodeHeartbeat(hb.subarray(0, n), keys, WINDOW), FrameError);
    assert.throws(() => decodeHeartbeat(Buffer.concat([hb, Buffer.from([0])]), keys, WINDOW), FrameError);
    const clear = encodeHeartbeat(HeartbeatKind.ALIVE, 7n, desc, undefined);
    for (let n = 0; n < clear.length; n++)
      assert.throws(() => decodeHeartbeat(clear.subarray(0, n), undefined, WINDOW), FrameError);
  });

  it('a stale or future timestamp is refused with a key', () => {
    const stale = shiftedClock(-WINDOW - 5000, () => encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, keys));
    expectFrameError(() => decodeHeartbeat(stale, keys, WINDOW), /replay window/);
    const future = shiftedClock(WINDOW + 5000, () => encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, keys));
    expectFrameError(() => decodeHeartbeat(future, keys, WINDOW), /replay window/);
    const recent = shiftedClock(-WINDOW / 2, () => encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, keys));
    assert.equal(decodeHeartbeat(recent, keys, WINDOW).seq, 1n);
  });

  it('an unknown kind or version is refused', () => {
    const hb = encodeHeartbeat(HeartbeatKind.ALIVE, 1n, desc, undefined);
    const kind = Buffer.from(hb);
    kind[5] = 3;
    expectFrameError(() => decodeHeartbeat(kind, undefined, WINDOW), /unknown heartbeat kind 3/);
    const version = Buffer.from(hb);
    version[4] = 2;
    expectFrameError(() => decodeHeartbeat(version, undefined, WINDOW), /unsupported heartbeat version 2/);
    expectFrameError(
      () => decodeHeartbeat(Buffer.from('not a heartbeat at all, clearly'), undefined, WINDOW),
      /not a clowder/,
    );
  });
});

describe('hello', () => {
  const keys = new ClusterKeys(KEY);
  const desc = encodeMember(member());

  function parse(frame: Buffer): Got {
    const { reader, got } = recorder();
    reader.push(frame);
    assert.equal(got.length, 1);
    return got[0]!;
  }

  it('HELLO and HELLO_ACK round-trip with a key, the ACK bound to the client nonce', () => {
    const hello = encodeHello(FrameType.HELLO, desc, keys, true);
    const h = parse(hello.frame);
    assert.equal(h.type, FrameType.HELLO);
    assert.equal(h.flags, FrameFlag.AUTH | FrameFlag.ENCRYPT);
    const got = decodeHello(FrameType.HELLO, h.flags, h.body, keys, WINDOW);
    assert.deepEqual(got.nonce, hello.nonce);
    const ack = encodeHello(FrameType.HELLO_ACK, desc, keys, true, hello.nonce);
    const a = parse(ack.frame);
    assert.deepEqual(decodeHello(FrameType.HELLO_ACK, a.flags, a.body, keys, WINDOW, hello.nonce).nonce, ack.nonce);
    // An answer recorded from another connection (another client nonce) is refused.
    expectAuthError(
      () => decodeHello(FrameType.HELLO_ACK, a.flags, a.body, keys, WINDOW, Buffer.alloc(16)),
      /failed authentication/,
    );
  });

  it('wrong key, missing key, tampering and staleness are refused', () => {
    const h = parse(encodeHello(FrameType.HELLO, desc, new ClusterKeys(OTHER_KEY), true).frame);
    expectAuthError(() => decodeHello(FrameType.HELLO, h.flags, h.body, keys, WINDOW), /wrong cluster key/);
    const n = parse(encodeHello(FrameType.HELLO, desc, undefined, false).frame);
    expectAuthError(() => decodeHello(FrameType.HELLO, n.flags, n.body, keys, WINDOW), /no MAC/);
    expectAuthError(() => decodeHello(FrameType.HELLO, h.flags, h.body, undefined, WINDOW), /has none/);
    const good = parse(encodeHello(FrameType.HELLO, desc, keys, true).frame);
    for (let i = 0; i < good.body.length; i++) {
      const t = Buffer.from(good.body);
      t[i]! ^= 0x04;
      // A flipped bit fails authentication, or (in a length field) the framing checks before it.
      assert.throws(() => decodeHello(FrameType.HELLO, good.flags, t, keys, WINDOW), ClusterError, `byte ${i}`);
    }
    const stale = parse(shiftedClock(-WINDOW - 1000, () => encodeHello(FrameType.HELLO, desc, keys, true).frame));
    expectAuthError(() => decodeHello(FrameType.HELLO, stale.flags, stale.body, keys, WINDOW), /replay window/);
  });
});
