import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FrameError } from '../../../src/core/errors.js';
import { FrameSink } from '../../../src/transport/frame-sink.js';
import { RECORD_BYTES } from '../../../src/transport/frame-writer.js';
import { AuthFailure } from '../../../src/transport/record-reader.js';
import { createTransportStats } from '../../../src/transport/stats.js';
import { RecordOpener, RecordSealer, TAG_BYTES } from '../../../src/wire/auth.js';
import { encodeFrame, FrameType, HEADER_BYTES, writeHeader } from '../../../src/wire/frame.js';

const KEY = randomBytes(32);

interface Got {
  type: number;
  body: Buffer;
}

/** A sink that switches to sealed records when it sees a HELLO (as the receiver does). */
function sink(encrypt: boolean): { sink: FrameSink; got: Got[] } {
  const got: Got[] = [];
  const s: FrameSink = new FrameSink(
    1 << 20,
    (type, _flags, body) => {
      if (type === FrameType.HELLO) s.setOpener(new RecordOpener(KEY, encrypt));
      got.push({ type, body: Buffer.from(body) });
    },
    createTransportStats(),
  );
  return { sink: s, got };
}

/** Seals `stream` (bytes of inner frames) into records of at most `recordBytes` of data. */
function seal(stream: Buffer, encrypt: boolean, recordBytes = RECORD_BYTES): Buffer[] {
  const sealer = new RecordSealer(KEY, encrypt);
  const out: Buffer[] = [];
  for (let off = 0; off < stream.length; off += recordBytes) {
    const data = stream.subarray(off, Math.min(stream.length, off + recordBytes));
    const header = Buffer.alloc(HEADER_BYTES);
    writeHeader(header, 0, FrameType.SEALED, 0, data.length + TAG_BYTES);
    out.push(Buffer.concat([header, ...sealer.seal([data], header)]));
  }
  return out;
}

const hello = encodeFrame(FrameType.HELLO, 0, Buffer.from('hi'));

function innerFrames(): { stream: Buffer; expected: Got[] } {
  const expected: Got[] = [
    { type: FrameType.DATA, body: randomBytes(5) },
    { type: FrameType.DATA, body: randomBytes(300) }, // spans records of 256 bytes
    { type: FrameType.ACK, body: randomBytes(4) },
    { type: FrameType.DATA, body: Buffer.alloc(0) },
    { type: FrameType.DATA, body: randomBytes(700) },
  ];
  return { stream: Buffer.concat(expected.map((g) => encodeFrame(g.type as FrameType, 0, g.body))), expected };
}

for (const encrypt of [false, true]) {
  describe(`FrameSink with sealed records (${encrypt ? 'encrypted' : 'authenticated only'})`, () => {
    it('reads records split at every offset, including records that follow the hello in one chunk', () => {
      const { stream, expected } = innerFrames();
      const all = Buffer.concat([hello, ...seal(stream, encrypt, 256)]);
      for (let cut = 0; cut <= all.length; cut++) {
        const { sink: s, got } = sink(encrypt);
        // Copies: a sink may decrypt what it is given in place (as it does with socket chunks).
        s.push(Buffer.from(all.subarray(0, cut)));
        s.push(Buffer.from(all.subarray(cut)));
        assert.deepEqual(got.slice(1), expected, `split at ${cut}`);
        assert.equal(s.midFrame, false, `split at ${cut}`);
      }
    });

    it('reads a stream fed one byte at a time, mid-frame until the last byte', () => {
      const { stream, expected } = innerFrames();
      const all = Buffer.concat([hello, ...seal(stream, encrypt, 256)]);
      const { sink: s, got } = sink(encrypt);
      for (let i = 0; i < all.length; i++) {
        s.push(all.subarray(i, i + 1));
        if (i >= hello.length && i < all.length - 1) assert.equal(s.midFrame, true, `after ${i + 1} bytes`);
      }
      assert.deepEqual(got.slice(1), expected);
      assert.equal(s.midFrame, false);
    });

    it('reads full-size records', () => {
      const body = randomBytes(3 * RECORD_BYTES);
      const { sink: s, got } = sink(encrypt);
      s.push(hello);
      for (const r of seal(encodeFrame(FrameType.DATA, 0, body), encrypt)) s.push(r);
      assert.equal(got.length, 2);
      assert.deepEqual(got[1]!.body, body);
    });

    it('a tampered byte anywhere in a record drops it before any of its frames is parsed', () => {
      const { stream, expected } = innerFrames();
      const records = seal(stream, encrypt, 256);
      const before = Buffer.concat([hello, records[0]!]);
      const framesOfFirst = got0(Buffer.from(before), encrypt).length;
      const victim = records[1]!;
      for (let i = 0; i < victim.length; i++) {
        const bad = Buffer.from(victim);
        bad[i]! ^= 0x01;
        const { sink: s, got } = sink(encrypt);
        assert.throws(
          () => s.push(Buffer.concat([before, bad, ...records.slice(2)])),
          (err: Error) => err instanceof FrameError,
          `byte ${i}`,
        );
        // Only what the first, intact record held was delivered.
        assert.deepEqual(got.slice(1), expected.slice(0, framesOfFirst - 1), `byte ${i}`);
      }
    });

    it('a replayed record fails (the nonce counts records)', () => {
      const { stream } = innerFrames();
      const records = seal(stream, encrypt, 256);
      const { sink: s } = sink(encrypt);
      s.push(Buffer.concat([hello, records[0]!]));
      assert.throws(() => s.push(records[0]!), AuthFailure);
    });

    it('refuses an unsealed frame, a record shorter than its tag, and an oversized record header', () => {
      const cases: [Buffer, (e: Error) => boolean][] = [
        [encodeFrame(FrameType.DATA, 0, Buffer.alloc(8)), (e) => e instanceof AuthFailure],
        [encodeFrame(FrameType.SEALED, 0, Buffer.alloc(TAG_BYTES - 1)), (e) => e instanceof AuthFailure],
        [oversized(), (e) => e instanceof FrameError && /exceeds/.test(e.message)],
      ];
      for (const [frame, check] of cases) {
        const { sink: s, got } = sink(encrypt);
        s.push(hello);
        assert.throws(() => s.push(frame), check);
        assert.equal(got.length, 1);
      }
    });
  });
}

function got0(bytes: Buffer, encrypt: boolean): Got[] {
  const { sink: s, got } = sink(encrypt);
  s.push(bytes);
  return got;
}

function oversized(): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  writeHeader(header, 0, FrameType.SEALED, 0, RECORD_BYTES + TAG_BYTES + 1);
  return header;
}
