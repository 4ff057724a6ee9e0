import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RecordOpener, RecordSealer, TAG_BYTES } from '../../../src/wire/auth.js';
import { HEADER_BYTES } from '../../../src/wire/frame.js';
import { type GcmEngine, gcmEngine, nativeGcm } from '../../../src/wire/native-gcm.js';

const KEY = randomBytes(32);
const built = existsSync(new URL('../../../../build/Release/clowder_gcm.node', import.meta.url));
const skipNative = nativeGcm === undefined ? 'the native module is not built (npm run build:native)' : false;

/** One record as it travels: header, then what seal() returns (data and tag). */
function sealParts(sealer: RecordSealer, parts: Buffer[]): Buffer {
  const header = randomBytes(HEADER_BYTES);
  return Buffer.concat([header, ...sealer.seal(parts, header)]);
}

/** The same record, laid out in one buffer and sealed where it lies. */
function sealInPlace(sealer: RecordSealer, data: Buffer): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES + data.length + TAG_BYTES);
  randomBytes(HEADER_BYTES).copy(buf);
  data.copy(buf, HEADER_BYTES);
  sealer.sealInPlace(buf, HEADER_BYTES, HEADER_BYTES + data.length);
  return buf;
}

function open(opener: RecordOpener, record: Buffer): Buffer | null {
  const copy = Buffer.from(record); // the native opener decrypts in place
  const plain = opener.open(copy.subarray(HEADER_BYTES), copy.subarray(0, HEADER_BYTES));
  return plain === null ? null : Buffer.from(plain);
}

describe('AES-GCM engines', () => {
  it('the native module loads whenever it was built', { skip: !built && 'the native module is not built' }, () => {
    assert.ok(nativeGcm !== undefined || process.env.CLOWDER_NATIVE_GCM === 'off', 'built but not loaded');
    assert.equal(gcmEngine, nativeGcm !== undefined ? 'native' : 'node:crypto');
  });

  const engines: GcmEngine[] = ['node:crypto', 'native'];
  for (const encrypt of [true, false]) {
    for (const from of engines) {
      for (const to of engines) {
        const skip = from === 'native' || to === 'native' ? skipNative : false;
        it(`${encrypt ? 'encrypted' : 'authenticated'} records sealed by ${from} open with ${to}`, { skip }, () => {
          const sealer = new RecordSealer(KEY, encrypt, from);
          const opener = new RecordOpener(KEY, encrypt, to);
          const parts = [randomBytes(1), randomBytes(700), randomBytes(20_000), Buffer.alloc(0), randomBytes(33)];
          const whole = Buffer.concat(parts);
          // Records in order: several parts, in place, big, empty (each advances the nonce).
          const records = [
            sealParts(sealer, parts),
            sealInPlace(sealer, whole),
            sealInPlace(sealer, randomBytes(0)),
            sealParts(sealer, [whole]),
          ];
          const expected = [whole, whole, Buffer.alloc(0), whole];
          if (encrypt) assert.equal(records[0]!.includes(parts[2]!.subarray(0, 64)), false, 'data left in clear');
          else assert.deepEqual(records[0]!.subarray(HEADER_BYTES, HEADER_BYTES + whole.length), whole);
          for (let i = 0; i < records.length; i++)
            assert.deepEqual(open(opener, records[i]!), expected[i], `record ${i}`);
        });
      }

      it(`${from}: a changed header, data or tag byte, a replay and a wrong key all fail (${encrypt ? 'encrypted' : 'authenticated'})`, {
        skip: from === 'native' ? skipNative : false,
      }, () => {
        const data = randomBytes(300);
        const record = sealInPlace(new RecordSealer(KEY, encrypt, from), data);
        for (const i of [0, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 150, record.length - 1]) {
          const bad = Buffer.from(record);
          bad[i]! ^= 0x80;
          assert.equal(open(new RecordOpener(KEY, encrypt, from), bad), null, `byte ${i}`);
        }
        const opener = new RecordOpener(KEY, encrypt, from);
        assert.deepEqual(open(opener, record), data);
        assert.equal(open(opener, record), null, 'replayed: the second record has the next nonce');
        assert.equal(open(new RecordOpener(randomBytes(32), encrypt, from), record), null, 'wrong key');
        // After a failure the opener is usable for the next record it is given (the receiver closes
        // the connection anyway; this checks no state leaks between records).
        const o2 = new RecordOpener(KEY, encrypt, from);
        const s2 = new RecordSealer(KEY, encrypt, from);
        const r1 = sealInPlace(s2, data);
        const r2 = sealInPlace(s2, data);
        const bad = Buffer.from(r1);
        bad[HEADER_BYTES]! ^= 1;
        assert.equal(open(o2, bad), null);
        assert.deepEqual(open(o2, r2), data);
      });
    }
  }

  it('the native module checks its arguments: wrong sizes and ranges throw, nothing is read or written outside a buffer', {
    skip: skipNative,
  }, () => {
    const gcm = nativeGcm!;
    assert.throws(() => gcm.create(randomBytes(16), false), /32 bytes/);
    assert.throws(() => gcm.create('k' as unknown as Uint8Array, false), TypeError);
    const ctx = gcm.create(KEY, false);
    const nonce = Buffer.alloc(12);
    const buf = Buffer.alloc(64);
    assert.throws(() => gcm.begin(ctx, Buffer.alloc(8), buf, 0, 0), /12 bytes/);
    assert.throws(() => gcm.begin(ctx, nonce, buf, 60, 8), RangeError);
    assert.throws(() => gcm.begin({} as typeof ctx, nonce, buf, 0, 0), TypeError);
    gcm.begin(ctx, nonce, buf, 0, 8);
    assert.throws(() => gcm.update(ctx, buf, 32, 33, null, 0), RangeError);
    assert.throws(() => gcm.update(ctx, buf, 0, 16, buf, 49), RangeError);
    assert.throws(() => gcm.update(ctx, buf, -1, 4, null, 0), RangeError); // -1 reads as 2^32 - 1
    assert.throws(() => gcm.update(ctx, buf, '0' as unknown as number, 4, null, 0), TypeError);
    assert.throws(() => gcm.finish(ctx, buf, 49), RangeError);
    assert.equal(gcm.finish(ctx, buf, 48), true);
  });
});
