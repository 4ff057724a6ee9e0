// FrameReader: stop() and the reused assembly buffer at its bounds (found by mutation testing:
// npm run mutation -- wire).
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { encodeFrame, FrameReader, FrameType, HEADER_BYTES } from '../../../src/wire/frame.js';

const REUSE_MAX_BYTES = 1024 * 1024;

interface Got {
  body: Buffer;
  borrowed: boolean;
  memory: ArrayBufferLike;
}

/** A reader with reuse per `policy`, recording copies of the bodies and the memory each lay in. */
function recorder(policy: { reuse: boolean }): { reader: FrameReader; got: Got[] } {
  const got: Got[] = [];
  const reader = new FrameReader(
    4 << 20,
    (_t, _f, body, borrowed) => got.push({ body: Buffer.from(body), borrowed, memory: body.buffer }),
    policy,
  );
  return { reader, got };
}

/** Pushes a frame of `total` bytes (header included) in two chunks, so that it is assembled. */
function pushSpanning(reader: FrameReader, total: number): Buffer {
  const body = randomBytes(total - HEADER_BYTES);
  const frame = encodeFrame(FrameType.DATA, 0, body);
  reader.push(Buffer.from(frame.subarray(0, HEADER_BYTES + 1)));
  reader.push(Buffer.from(frame.subarray(HEADER_BYTES + 1)));
  return body;
}

describe('FrameReader.stop', () => {
  it('returns the bytes after the frame whose handler stopped it, and every later chunk untouched', () => {
    const first = encodeFrame(FrameType.DATA, 0, Buffer.from('hello'));
    const after = Buffer.from('sealed records follow');
    const types: number[] = [];
    const reader = new FrameReader(1024, (type) => {
      types.push(type);
      reader.stop();
    });
    const rest = reader.push(Buffer.concat([first, encodeFrame(FrameType.LEAVE, 0, Buffer.alloc(0)), after]));
    assert.deepEqual(types, [FrameType.DATA], 'nothing parsed after stop');
    assert.deepEqual(rest, Buffer.concat([encodeFrame(FrameType.LEAVE, 0, Buffer.alloc(0)), after]));
    const later = Buffer.from([1, 2, 3]);
    assert.equal(reader.push(later), later);
    assert.deepEqual(types, [FrameType.DATA]);
  });

  it('stops after a frame that spanned chunks, returning the rest of the chunk that completed it', () => {
    const frame = encodeFrame(FrameType.DATA, 0, randomBytes(100));
    const after = Buffer.from('tail');
    let delivered = 0;
    const reader = new FrameReader(1024, () => {
      delivered++;
      reader.stop();
    });
    assert.equal(reader.push(frame.subarray(0, 50)), undefined);
    assert.deepEqual(reader.push(Buffer.concat([frame.subarray(50), after])), after);
    assert.equal(delivered, 1);
  });
});

describe('FrameReader reused assembly buffer', () => {
  it('grows in doubling steps: a slightly larger frame does not reallocate, and no more than needed is held', () => {
    const { reader, got } = recorder({ reuse: true });
    const bodies = [pushSpanning(reader, 100), pushSpanning(reader, 150), pushSpanning(reader, 190)];
    assert.deepEqual(
      got.map((g) => g.body),
      bodies,
    );
    assert.ok(got.every((g) => g.borrowed));
    assert.deepEqual(
      got.map((g) => g.memory.byteLength),
      [100, 200, 200],
    );
    assert.notEqual(got[0]!.memory, got[1]!.memory, 'grown');
    assert.equal(got[1]!.memory, got[2]!.memory, 'the 190-byte frame fits the doubled buffer');
  });

  it('never holds more than the reuse limit, and a frame of exactly the limit still uses it', () => {
    const { reader, got } = recorder({ reuse: true });
    pushSpanning(reader, 1000);
    const body = pushSpanning(reader, REUSE_MAX_BYTES);
    assert.equal(got[1]!.borrowed, true);
    assert.ok(got[1]!.body.equals(body));
    assert.equal(got[1]!.memory.byteLength, REUSE_MAX_BYTES);
  });

  it('frees the reused buffer when reuse is switched off (switched on again, a new one is made)', () => {
    const policy = { reuse: true };
    const { reader, got } = recorder(policy);
    pushSpanning(reader, 500);
    policy.reuse = false;
    pushSpanning(reader, 500);
    policy.reuse = true;
    pushSpanning(reader, 500);
    assert.deepEqual(
      got.map((g) => g.borrowed),
      [true, false, true],
    );
    assert.notEqual(got[2]!.memory, got[0]!.memory, 'the first buffer was let go');
  });
});
