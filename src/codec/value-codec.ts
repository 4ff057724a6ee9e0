/**
 * The application-payload codec: a strict, compact, binary encoding of session attribute values.
 *
 * Supported: null, undefined, booleans, numbers (every float64), strings, bigint, Date, Uint8Array/Buffer,
 * arrays, plain objects, Map and Set, nested in any combination. Everything else (functions, symbols, class
 * instances, cycles, too-deep nesting, oversized strings/bytes) is rejected on encode with a {@link CodecError}
 * that names the path of the offending value. Decode treats its input as hostile network bytes: it never
 * pollutes prototypes, never recurses past the depth limit, checks every count and length against the bytes
 * left before allocating, and throws {@link CodecError} on any malformed input.
 *
 * The byte format is specified in `docs/codec.md`. This module is the encoder (a fast path that
 * tracks no paths) and the public API; the decoder is decoder.ts, the diagnosing walker that names
 * what cannot be encoded is encode-check.ts, the accepted values are encodable.ts, and what
 * encoder and decoder share (tags, limits) is format.ts.
 *
 * @module
 */

import { CodecError, ErrorCode } from '../core/errors.js';
import { kindOf, type Nested } from './encodable.js';
import { diagnose } from './encode-check.js';
import {
  type Allocator,
  type BufferInternals,
  type CodecLimits,
  copyOut,
  DEFAULT_LIMITS,
  FORMAT_VERSION,
  f64,
  f64Bytes,
  HAS_INTERNALS,
  LITTLE_ENDIAN,
  MAX_BUFFER_CAP,
  resolveLimits,
  SHORT_STRING,
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

export { DECODE_BUDGET, decode, decodeBudgetRefusals } from './decoder.js';
export { type Encodable, Nested } from './encodable.js';
export { checkEncodable } from './encode-check.js';
export type { Allocator, CodecLimits, DecodeOptions } from './format.js';
export { DEFAULT_MAX_STRING_BYTES } from './format.js';

/** Room reserved for the length of a Nested encoding (a varint below 2^35). */
const NESTED_LENGTH_ROOM = 5;
const objectKeys = Object.keys;

// ---------------------------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------------------------

let maxDepth = DEFAULT_LIMITS.maxDepth;
let maxStringBytes = DEFAULT_LIMITS.maxStringBytes;
let maxBytesLength = DEFAULT_LIMITS.maxBytesLength;

/** Sets the module-level limits for one top-level call (callers save and restore the previous values). */
function applyLimits(limits: CodecLimits | undefined): void {
  // Resolved (all three checked) before any is assigned: a ConfigError leaves the module state untouched.
  const l = resolveLimits(limits);
  maxDepth = l.maxDepth;
  maxStringBytes = l.maxStringBytes;
  maxBytesLength = l.maxBytesLength;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder (fast path). It does not track paths: on any problem it throws ENCODE_FAILED and encode() runs the
// diagnosing walker (encode-check.ts, also checkEncodable's) to find the exact offending value, path and reason.
// ---------------------------------------------------------------------------------------------------------------

/** Internal signal from the fast path; never escapes this module. */
class EncodeFailed {}
const ENCODE_FAILED = new EncodeFailed();
/** Internal signal: the encoding would exceed the largest Buffer Node can allocate. */
const ENCODE_TOO_LARGE = new EncodeFailed();

const SCRATCH_INITIAL = 16 * 1024;
/** Scratch buffers larger than this are dropped after the call so that one huge value does not pin memory. */
const SCRATCH_RETAIN = 1024 * 1024;

/** Module-level scratch buffer, reused across calls; grows by doubling. */
let buf: Buffer = Buffer.allocUnsafe(SCRATCH_INITIAL);
let pos = 0;
/** Nesting of encode() calls (a getter may call encode() while an encode is running). */
let encodeActive = 0;

function grow(needed: number): void {
  const required = pos + needed;
  if (required > MAX_BUFFER_CAP) throw ENCODE_TOO_LARGE;
  let size = buf.length * 2;
  while (size < required) size *= 2;
  if (size > MAX_BUFFER_CAP) size = MAX_BUFFER_CAP;
  const next = Buffer.allocUnsafe(size);
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function writeVarint(n: number): void {
  // n is a non-negative integer below 2^53; callers reserved 8 bytes.
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
}

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

function writeFloat64(v: number): void {
  f64[0] = v;
  if (LITTLE_ENDIAN) {
    buf[pos] = f64Bytes[0]!;
    buf[pos + 1] = f64Bytes[1]!;
    buf[pos + 2] = f64Bytes[2]!;
    buf[pos + 3] = f64Bytes[3]!;
    buf[pos + 4] = f64Bytes[4]!;
    buf[pos + 5] = f64Bytes[5]!;
    buf[pos + 6] = f64Bytes[6]!;
    buf[pos + 7] = f64Bytes[7]!;
  } else {
    for (let i = 0; i < 8; i++) buf[pos + i] = f64Bytes[7 - i]!;
  }
  pos += 8;
}

function writeNumber(v: number): void {
  if (pos + 9 > buf.length) grow(9);
  if ((v | 0) === v && (v !== 0 || 1 / v > 0)) {
    buf[pos++] = T_INT;
    let z = ((v << 1) ^ (v >> 31)) >>> 0;
    while (z >= 0x80) {
      buf[pos++] = (z & 0x7f) | 0x80;
      z >>>= 7;
    }
    buf[pos++] = z;
  } else {
    buf[pos++] = T_FLOAT;
    writeFloat64(v);
  }
}

/** Writes varint byte length + UTF-8 of `s` (the tag, if any, is already written). */
function writeStringBody(s: string): void {
  const len = s.length;
  if (len <= SHORT_STRING) {
    if (pos + 1 + len > buf.length) grow(1 + len);
    // Optimistic ASCII: 1-byte length, then one byte per unit. Falls through on the first non-ASCII unit.
    const start = pos + 1;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[start + i] = c;
    }
    if (i === len) {
      if (len > maxStringBytes) throw ENCODE_FAILED;
      buf[pos] = len;
      pos = start + len;
      return;
    }
  }
  // UTF-8 never needs more than 3 bytes per UTF-16 unit (a surrogate pair is 4 bytes for 2 units).
  if (len > maxStringBytes) throw ENCODE_FAILED;
  const worst = len * 3;
  const headWorst = varintSize(worst);
  if (pos + headWorst + worst > buf.length) grow(headWorst + worst);
  const start = pos + headWorst;
  const n = HAS_INTERNALS
    ? (buf as unknown as BufferInternals).utf8Write(s, start, worst)
    : buf.write(s, start, worst, 'utf8');
  if (n > maxStringBytes) throw ENCODE_FAILED;
  const head = varintSize(n);
  if (head !== headWorst) buf.copyWithin(pos + head, start, start + n);
  writeVarint(n);
  pos += n;
}

function writeBigInt(v: bigint): void {
  let tag = T_BIGINT_POS;
  if (v < 0n) {
    tag = T_BIGINT_NEG;
    v = -v;
  }
  if (v === 0n) {
    if (pos + 2 > buf.length) grow(2);
    buf[pos++] = tag;
    buf[pos++] = 0;
    return;
  }
  let hex = v.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const n = hex.length / 2;
  if (n > maxBytesLength) throw ENCODE_FAILED;
  if (pos + 9 + n > buf.length) grow(9 + n);
  buf[pos++] = tag;
  writeVarint(n);
  buf.write(hex, pos, n, 'hex');
  pos += n;
}

function writeValue(v: unknown, depth: number): void {
  switch (typeof v) {
    case 'string':
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T_STRING;
      writeStringBody(v);
      return;
    case 'number':
      writeNumber(v);
      return;
    case 'boolean':
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = v ? T_TRUE : T_FALSE;
      return;
    case 'undefined':
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T_UNDEFINED;
      return;
    case 'bigint':
      writeBigInt(v);
      return;
    case 'object':
      if (v === null) {
        if (pos + 1 > buf.length) grow(1);
        buf[pos++] = T_NULL;
        return;
      }
      writeObject(v, depth);
      return;
    default:
      // function, symbol
      throw ENCODE_FAILED;
  }
}

function writeObject(o: object, depth: number): void {
  switch (kindOf(o)) {
    case 'object': {
      if (depth >= maxDepth) throw ENCODE_FAILED;
      const rec = o as Record<string, unknown>;
      const keys = objectKeys(rec);
      const n = keys.length;
      if (pos + 9 > buf.length) grow(9);
      buf[pos++] = T_OBJECT;
      writeVarint(n);
      for (let i = 0; i < n; i++) {
        const k = keys[i]!;
        writeStringBody(k);
        writeValue(rec[k], depth + 1);
      }
      return;
    }
    case 'array': {
      if (depth >= maxDepth) throw ENCODE_FAILED;
      const arr = o as readonly unknown[];
      const n = arr.length;
      if (pos + 9 > buf.length) grow(9);
      buf[pos++] = T_ARRAY;
      writeVarint(n);
      for (let i = 0; i < n; i++) writeValue(arr[i], depth + 1);
      return;
    }
    case 'bytes': {
      const bytes = o as Uint8Array;
      const n = bytes.length;
      if (n > maxBytesLength) throw ENCODE_FAILED;
      if (pos + 9 + n > buf.length) grow(9 + n);
      buf[pos++] = T_BYTES;
      writeVarint(n);
      buf.set(bytes, pos);
      pos += n;
      return;
    }
    case 'nested': {
      // T_BYTES, the length, then the value's own encoding, written in place: the length is known
      // only afterwards, so room for the longest varint is kept and the body moved up if shorter.
      if (pos + 2 + NESTED_LENGTH_ROOM > buf.length) grow(2 + NESTED_LENGTH_ROOM);
      buf[pos++] = T_BYTES;
      const lengthAt = pos;
      const start = lengthAt + NESTED_LENGTH_ROOM;
      pos = start;
      buf[pos++] = FORMAT_VERSION;
      writeValue((o as Nested).value, 0);
      const n = pos - start;
      if (n > maxBytesLength) throw ENCODE_FAILED;
      const shift = NESTED_LENGTH_ROOM - varintSize(n);
      if (shift > 0) buf.copyWithin(start - shift, start, pos);
      const end = pos - shift;
      pos = lengthAt;
      writeVarint(n);
      pos = end;
      return;
    }
    case 'date':
      if (pos + 9 > buf.length) grow(9);
      buf[pos++] = T_DATE;
      writeFloat64((o as Date).getTime());
      return;
    case 'map': {
      if (depth >= maxDepth) throw ENCODE_FAILED;
      const map = o as ReadonlyMap<unknown, unknown>;
      const n = map.size;
      if (pos + 9 > buf.length) grow(9);
      buf[pos++] = T_MAP;
      writeVarint(n);
      let seen = 0;
      for (const [k, val] of map) {
        if (seen === n) break;
        writeValue(k, depth + 1);
        writeValue(val, depth + 1);
        seen++;
      }
      if (seen !== n) throw ENCODE_FAILED; // modified while being encoded (by a getter)
      return;
    }
    case 'set': {
      if (depth >= maxDepth) throw ENCODE_FAILED;
      const set = o as ReadonlySet<unknown>;
      const n = set.size;
      if (pos + 9 > buf.length) grow(9);
      buf[pos++] = T_SET;
      writeVarint(n);
      let seen = 0;
      for (const item of set) {
        if (seen === n) break;
        writeValue(item, depth + 1);
        seen++;
      }
      if (seen !== n) throw ENCODE_FAILED;
      return;
    }
    default:
      throw ENCODE_FAILED;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Public encode API
// ---------------------------------------------------------------------------------------------------------------

/**
 * Encodes `value` into a fresh Buffer owned by the caller (first byte: format version).
 *
 * @param value - any {@link Encodable} value.
 * @param limits - optional {@link CodecLimits}; defaults: depth 64, strings 16 MiB, bytes 64 MiB.
 * @param headroom - bytes left free before the encoding (the channel writes its frame header there,
 *   so a message is encoded once and never copied into a frame); the encoding starts at this offset.
 * @param alloc - where the result is allocated (default `Buffer.allocUnsafe`): the session layer
 *   passes its long-lived arena, so an attribute is copied once, not allocated twice.
 * @returns a new Buffer (small results may share Node's Buffer pool slab, like `Buffer.from`).
 * @throws {@link CodecError} with code `ERR_CLOWDER_CODEC_ENCODE` when the value, or something inside it, cannot be
 *   encoded; `error.path` names it (`cart.items[2].onClick`, `''` for the root) and the message says why.
 *   Errors thrown by getters of the value propagate unchanged. {@link ConfigError} for malformed limits.
 * @remarks Getters are read once on success; after a failure the value is walked a second time to build the
 *   error, so getters run again.
 */
export function encode(value: unknown, limits?: CodecLimits, headroom = 0, alloc?: Allocator): Buffer {
  const outer = encodeActive > 0;
  const savedPos = pos;
  const savedDepth = maxDepth;
  const savedString = maxStringBytes;
  const savedBytes = maxBytesLength;
  applyLimits(limits);
  encodeActive++;
  // A nested call (from a getter) appends after the outer call's bytes and rewinds when done.
  const start = pos;
  try {
    if (pos + 1 > buf.length) grow(1);
    buf[pos++] = FORMAT_VERSION;
    writeValue(value, 0);
    return copyOut(buf, start, pos, headroom, alloc);
  } catch (err) {
    if (err !== ENCODE_FAILED && err !== ENCODE_TOO_LARGE) throw err;
    diagnose(value, { maxDepth, maxStringBytes, maxBytesLength });
    if (err === ENCODE_TOO_LARGE) {
      throw new CodecError(
        ErrorCode.CODEC_ENCODE,
        `cannot encode the root value: the encoding would exceed ${MAX_BUFFER_CAP} bytes`,
        '',
      );
    }
    // The walk found nothing: a getter or a concurrent change made the two walks see different values.
    throw new CodecError(
      ErrorCode.CODEC_ENCODE,
      'cannot encode the root value: it changed while being encoded (a getter returned different data, or a Map/Set was modified)',
      '',
    );
  } finally {
    encodeActive--;
    pos = savedPos;
    maxDepth = savedDepth;
    maxStringBytes = savedString;
    maxBytesLength = savedBytes;
    if (!outer && buf.length > SCRATCH_RETAIN) buf = Buffer.allocUnsafe(SCRATCH_INITIAL);
  }
}

/**
 * Whether an encoding's root value is a scalar — a string, number, boolean or null (not
 * undefined, a bigint or a container). Looks at the first two bytes only; the rest is not checked.
 */
export function isScalarEncoding(bytes: Uint8Array): boolean {
  if (bytes.length < 2 || bytes[0] !== FORMAT_VERSION) return false;
  const tag = bytes[1]!;
  return tag === T_STRING || tag === T_INT || tag === T_FLOAT || (tag >= T_NULL && tag <= T_TRUE);
}

/**
 * Byte equality of two encodings (or any two byte arrays).
 *
 * @returns true when both have the same length and the same bytes.
 */
export function encodedEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}
