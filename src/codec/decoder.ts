/**
 * The decoder: reads untrusted bytes from the network. Reentrancy-safe: all state lives in a Reader
 * created per call.
 *
 * Besides the depth and length limits, every decode has an allocation budget: each value charges
 * about the heap it costs (a Map ~200 bytes, an object ~64 + 24 per property, a slot 8, …), and
 * the total may not exceed {@link DECODE_BUDGET}`.perByte` × input bytes + `.base`. An input of
 * 2-byte empty Maps (100 bytes of heap per input byte) is refused once it costs 16× its size,
 * instead of growing the heap by ~100×; legitimate data (a session's objects, strings, numbers,
 * byte arrays) costs far less than 16× (a `[{x:1}, …]` list costs exactly 16×). The check is one
 * subtraction and comparison per value.
 *
 * @module
 */
import { isUint8Array } from 'node:util/types';
import { CodecError, ErrorCode } from '../core/errors.js';
import {
  type BufferInternals,
  type CodecLimits,
  copyOut,
  type DecodeOptions,
  FORMAT_VERSION,
  f64,
  f64Bytes,
  HAS_INTERNALS,
  LITTLE_ENDIAN,
  type ResolvedLimits,
  resolveLimits,
  SHORT_DECODE,
  T_ARRAY,
  T_BIGINT_NEG,
  T_BIGINT_POS,
  T_BYTES,
  T_DATE,
  T_FALSE,
  T_FLOAT,
  T_INT,
  T_MAP,
  T_NULL,
  T_OBJECT,
  T_SET,
  T_STRING,
  T_TRUE,
  T_UNDEFINED,
} from './format.js';

const ObjectPrototype = Object.prototype;
const defineProperty = Object.defineProperty;
const hasOwn = Object.hasOwn;
const fromCharCode = String.fromCharCode;

/**
 * The allocation budget of one decode, in estimated heap bytes: `perByte` × input length + `base`.
 * The base lets small inputs of any shape through (about 5,000 empty Maps).
 */
export const DECODE_BUDGET = Object.freeze({ perByte: 16, base: 1024 * 1024 });

/** Estimated heap bytes of each value by tag (V8, 64-bit): the object itself; its slot is charged by its container. */
const COST = new Uint16Array(256);
COST[T_FLOAT] = 24;
COST[T_STRING] = 24; // plus its length, charged by the reader
COST[T_BIGINT_POS] = 32;
COST[T_BIGINT_NEG] = 32;
COST[T_DATE] = 104;
COST[T_BYTES] = 104; // plus its length when copied
COST[T_ARRAY] = 40;
COST[T_OBJECT] = 64;
COST[T_MAP] = 192;
COST[T_SET] = 160;
/** Per element of a container: the slot(s) and table entry holding it. */
const ARRAY_SLOT = 8;
const OBJECT_SLOT = 24;
const MAP_SLOT = 32;
const SET_SLOT = 24;

let budgetRefusals = 0;

/** Decodes refused for exceeding their allocation budget, in this process. */
export function decodeBudgetRefusals(): number {
  return budgetRefusals;
}

class Reader {
  readonly b: Buffer;
  pos: number;
  readonly end: number;
  readonly maxDepth: number;
  readonly maxStringBytes: number;
  readonly maxBytesLength: number;
  /** Byte arrays as views into `b` instead of copies ({@link DecodeOptions.byteViews}). */
  views = false;
  /** Estimated heap bytes this decode may still allocate. */
  budget: number;

  constructor(b: Buffer, limits: ResolvedLimits) {
    this.b = b;
    this.pos = 0;
    this.end = b.length;
    this.maxDepth = limits.maxDepth;
    this.maxStringBytes = limits.maxStringBytes;
    this.maxBytesLength = limits.maxBytesLength;
    this.budget = b.length * DECODE_BUDGET.perByte + DECODE_BUDGET.base;
  }
}

function overBudget(r: Reader, at: number): never {
  budgetRefusals++;
  const allowed = r.end * DECODE_BUDGET.perByte + DECODE_BUDGET.base;
  return fail(
    at,
    `the decoded value would take more than ${allowed} bytes of memory (${DECODE_BUDGET.perByte}× the input + ${DECODE_BUDGET.base}): refused as a decompression bomb`,
  );
}

function fail(at: number, reason: string): never {
  throw new CodecError(ErrorCode.CODEC_DECODE, `invalid encoding at byte ${at}: ${reason}`);
}

/** Unsigned LEB128, at most 7 bytes (< 2^49), canonical (no redundant trailing zero group). */
function readLength(r: Reader): number {
  const b = r.b;
  const at = r.pos;
  if (at >= r.end) fail(at, 'truncated (expected a length)');
  const first = b[at]!;
  if (first < 0x80) {
    r.pos = at + 1;
    return first;
  }
  let result = first & 0x7f;
  let scale = 0x80;
  let p = at + 1;
  for (let i = 1; i < 7; i++) {
    if (p >= r.end) fail(at, 'truncated varint');
    const byte = b[p++]!;
    result += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (byte === 0) fail(at, 'non-canonical varint');
      r.pos = p;
      return result;
    }
    scale *= 0x80;
  }
  return fail(at, 'varint longer than 7 bytes');
}

/** Zigzag int32: unsigned LEB128 of at most 5 bytes and at most 0xffffffff. */
function readInt(r: Reader): number {
  const b = r.b;
  const at = r.pos;
  let result = 0;
  // A multiplier, not 2 ** shift: V8 compiles ** with a variable exponent to a pow() call.
  let scale = 1;
  let p = at;
  for (let i = 0; i < 5; i++) {
    if (p >= r.end) fail(at, 'truncated varint');
    const byte = b[p++]!;
    result += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (byte === 0 && i > 0) fail(at, 'non-canonical varint');
      if (result > 0xffffffff) fail(at, 'integer varint out of int32 range');
      r.pos = p;
      return (result >>> 1) ^ -(result & 1);
    }
    scale *= 0x80;
  }
  return fail(at, 'integer varint longer than 5 bytes');
}

function readFloat64(r: Reader): number {
  const b = r.b;
  const p = r.pos;
  if (r.end - p < 8) fail(p, `truncated (float64 needs 8 bytes, ${r.end - p} left)`);
  if (LITTLE_ENDIAN) {
    f64Bytes[0] = b[p]!;
    f64Bytes[1] = b[p + 1]!;
    f64Bytes[2] = b[p + 2]!;
    f64Bytes[3] = b[p + 3]!;
    f64Bytes[4] = b[p + 4]!;
    f64Bytes[5] = b[p + 5]!;
    f64Bytes[6] = b[p + 6]!;
    f64Bytes[7] = b[p + 7]!;
  } else {
    for (let i = 0; i < 8; i++) f64Bytes[7 - i] = b[p + i]!;
  }
  r.pos = p + 8;
  return f64[0]!;
}

/** Reads varint length + UTF-8. Invalid UTF-8 is replaced with U+FFFD (Buffer semantics), not rejected. */
function readStringBody(r: Reader, what: string): string {
  const at = r.pos;
  const n = readLength(r);
  if (n > r.end - r.pos) fail(at, `${what} length ${n} exceeds the ${r.end - r.pos} bytes left`);
  if (n > r.maxStringBytes) fail(at, `${what} length ${n} exceeds limits.maxStringBytes (${r.maxStringBytes})`);
  const b = r.b;
  const start = r.pos;
  const end = start + n;
  r.pos = end;
  if (n <= SHORT_DECODE) {
    let s = '';
    let i = start;
    for (; i < end; i++) {
      const c = b[i]!;
      if (c >= 0x80) break;
      s += fromCharCode(c);
    }
    if (i === end) return s;
  }
  return HAS_INTERNALS ? (b as unknown as BufferInternals).utf8Slice(start, end) : b.toString('utf8', start, end);
}

function readBigInt(r: Reader, negative: boolean): bigint {
  const at = r.pos;
  const n = readLength(r);
  if (n > r.end - r.pos) fail(at, `bigint length ${n} exceeds the ${r.end - r.pos} bytes left`);
  if (n > r.maxBytesLength) fail(at, `bigint length ${n} exceeds limits.maxBytesLength (${r.maxBytesLength})`);
  if (n === 0) {
    if (negative) fail(at, 'negative bigint with zero magnitude');
    return 0n;
  }
  const start = r.pos;
  if (r.b[start] === 0) fail(start, 'bigint magnitude has a leading zero byte');
  r.pos = start + n;
  const mag = BigInt(`0x${r.b.toString('hex', start, start + n)}`);
  return negative ? -mag : mag;
}

function readValue(r: Reader, depth: number): unknown {
  const at = r.pos;
  if (at >= r.end) fail(at, 'truncated (expected a value)');
  const tag = r.b[at]!;
  r.pos = at + 1;
  if ((r.budget -= COST[tag]!) < 0) overBudget(r, at);
  switch (tag) {
    case T_UNDEFINED:
      return undefined;
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_INT:
      return readInt(r);
    case T_FLOAT:
      return readFloat64(r);
    case T_STRING: {
      const s = readStringBody(r, 'string');
      if ((r.budget -= s.length) < 0) overBudget(r, at);
      return s;
    }
    case T_BIGINT_POS:
      return readBigInt(r, false);
    case T_BIGINT_NEG:
      return readBigInt(r, true);
    case T_DATE:
      return new Date(readFloat64(r));
    case T_BYTES: {
      const lat = r.pos;
      const n = readLength(r);
      if (n > r.end - r.pos) fail(lat, `byte array length ${n} exceeds the ${r.end - r.pos} bytes left`);
      if (n > r.maxBytesLength) fail(lat, `byte array length ${n} exceeds limits.maxBytesLength (${r.maxBytesLength})`);
      const start = r.pos;
      r.pos = start + n;
      if (r.views) return r.b.subarray(start, start + n);
      if ((r.budget -= n) < 0) overBudget(r, at);
      return copyOut(r.b, start, start + n, 0, undefined);
    }
    case T_ARRAY:
    case T_OBJECT:
    case T_MAP:
    case T_SET:
      if (depth >= r.maxDepth) fail(at, `nesting deeper than ${r.maxDepth} levels (limits.maxDepth)`);
      return readContainer(r, tag, at, depth + 1);
    default:
      return fail(at, `unknown tag 0x${tag.toString(16).padStart(2, '0')}`);
  }
}

function readContainer(r: Reader, tag: number, at: number, depth: number): unknown {
  const n = readLength(r);
  const left = r.end - r.pos;
  if (tag === T_ARRAY) {
    // Every element takes at least 1 byte.
    if (n > left) fail(at, `array count ${n} exceeds the ${left} bytes left`);
    if ((r.budget -= n * ARRAY_SLOT) < 0) overBudget(r, at);
    const arr: unknown[] = new Array(n);
    for (let i = 0; i < n; i++) arr[i] = readValue(r, depth);
    return arr;
  }
  if (tag === T_OBJECT) {
    // Every property takes at least 2 bytes (key length + value tag).
    if (n * 2 > left) fail(at, `object count ${n} exceeds what the ${left} bytes left can hold`);
    if ((r.budget -= n * OBJECT_SLOT) < 0) overBudget(r, at);
    const obj: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const key = readStringBody(r, 'property name');
      const v = readValue(r, depth);
      if (key === '__proto__' || hasOwn(ObjectPrototype, key)) {
        // Define, never assign: assignment to `__proto__` would set the prototype, and assignment to a name that
        // Object.prototype owns would hit a setter or fail on a frozen prototype. JSON.parse semantics.
        defineProperty(obj, key, { value: v, writable: true, enumerable: true, configurable: true });
      } else {
        obj[key] = v; // duplicate keys: last wins
      }
    }
    return obj;
  }
  if (tag === T_MAP) {
    if (n * 2 > left) fail(at, `Map count ${n} exceeds what the ${left} bytes left can hold`);
    if ((r.budget -= n * MAP_SLOT) < 0) overBudget(r, at);
    const map = new Map<unknown, unknown>();
    for (let i = 0; i < n; i++) {
      const k = readValue(r, depth);
      map.set(k, readValue(r, depth)); // duplicate keys: last wins
    }
    return map;
  }
  if (n > left) fail(at, `Set count ${n} exceeds the ${left} bytes left`);
  if ((r.budget -= n * SET_SLOT) < 0) overBudget(r, at);
  const set = new Set<unknown>();
  for (let i = 0; i < n; i++) set.add(readValue(r, depth));
  return set;
}

/**
 * Decodes one value from untrusted bytes. The whole input must be exactly one encoding.
 *
 * Safe for hostile input: no prototype pollution (`__proto__` becomes an own data property, as with JSON.parse),
 * recursion bounded by `limits.maxDepth`, every count/length checked against the bytes left before allocating,
 * the memory the value takes bounded by {@link DECODE_BUDGET} (a multiple of the input's size),
 * byte arrays returned as copies (never views into `bytes`) unless `options.byteViews` asks for views.
 *
 * @param bytes - the encoding; not retained, not modified.
 * @param limits - optional {@link CodecLimits}; use the encoder's limits.
 * @param options - optional {@link DecodeOptions}.
 * @returns the value; plain objects come back with prototype Object.prototype, Uint8Arrays as Buffers.
 * @throws {@link CodecError} with code `ERR_CLOWDER_CODEC_DECODE` on any malformed input, the message naming the
 *   byte offset; {@link ConfigError} for malformed limits.
 */
export function decode(bytes: Uint8Array, limits?: CodecLimits, options?: DecodeOptions): unknown {
  if (!isUint8Array(bytes)) {
    throw new CodecError(ErrorCode.CODEC_DECODE, 'invalid encoding: input is not a Uint8Array');
  }
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(b, resolveLimits(limits));
  if (options?.byteViews === true) r.views = true;
  if (b.length === 0) fail(0, 'empty input');
  const version = b[0]!;
  if (version !== FORMAT_VERSION) {
    fail(0, `unsupported format version 0x${version.toString(16).padStart(2, '0')} (expected 0x01)`);
  }
  r.pos = 1;
  let value: unknown;
  try {
    value = readValue(r, 0);
  } catch (err) {
    // Defence in depth: a stack overflow or allocation failure must still surface as a CodecError.
    if (err instanceof RangeError) fail(r.pos, `${err.message}`);
    throw err;
  }
  if (r.pos !== r.end) fail(r.pos, `${r.end - r.pos} trailing byte(s) after the value`);
  return value;
}
