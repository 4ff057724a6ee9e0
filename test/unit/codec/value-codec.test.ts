import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkEncodable,
  decode,
  encode,
  encodedEquals,
  isScalarEncoding,
  Nested,
} from '../../../src/codec/value-codec.js';
import { CodecError, ConfigError, ErrorCode } from '../../../src/core/errors.js';

const HINT = 'store plain data (objects, arrays, Map, Set, Date, bigint, Uint8Array)';

function roundTrip(value: unknown): unknown {
  const bytes = encode(value);
  assert.ok(Buffer.isBuffer(bytes));
  assert.equal(bytes[0], 0x01, 'format version byte');
  return decode(bytes);
}

function assertRoundTrip(value: unknown): void {
  assert.deepStrictEqual(roundTrip(value), value);
}

/** Asserts that `fn` throws a CodecError with the given code; returns it. */
function codecError(fn: () => unknown, code: ErrorCode): CodecError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CodecError, `expected CodecError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

function encodeError(value: unknown, limits?: Parameters<typeof encode>[1]): CodecError {
  const err = codecError(() => encode(value, limits), ErrorCode.CODEC_ENCODE);
  // checkEncodable must report the very same error.
  const again = codecError(() => checkEncodable(value, limits), ErrorCode.CODEC_ENCODE);
  assert.equal(again.message, err.message);
  assert.equal(again.path, err.path);
  return err;
}

function decodeError(bytes: Uint8Array, limits?: Parameters<typeof decode>[1]): CodecError {
  const err = codecError(() => decode(bytes, limits), ErrorCode.CODEC_DECODE);
  assert.match(err.message, /at byte \d+/);
  return err;
}

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function nested(depth: number, leaf: unknown = 1): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** A value that exercises every tag. */
function kitchenSink(): unknown {
  return {
    n: null,
    u: undefined,
    t: true,
    f: false,
    i: -12345,
    d: 3.25,
    z: -0,
    nan: Number.NaN,
    s: 'héllo wörld 😀',
    long: 'x'.repeat(300),
    big: -(2n ** 100n),
    date: new Date(1_700_000_000_000),
    bytes: Buffer.from([0, 1, 2, 255]),
    arr: [1, 'two', [3]],
    map: new Map<unknown, unknown>([
      ['k', new Set([1, 2n])],
      [7, { deep: true }],
    ]),
    set: new Set(['a', null]),
  };
}

describe('value codec: round trips', () => {
  it('primitives', () => {
    for (const v of [null, undefined, true, false, '', 'a', 0n, 1n, -1n]) assertRoundTrip(v);
  });

  it('numbers, including -0, NaN, infinities and int32 boundaries', () => {
    const values = [
      0,
      -0,
      1,
      -1,
      63,
      64,
      -64,
      -65,
      127,
      128,
      12345,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 31,
      -(2 ** 31) - 1,
      2 ** 32,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      -Number.MIN_VALUE,
      Number.EPSILON,
      0.1,
      -1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ];
    for (const v of values) {
      const back = roundTrip(v);
      assert.ok(Object.is(back, v), `${v} round trips (got ${String(back)})`);
    }
  });

  it('small integers are compact, others are float64', () => {
    assert.equal(encode(0).length, 3);
    assert.equal(encode(-1).length, 3);
    assert.equal(encode(63).length, 3);
    assert.equal(encode(12345).length, 5);
    assert.equal(encode(2 ** 31 - 1).length, 7);
    assert.equal(encode(-0).length, 10);
    assert.equal(encode(2 ** 40).length, 10);
    assert.equal(encode(0.5).length, 10);
  });

  it('strings: ASCII, multi-byte, emoji, every length around the varint boundaries', () => {
    for (const s of [
      '',
      'a',
      'count',
      'payload',
      'é',
      '日本語',
      '😀',
      'a😀b',
      '\u0000',
      '\uffff',
      'mixed ASCII and 中文 and 🎉🎉',
    ]) {
      assertRoundTrip(s);
    }
    for (const unit of ['a', 'é', '中', '😀']) {
      for (let n = 0; n < 200; n++) assertRoundTrip(unit.repeat(n));
      for (const n of [5000, 6000, 70_000]) assertRoundTrip(unit.repeat(n));
    }
    const payload = 'count=12345;'.repeat(86).slice(0, 1024);
    assertRoundTrip({ count: 12345, payload });
  });

  it('lone surrogates are replaced with U+FFFD, as Buffer does', () => {
    assert.equal(roundTrip('a\ud800b'), 'a\ufffdb');
    assert.equal(roundTrip('\udc00'), '\ufffd');
    assert.equal(roundTrip(`${'x'.repeat(40)}\ud83d`), `${'x'.repeat(40)}\ufffd`);
  });

  it('bigints of any size and sign', () => {
    const values = [
      0n,
      1n,
      -1n,
      127n,
      255n,
      256n,
      -256n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 64n,
      -(2n ** 64n) - 1n,
      10n ** 500n,
      -(2n ** 4000n) + 7n,
    ];
    for (const v of values) assert.equal(roundTrip(v), v);
  });

  it('dates, including invalid dates', () => {
    for (const d of [new Date(0), new Date(), new Date(-1), new Date(8.64e15), new Date(-8.64e15)]) {
      const back = roundTrip(d);
      assert.ok(back instanceof Date);
      assert.equal(back.getTime(), d.getTime());
    }
    const invalid = roundTrip(new Date(Number.NaN));
    assert.ok(invalid instanceof Date);
    assert.ok(Number.isNaN(invalid.getTime()));
  });

  it('Uint8Array and Buffer decode as Buffer copies', () => {
    const u8 = new Uint8Array([1, 2, 3, 250]);
    const back = roundTrip(u8);
    assert.ok(Buffer.isBuffer(back));
    assert.deepEqual([...back], [1, 2, 3, 250]);
    assertRoundTrip(Buffer.from('hello'));
    assertRoundTrip(Buffer.alloc(0));
    assertRoundTrip(Buffer.alloc(100_000, 7));
    // A view encodes only the viewed bytes.
    const view = new Uint8Array([9, 9, 1, 2, 9]).subarray(2, 4);
    assert.deepEqual([...(roundTrip(view) as Buffer)], [1, 2]);
  });

  it('decoded bytes never alias the input', () => {
    const input = encode({ a: Buffer.from([1, 2, 3, 4]), b: Buffer.alloc(10_000, 5) });
    const decoded = decode(input) as { a: Buffer; b: Buffer };
    assert.notEqual(decoded.a.buffer, input.buffer);
    assert.notEqual(decoded.b.buffer, input.buffer);
    input.fill(0xee);
    assert.deepEqual([...decoded.a], [1, 2, 3, 4]);
    assert.ok(decoded.b.every((x) => x === 5));
  });

  it('encode returns a fresh buffer each time', () => {
    const a = encode('first value');
    const copy = Buffer.from(a);
    const b = encode('second value, longer than the first');
    assert.ok(encodedEquals(a, copy), 'a later encode does not overwrite an earlier result');
    b.fill(0);
    assert.ok(encodedEquals(a, copy));
    assert.equal(decode(encode('second value, longer than the first')), 'second value, longer than the first');
  });

  it('arrays, holes decode as undefined', () => {
    assertRoundTrip([]);
    assertRoundTrip([1, 'a', null, undefined, [[]]]);
    // biome-ignore lint/suspicious/noSparseArray: testing holes
    const holes = [1, , 3];
    const back = roundTrip(holes) as unknown[];
    assert.equal(back.length, 3);
    assert.ok(1 in back, 'hole becomes an own undefined element');
    assert.equal(back[1], undefined);
    assert.deepStrictEqual(roundTrip(new Array(4)), [undefined, undefined, undefined, undefined]);
  });

  it('plain objects: null prototype decodes with Object.prototype; symbols and non-enumerables ignored', () => {
    assertRoundTrip({});
    assertRoundTrip({ a: 1, b: { c: [1, 2] }, 'weird key': '', '': 0, '0': 'zero' });
    const bare = Object.create(null) as Record<string, unknown>;
    bare.x = 1;
    const back = roundTrip(bare) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.deepEqual({ ...back }, { x: 1 });
    const withExtras: Record<string | symbol, unknown> = { kept: 1, [Symbol('s')]: 2 };
    Object.defineProperty(withExtras, 'hidden', { value: 3, enumerable: false });
    Object.defineProperty(withExtras, 'computed', { get: () => 'got', enumerable: true });
    assert.deepStrictEqual(roundTrip(withExtras), { kept: 1, computed: 'got' });
  });

  it('Map keeps insertion order and key types; Set keeps order', () => {
    const key = { k: 1 };
    const m = new Map<unknown, unknown>([
      ['1', 'string one'],
      [1, 'number one'],
      [1n, 'bigint one'],
      [null, 'null'],
      [undefined, 'undefined'],
      [key, 'object key'],
      [Number.NaN, 'nan'],
    ]);
    const back = roundTrip(m) as Map<unknown, unknown>;
    assert.ok(back instanceof Map);
    assert.deepStrictEqual([...back.keys()], [...m.keys()]);
    assert.deepStrictEqual([...back.values()], [...m.values()]);
    assertRoundTrip(new Map());
    assertRoundTrip(new Set());
    assertRoundTrip(new Set([3, 1, 2, 'x', 2n]));
  });

  it('nested Map inside Set inside object, and the kitchen sink', () => {
    assertRoundTrip({ s: new Set([new Map([['m', new Map([[1, [new Set([{}])]]])]])]) });
    assertRoundTrip(kitchenSink());
    assertRoundTrip([kitchenSink(), kitchenSink()]);
  });

  it('shared (non-cyclic) references are encoded by value', () => {
    const shared = { x: 1 };
    const back = roundTrip({ a: shared, b: [shared, shared] }) as { a: unknown; b: unknown[] };
    assert.deepStrictEqual(back, { a: { x: 1 }, b: [{ x: 1 }, { x: 1 }] });
    assert.notEqual(back.a, back.b[0]);
  });

  it('nesting up to maxDepth is accepted', () => {
    assertRoundTrip(nested(64));
    assert.deepStrictEqual(decode(encode(nested(200), { maxDepth: 200 }), { maxDepth: 200 }), nested(200));
    assert.deepStrictEqual(roundTrip(nested(0, 'leaf')), 'leaf');
  });

  it('decode accepts a plain Uint8Array view with an offset', () => {
    const enc = encode({ a: [1, 2, 3] });
    const big = new Uint8Array(enc.length + 10);
    big.set(enc, 5);
    assert.deepStrictEqual(decode(big.subarray(5, 5 + enc.length)), { a: [1, 2, 3] });
  });

  it('byte arrays are copies by default and views into the input with byteViews', () => {
    const enc = encode([new Uint8Array([1, 2, 3]), 'x', Buffer.from([4, 5])]);
    const copied = decode(enc) as [Buffer, string, Buffer];
    const viewed = decode(enc, undefined, { byteViews: true }) as [Buffer, string, Buffer];
    assert.deepStrictEqual(viewed, copied);
    assert.ok(Buffer.isBuffer(viewed[0]) && Buffer.isBuffer(viewed[2]));
    enc.fill(0xee);
    assert.deepEqual([...copied[0]], [1, 2, 3], 'a copy does not change with its input');
    assert.deepEqual([...copied[2]], [4, 5]);
    assert.deepEqual([...viewed[0]], [0xee, 0xee, 0xee], 'a view shares the input memory');
    assert.deepEqual([...viewed[2]], [0xee, 0xee]);
    // Limits and malformed input are checked alike in both modes.
    assert.throws(() => decode(encode(new Uint8Array(10)), { maxBytesLength: 9 }, { byteViews: true }), CodecError);
    assert.throws(() => decode(encode(new Uint8Array(10)).subarray(0, 8), undefined, { byteViews: true }), CodecError);
  });

  it('encode is reentrant (a getter may call encode)', () => {
    const inner = { x: 'inner'.repeat(10) };
    const value = {
      before: 'b'.repeat(100),
      get nested() {
        return decode(encode(inner));
      },
      after: 'a'.repeat(100),
    };
    assert.deepStrictEqual(roundTrip(value), { before: 'b'.repeat(100), nested: inner, after: 'a'.repeat(100) });
  });

  it('identical values give identical bytes', () => {
    assert.ok(encodedEquals(encode(kitchenSink()), encode(kitchenSink())));
    assert.ok(!encodedEquals(encode({ a: 1 }), encode({ a: 2 })));
    assert.ok(!encodedEquals(encode([1]), encode([1, 1])));
    assert.ok(encodedEquals(new Uint8Array([1, 2]), Buffer.from([1, 2])));
  });
});

describe('value codec: encode rejections', () => {
  class Foo {
    x = 1;
  }

  it('functions, with the exact path', () => {
    const err = encodeError({ cart: { items: [1, 2, { onClick() {} }] } });
    assert.equal(err.path, 'cart.items[2].onClick');
    assert.equal(err.message, 'cannot encode cart.items[2].onClick: functions are not encodable');
    assert.equal(encodeError(() => 1).message, 'cannot encode the root value: functions are not encodable');
    assert.equal(encodeError(() => 1).path, '');
  });

  it('symbols as values', () => {
    const err = encodeError({ a: [Symbol('x')] });
    assert.equal(err.path, 'a[0]');
    assert.equal(err.message, 'cannot encode a[0]: symbols are not encodable');
  });

  it('class instances', () => {
    const err = encodeError({ user: { profile: new Foo() } });
    assert.equal(err.path, 'user.profile');
    assert.equal(err.message, `cannot encode user.profile: instances of class Foo are not encodable; ${HINT}`);
    assert.equal(encodeError(Object.create({})).message.includes('objects with a custom prototype'), true);
    class MyMap extends Map {}
    assert.match(encodeError(new MyMap()).message, /instances of class MyMap are not encodable/);
    class MyArray extends Array {}
    assert.match(encodeError({ l: MyArray.from([1]) }).message, /instances of class MyArray/);
  });

  it('RegExp, Error, Promise, WeakMap, boxed primitives, other typed arrays', () => {
    const cases: [unknown, string][] = [
      [/re/g, 'RegExp'],
      [new Error('x'), 'Error'],
      [Promise.resolve(), 'Promise'],
      [new WeakMap(), 'WeakMap'],
      [new String('s'), 'String'],
      [new Float32Array(2), 'Float32Array'],
      [new Uint16Array(2), 'Uint16Array'],
      [new ArrayBuffer(4), 'ArrayBuffer'],
      [new DataView(new ArrayBuffer(4)), 'DataView'],
    ];
    for (const [value, name] of cases) {
      const err = encodeError({ list: [0, value] });
      assert.equal(err.path, 'list[1]');
      assert.equal(err.message, `cannot encode list[1]: instances of class ${name} are not encodable; ${HINT}`);
    }
  });

  it('cycle through an object', () => {
    const a: Record<string, unknown> = { x: 1 };
    a.self = a;
    const err = encodeError({ root: a });
    assert.equal(err.path, 'root.self');
    assert.match(err.message, /^cannot encode root\.self: cyclic reference/);
    const b: unknown[] = [];
    b.push(b);
    assert.equal(encodeError(b).path, '[0]');
  });

  it('cycle through a Map value, and through a Set', () => {
    const m = new Map<unknown, unknown>();
    const holder = { m };
    m.set('k', holder);
    const err = encodeError({ session: m });
    assert.equal(err.path, 'session.get("k").m');
    assert.match(err.message, /cyclic reference/);
    const s = new Set<unknown>();
    s.add(1).add([s]);
    assert.equal(encodeError(s).path, 'values()[1][0]');
  });

  it('nesting deeper than maxDepth', () => {
    const err = encodeError(nested(65));
    assert.equal(err.path, '[0]'.repeat(64));
    assert.match(err.message, /nesting deeper than 64 levels \(limits\.maxDepth\)$/);
    assert.equal(encodeError(nested(11), { maxDepth: 10 }).path, '[0]'.repeat(10));
    encode(nested(10), { maxDepth: 10 });
  });

  it('strings, keys and bytes above the size limits', () => {
    const limits = { maxStringBytes: 10, maxBytesLength: 4 };
    encode({ a: 'x'.repeat(10), b: Buffer.alloc(4) }, limits);
    assert.equal(encodeError({ a: 'x'.repeat(11) }, limits).path, 'a');
    assert.match(
      encodeError({ a: 'é'.repeat(6) }, limits).message,
      /12 UTF-8 bytes exceeds limits\.maxStringBytes \(10\)/,
    );
    encode('é'.repeat(5), limits);
    assert.equal(encodeError({ ['k'.repeat(11)]: 1 }, limits).path, 'kkkkkkkkkkk');
    assert.match(encodeError([Buffer.alloc(5)], limits).message, /^cannot encode \[0\]: byte array of 5 bytes/);
    assert.match(encodeError(2n ** 40n, limits).message, /bigint of 6 magnitude bytes exceeds/);
  });

  it('paths quote keys that are not identifiers and describe Map keys', () => {
    assert.equal(encodeError({ 'a b': { 'x.y': () => 1 } }).path, '["a b"]["x.y"]');
    assert.equal(encodeError(new Map([[1, () => 1]])).path, 'get(1)');
    assert.equal(encodeError(new Map([[{}, () => 1]])).path, 'values()[0]');
    assert.equal(encodeError({ m: new Map([[Symbol('k'), 1]]) }).path, 'm.keys()[0]');
  });

  it('invalid limits throw ConfigError', () => {
    for (const limits of [{ maxDepth: -1 }, { maxDepth: 1.5 }, { maxDepth: 100_000 }, { maxStringBytes: Number.NaN }]) {
      assert.throws(() => encode(1, limits), ConfigError);
      assert.throws(() => decode(encode(1), limits), ConfigError);
      assert.throws(() => checkEncodable(1, limits), ConfigError);
    }
    // The module state is untouched after a rejected limits object.
    assertRoundTrip(nested(64));
  });

  it('errors thrown by getters propagate unchanged', () => {
    const boom = new TypeError('boom');
    const value = {
      get bad(): unknown {
        throw boom;
      },
    };
    assert.throws(
      () => encode(value),
      (err) => err === boom,
    );
  });

  it('a getter that returns different data on the second walk gives a generic error', () => {
    let calls = 0;
    const value = {
      get flaky(): unknown {
        calls++;
        return calls === 1 ? () => 1 : 1;
      },
    };
    const err = codecError(() => encode(value), ErrorCode.CODEC_ENCODE);
    assert.equal(err.path, '');
    assert.match(err.message, /changed while being encoded/);
  });

  it('encode and checkEncodable agree on random values (fast path vs diagnosing walker)', () => {
    const rand = prng(7);
    const leaf = (): unknown => {
      const r = rand();
      if (r < 0.02) return () => 1;
      if (r < 0.04) return Symbol('s');
      if (r < 0.06) return new (class Thing {})();
      if (r < 0.3) return Math.floor(rand() * 1e6) - 5e5;
      if (r < 0.5) return 'é'.repeat(Math.floor(rand() * 8));
      if (r < 0.6) return BigInt(Math.floor(rand() * 1e9)) * -7n;
      return rand() < 0.5 ? null : new Date(Math.floor(rand() * 1e12));
    };
    const build = (depth: number, ancestors: object[]): unknown => {
      if (depth > 6 || rand() < 0.3) return leaf();
      const r = rand();
      if (r < 0.05 && ancestors.length > 0) return ancestors[Math.floor(rand() * ancestors.length)];
      const n = Math.floor(rand() * 4);
      if (r < 0.4) {
        const arr: unknown[] = [];
        for (let i = 0; i < n; i++) arr.push(build(depth + 1, [...ancestors, arr]));
        return arr;
      }
      if (r < 0.7) {
        const obj: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) obj[`k${i}`] = build(depth + 1, [...ancestors, obj]);
        return obj;
      }
      const map = new Map<unknown, unknown>();
      for (let i = 0; i < n; i++) map.set(i, build(depth + 1, [...ancestors, map]));
      return map;
    };
    let ok = 0;
    let bad = 0;
    for (let i = 0; i < 500; i++) {
      const value = build(0, []);
      const limits = { maxDepth: 4 + Math.floor(rand() * 4), maxStringBytes: 12 };
      let checkErr: unknown;
      try {
        checkEncodable(value, limits);
      } catch (err) {
        checkErr = err;
      }
      if (checkErr === undefined) {
        const bytes = encode(value, limits);
        decode(bytes, limits);
        ok++;
      } else {
        assert.ok(checkErr instanceof CodecError);
        const err = encodeError(value, limits);
        assert.equal(err.message, checkErr.message);
        bad++;
      }
    }
    assert.ok(ok > 50 && bad > 50, `ok ${ok}, bad ${bad}`);
  });

  it('checkEncodable accepts encodable values', () => {
    checkEncodable(kitchenSink());
    checkEncodable(nested(64));
  });
});

describe('value codec: hostile decode', () => {
  it('__proto__ keys become own data properties, no prototype pollution', () => {
    const hostile = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');
    const bytes = encode(hostile);
    const decoded = decode(bytes) as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((Object.prototype as unknown as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.ok(Object.hasOwn(decoded, '__proto__'));
    assert.ok(Object.hasOwn(decoded, 'constructor'));
    assert.equal(decoded.polluted, undefined);
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(decoded, '__proto__'), {
      value: { polluted: true },
      writable: true,
      enumerable: true,
      configurable: true,
    });
    assert.deepStrictEqual(Object.keys(decoded), ['__proto__', 'constructor']);
    // Hand-built bytes: version, object(1), key "__proto__", object(1), key "polluted", true.
    const hand = Buffer.concat([
      Buffer.from([0x01, 0x0c, 0x01, 0x09]),
      Buffer.from('__proto__'),
      Buffer.from([0x0c, 0x01, 0x08]),
      Buffer.from('polluted'),
      Buffer.from([0x03]),
    ]);
    const fromHand = decode(hand) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(fromHand), Object.prototype);
    assert.ok(Object.hasOwn(fromHand, '__proto__'));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('keys named after Object.prototype members are plain own properties', () => {
    const value = { constructor: 1, prototype: 2, toString: 3, hasOwnProperty: 4, valueOf: 'v' };
    const decoded = decode(encode(value)) as Record<string, unknown>;
    assert.deepStrictEqual(decoded, value);
    for (const k of Object.keys(value)) assert.ok(Object.hasOwn(decoded, k));
    assert.equal(typeof Object.prototype.toString, 'function');
  });

  it('duplicate object keys: last wins', () => {
    const bytes = Buffer.from([0x01, 0x0c, 0x02, 0x01, 0x61, 0x04, 0x02, 0x01, 0x61, 0x04, 0x04]);
    assert.deepStrictEqual(decode(bytes), { a: 2 });
    const proto = Buffer.concat([
      Buffer.from([0x01, 0x0c, 0x02, 0x09]),
      Buffer.from('__proto__'),
      Buffer.from([0x01, 0x09]),
      Buffer.from('__proto__'),
      Buffer.from([0x03]),
    ]);
    const decoded = decode(proto) as Record<string, unknown>;
    assert.equal(Object.getOwnPropertyDescriptor(decoded, '__proto__')?.value, true);
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  });

  it('a 1,000,000-deep nesting throws CodecError, not RangeError', () => {
    for (const [open, close] of [
      [[0x0b, 0x01], [0x00]], // arrays
      [[0x0e, 0x01], [0x00]], // sets
      [[0x0d, 0x01, 0x00], [0x00]], // maps: key undefined, value nested
      [[0x0c, 0x01, 0x01, 0x61], [0x00]], // objects: key "a"
    ] as const) {
      const depth = 1_000_000;
      const unit = Buffer.from(open);
      const bytes = Buffer.alloc(1 + unit.length * depth + close.length);
      bytes[0] = 0x01;
      for (let i = 0; i < depth; i++) unit.copy(bytes, 1 + i * unit.length);
      Buffer.from(close).copy(bytes, 1 + unit.length * depth);
      const err = decodeError(bytes);
      assert.match(err.message, /nesting deeper than 64 levels/);
      assert.match(decodeError(bytes, { maxDepth: 1000 }).message, /nesting deeper than 1000 levels/);
    }
  });

  it('count and length lies throw before allocating', () => {
    const lies: [string, number[]][] = [
      ['array 2^31', [0x01, 0x0b, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 0x00]],
      ['array 2^48', [0x01, 0x0b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x00]],
      ['object 2^31', [0x01, 0x0c, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 0x00]],
      ['map 2^31', [0x01, 0x0d, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 0x00]],
      ['set 2^31', [0x01, 0x0e, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 0x00]],
      ['string 2^31', [0x01, 0x06, 0x80, 0x80, 0x80, 0x80, 0x08, 0x61]],
      ['bytes 2^31', [0x01, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x08, 0x61]],
      ['bigint 2^31', [0x01, 0x07, 0x80, 0x80, 0x80, 0x80, 0x08, 0x61]],
      ['array 5 of 4', [0x01, 0x0b, 0x05, 0x00, 0x00, 0x00, 0x00]],
      ['object 3 of 4 bytes', [0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00]],
      ['string 3 of 2', [0x01, 0x06, 0x03, 0x61, 0x62]],
    ];
    for (const [name, bytes] of lies) {
      const before = process.memoryUsage();
      const err = decodeError(Buffer.from(bytes));
      const after = process.memoryUsage();
      assert.match(err.message, /exceeds/, name);
      assert.ok(after.arrayBuffers - before.arrayBuffers < 1024 * 1024, `${name}: arrayBuffers jumped`);
      assert.ok(after.heapUsed - before.heapUsed < 16 * 1024 * 1024, `${name}: heap jumped`);
    }
  });

  it('decode limits: strings and bytes above the limit are rejected', () => {
    assert.match(decodeError(encode('x'.repeat(11)), { maxStringBytes: 10 }).message, /limits\.maxStringBytes/);
    assert.match(decodeError(encode({ ['k'.repeat(11)]: 1 }), { maxStringBytes: 10 }).message, /property name/);
    assert.match(decodeError(encode(Buffer.alloc(5)), { maxBytesLength: 4 }).message, /limits\.maxBytesLength/);
    assert.match(decodeError(encode(nested(11)), { maxDepth: 10 }).message, /nesting deeper than 10/);
  });

  it('every truncation of a valid encoding throws CodecError', () => {
    const full = encode(kitchenSink());
    decode(full);
    for (let n = 0; n < full.length; n++) decodeError(full.subarray(0, n));
  });

  it('trailing garbage throws', () => {
    const err = decodeError(Buffer.concat([encode({ a: 1 }), Buffer.from([0x00])]));
    assert.match(err.message, /1 trailing byte\(s\)/);
    decodeError(Buffer.concat([encode(null), encode(null)]));
  });

  it('malformed headers, tags and varints name the byte offset', () => {
    const cases: [number[], RegExp][] = [
      [[], /at byte 0: empty input/],
      [[0x02, 0x01], /at byte 0: unsupported format version 0x02/],
      [[0x00], /unsupported format version/],
      [[0x01, 0x7f], /at byte 1: unknown tag 0x7f/],
      [[0x01, 0x0b, 0x02, 0x01, 0xff], /at byte 4: unknown tag 0xff/],
      [[0x01, 0x04, 0x80, 0x00], /at byte 2: non-canonical varint/],
      [[0x01, 0x04, 0xff, 0xff, 0xff, 0xff, 0x1f], /out of int32 range/],
      [[0x01, 0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than 5 bytes/],
      [[0x01, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /varint longer than 7 bytes/],
      [[0x01, 0x06, 0x80, 0x00], /non-canonical varint/],
      [[0x01, 0x05, 0x00, 0x00], /float64 needs 8 bytes, 2 left/],
      [[0x01, 0x08, 0x00], /negative bigint with zero magnitude/],
      [[0x01, 0x07, 0x02, 0x00, 0x01], /at byte 3: bigint magnitude has a leading zero byte/],
    ];
    for (const [bytes, re] of cases) assert.match(decodeError(Buffer.from(bytes)).message, re);
  });

  it('non-Uint8Array input throws CodecError', () => {
    codecError(() => decode('abc' as never), ErrorCode.CODEC_DECODE);
    codecError(() => decode([1, 1] as never), ErrorCode.CODEC_DECODE);
  });

  it('2,000 random byte strings decode or throw CodecError, never anything else', () => {
    const rand = prng(0xc0ffee);
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 2000; i++) {
      const len = Math.floor(rand() * 40);
      const bytes = Buffer.alloc(len);
      for (let j = 0; j < len; j++) {
        // Bias towards valid tags and small lengths so that the decoder gets deep into the input.
        bytes[j] = rand() < 0.7 ? Math.floor(rand() * 16) : Math.floor(rand() * 256);
      }
      if (len > 0 && rand() < 0.9) bytes[0] = 0x01;
      try {
        decode(bytes);
        decoded++;
      } catch (err) {
        assert.ok(err instanceof CodecError, `input ${bytes.toString('hex')} threw ${String(err)}`);
        assert.equal(err.code, ErrorCode.CODEC_DECODE);
        rejected++;
      }
    }
    assert.equal(decoded + rejected, 2000);
    assert.ok(decoded > 0 && rejected > 0, `decoded ${decoded}, rejected ${rejected}`);
  });

  it('random mutations of a valid encoding decode or throw CodecError', () => {
    const rand = prng(42);
    const valid = encode(kitchenSink());
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(valid);
      const flips = 1 + Math.floor(rand() * 3);
      for (let f = 0; f < flips; f++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      try {
        decode(bytes);
      } catch (err) {
        assert.ok(err instanceof CodecError, `input ${bytes.toString('hex')} threw ${String(err)}`);
      }
    }
  });
});

describe('value codec: Nested (a value written in place as its own encoding)', () => {
  const cases: [string, unknown][] = [
    ['a short string', 'abc'],
    ['a 127-byte string (1-byte length)', 'x'.repeat(124)],
    ['a 128-byte string (2-byte length)', 'x'.repeat(125)],
    ['a 1 KiB string', 'count=7;'.repeat(128)],
    ['a multi-byte string', 'é漢😀'.repeat(50)],
    ['a 20000-byte string (3-byte length)', 'y'.repeat(20_000)],
    ['an integer', 42],
    ['a float', -0.5],
    ['true', true],
    ['null', null],
    ['an object', { a: [1, 2, { b: 'c' }], d: new Date(0) }],
  ];
  for (const [what, v] of cases) {
    it(`encode([Nested(v)]) equals encode([encode(v)]) for ${what}`, () => {
      const direct = encode(['x', new Nested(v), 7]);
      assert.ok(encodedEquals(direct, encode(['x', encode(v), 7])));
      const back = decode(direct) as [string, Buffer, number];
      assert.deepEqual(decode(back[1]), v);
      assert.equal(back[2], 7);
    });
  }

  it('nested inside a nested container, and with headroom', () => {
    const inner = [new Nested('a'), [new Nested({ k: new Nested(1) })]];
    assert.ok(encodedEquals(encode(inner), encode([encode('a'), [encode({ k: encode(1) })]])));
    const h = encode(new Nested('zz'), undefined, 14);
    assert.ok(encodedEquals(h.subarray(14), encode(encode('zz'))));
  });

  it('an unencodable value inside fails with its whole path', () => {
    assert.throws(
      () => encode(['x', new Nested({ cart: [1, () => 2] })]),
      (err: unknown) => err instanceof CodecError && err.path === '[1].cart[1]' && /functions/.test(err.message),
    );
  });

  it('isScalarEncoding: strings, numbers, booleans, null — not undefined, bigint, dates, containers', () => {
    for (const v of ['', 'abc', 1, -1.5, true, false, null]) assert.equal(isScalarEncoding(encode(v)), true, String(v));
    for (const v of [undefined, 1n, new Date(0), [], {}, new Map(), Buffer.from([1])])
      assert.equal(isScalarEncoding(encode(v)), false, String(v));
    assert.equal(isScalarEncoding(Buffer.from([0x02, 0x06])), false, 'another format version');
  });
});
