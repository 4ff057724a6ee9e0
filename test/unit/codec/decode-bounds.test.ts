// The decoder at its bounds (found by mutation testing: npm run mutation -- codec): each lie about a
// length or count is refused by the check made for it, before anything is read or allocated, and
// the limits take their exact values.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode, encode } from '../../../src/codec/value-codec.js';
import { CodecError, ConfigError } from '../../../src/core/errors.js';

const V = 0x01; // format version
const T_INT = 0x04;
const T_FLOAT = 0x05;
const T_STRING = 0x06;
const T_BIGINT_POS = 0x07;
const T_BYTES = 0x0a;
const T_ARRAY = 0x0b;
const T_MAP = 0x0d;

function refused(bytes: number[], pattern: RegExp, limits?: Parameters<typeof decode>[1]): void {
  assert.throws(
    () => decode(Buffer.from(bytes), limits),
    (err: unknown) => err instanceof CodecError && pattern.test(err.message),
    `${Buffer.from(bytes).toString('hex')} should fail with ${pattern}`,
  );
}

describe('decode bounds', () => {
  it('a length or count beyond the bytes left is refused by its own check, naming what lied', () => {
    refused([V, T_STRING, 10, 0x61], /at byte 2: string length 10 exceeds the 1 bytes left/);
    refused([V, T_BYTES, 5, 0x61], /at byte 2: byte array length 5 exceeds the 1 bytes left/);
    refused([V, T_BIGINT_POS, 10, 0x61], /at byte 2: bigint length 10 exceeds the 1 bytes left/);
    // 4 entries need at least 8 bytes; 3 are left (enough for half of them)
    refused([V, T_MAP, 4, 0x01, 0x01, 0x01], /at byte 1: Map count 4 exceeds what the 3 bytes left can hold/);
    refused([V, T_FLOAT, 0, 0, 0], /at byte 2: truncated \(float64 needs 8 bytes, 3 left\)/);
    // the same cut float deeper in the input (a check against the whole length would miss it)
    refused(
      [V, T_ARRAY, 2, T_STRING, 3, 0x61, 0x61, 0x61, T_FLOAT, 0, 0, 0],
      /at byte 9: truncated \(float64 needs 8 bytes, 3 left\)/,
    );
  });

  it('a value cut inside its length or varint says it is truncated', () => {
    refused([V, T_STRING], /at byte 2: truncated \(expected a length\)/);
    refused([V, T_STRING, 0x80], /at byte 2: truncated varint/);
    refused([V, T_INT], /at byte 2: truncated varint/);
    refused([V, T_INT, 0x80], /at byte 2: truncated varint/);
    refused([V], /at byte 1: truncated \(expected a value\)/);
    refused([V, 0x0f], /at byte 1: unknown tag 0x0f/);
    assert.throws(
      () => decode('bytes' as unknown as Uint8Array),
      (err: unknown) => err instanceof CodecError && /input is not a Uint8Array/.test(err.message),
    );
  });

  it('a short string with a byte that is not ASCII decodes as UTF-8 (U+FFFD for a stray continuation byte)', () => {
    for (const c of [0x80, 0xbf, 0xff]) {
      const bytes = Buffer.from([V, T_STRING, 3, 0x61, c, 0x62]);
      assert.equal(decode(bytes), Buffer.from([0x61, c, 0x62]).toString('utf8'), `0x${c.toString(16)}`);
      assert.equal(decode(bytes), 'a\uFFFDb');
    }
  });

  it('maxBytesLength bounds bigints and byte arrays: exactly the limit is taken, one byte more is refused', () => {
    const limits = { maxBytesLength: 2 };
    assert.equal(decode(encode(0xffffn), limits), 0xffffn);
    refused([...encode(0x10000n)], /bigint length 3 exceeds limits.maxBytesLength \(2\)/, limits);
    assert.deepEqual(decode(encode(Buffer.from([1, 2])), limits), Buffer.from([1, 2]));
    refused([...encode(Buffer.from([1, 2, 3]))], /byte array length 3 exceeds limits.maxBytesLength \(2\)/, limits);
  });

  it('a limit of 0 is a limit (nothing nested), a negative one is a configuration error', () => {
    assert.equal(decode(encode(5), { maxDepth: 0 }), 5);
    refused([...encode([])], /nesting deeper than 0 levels/, { maxDepth: 0 });
    assert.throws(
      () => decode(encode(5), { maxDepth: -1 }),
      (err: unknown) =>
        err instanceof ConfigError && /"limits.maxDepth" must be an integer between 0 and 1000/.test(err.message),
    );
    assert.throws(() => decode(encode(5), { maxBytesLength: -1 }), ConfigError);
  });
});
