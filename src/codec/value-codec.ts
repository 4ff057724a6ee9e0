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
 * The byte format is specified in `docs/codec.md`.
 *
 * @module
 */

import { isDate, isMap, isSet, isUint8Array } from 'node:util/types';
import { CodecError, ErrorCode } from '../core/errors.js';
import {
  type Allocator,
  type BufferInternals,
  type CodecLimits,
  copyOut,
  DEFAULT_MAX_BYTES_LENGTH,
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_STRING_BYTES,
  FORMAT_VERSION,
  f64,
  f64Bytes,
  HAS_INTERNALS,
  LITTLE_ENDIAN,
  limitValue,
  MAX_BUFFER_CAP,
  MAX_DEPTH_CAP,
  MAX_STRING_CAP,
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
export type { Allocator, CodecLimits, DecodeOptions } from './format.js';
export { DEFAULT_MAX_STRING_BYTES } from './format.js';

// ---------------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------------

/**
 * A value that travels as the bytes of its own encoding: `encode([new Nested(v)])` produces the same
 * bytes as `encode([encode(v)])`, without the intermediate Buffer (the value is written in place).
 * It decodes as those bytes (a Buffer), to be decoded again by whoever needs the value.
 */
export class Nested {
  constructor(readonly value: unknown) {}
}
const NestedPrototype = Nested.prototype;
/** Room reserved for the length of a Nested encoding (a varint below 2^35). */
const NESTED_LENGTH_ROOM = 5;

/**
 * The values {@link encode} accepts (documentation type: {@link encode} takes `unknown` and checks at run time).
 * Plain objects are those whose prototype is `Object.prototype` or `null`; Buffer is a Uint8Array.
 */
export type Encodable =
  | null
  | undefined
  | boolean
  | number
  | string
  | bigint
  | Date
  | Uint8Array
  | readonly Encodable[]
  | { readonly [k: string]: Encodable }
  | ReadonlyMap<Encodable, Encodable>
  | ReadonlySet<Encodable>;

const ObjectPrototype = Object.prototype;
const ArrayPrototype = Array.prototype;
const MapPrototype = Map.prototype;
const SetPrototype = Set.prototype;
const DatePrototype = Date.prototype;
const Uint8ArrayPrototype = Uint8Array.prototype;
const BufferPrototype = Buffer.prototype;
const getPrototypeOf = Object.getPrototypeOf;
const objectKeys = Object.keys;
const isArray = Array.isArray;

// ---------------------------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------------------------

let maxDepth = DEFAULT_MAX_DEPTH;
let maxStringBytes = DEFAULT_MAX_STRING_BYTES;
let maxBytesLength = DEFAULT_MAX_BYTES_LENGTH;

/** Sets the module-level limits for one top-level call (callers save and restore the previous values). */
function applyLimits(limits: CodecLimits | undefined): void {
  if (limits === undefined) {
    maxDepth = DEFAULT_MAX_DEPTH;
    maxStringBytes = DEFAULT_MAX_STRING_BYTES;
    maxBytesLength = DEFAULT_MAX_BYTES_LENGTH;
    return;
  }
  // Validate all three before assigning any, so that a ConfigError leaves the module state untouched.
  const depth = limitValue(limits, 'maxDepth', DEFAULT_MAX_DEPTH, MAX_DEPTH_CAP);
  const strings = limitValue(limits, 'maxStringBytes', DEFAULT_MAX_STRING_BYTES, MAX_STRING_CAP);
  const bytes = limitValue(limits, 'maxBytesLength', DEFAULT_MAX_BYTES_LENGTH, MAX_BUFFER_CAP);
  maxDepth = depth;
  maxStringBytes = strings;
  maxBytesLength = bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder (fast path). It does not track paths: on any problem it throws ENCODE_FAILED and encode() runs the
// diagnosing walker (the same one checkEncodable uses) to find the exact offending value, path and reason.
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
  const proto = getPrototypeOf(o);
  if (proto === ObjectPrototype || proto === null) {
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
  if (proto === ArrayPrototype && isArray(o)) {
    if (depth >= maxDepth) throw ENCODE_FAILED;
    const arr = o as readonly unknown[];
    const n = arr.length;
    if (pos + 9 > buf.length) grow(9);
    buf[pos++] = T_ARRAY;
    writeVarint(n);
    for (let i = 0; i < n; i++) writeValue(arr[i], depth + 1);
    return;
  }
  if ((proto === BufferPrototype || proto === Uint8ArrayPrototype) && isUint8Array(o)) {
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
  if (proto === NestedPrototype) {
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
  if (proto === DatePrototype && isDate(o)) {
    if (pos + 9 > buf.length) grow(9);
    buf[pos++] = T_DATE;
    writeFloat64((o as Date).getTime());
    return;
  }
  if (proto === MapPrototype && isMap(o)) {
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
  if (proto === SetPrototype && isSet(o)) {
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
  throw ENCODE_FAILED;
}

// ---------------------------------------------------------------------------------------------------------------
// Diagnosing walker: exact cycle detection (ancestor set) and path tracking. Used by checkEncodable() and, after a
// fast-path failure, by encode() to build the error.
// ---------------------------------------------------------------------------------------------------------------

const S_PROP = 0;
const S_INDEX = 1;
const S_MAP_KEY = 2;
const S_MAP_VALUE = 3;
const S_SET_ITEM = 4;

interface Walk {
  /** Segment kinds (S_*), one per level of the current path. */
  kinds: number[];
  /** Segment keys: property name, index, or Map key. */
  keys: unknown[];
  /** Segment indexes (iteration position inside a Map/Set). */
  idx: number[];
  /** Containers on the current path. */
  ancestors: object[];
  /** Same containers, for O(1) membership. */
  onPath: Set<object>;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function quoteKey(k: string): string {
  return JSON.stringify(k.length > 40 ? `${k.slice(0, 37)}...` : k);
}

function renderMapKey(k: unknown): string | undefined {
  switch (typeof k) {
    case 'string':
      return quoteKey(k);
    case 'number':
      return Object.is(k, -0) ? '-0' : String(k);
    case 'bigint':
      return `${k}n`;
    case 'boolean':
    case 'undefined':
      return String(k);
    default:
      return k === null ? 'null' : undefined;
  }
}

function renderPath(w: Walk, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    const kind = w.kinds[i]!;
    const key = w.keys[i];
    let seg: string;
    if (kind === S_PROP) {
      const k = key as string;
      seg = IDENTIFIER.test(k) ? `.${k}` : `[${quoteKey(k)}]`;
    } else if (kind === S_INDEX) {
      seg = `[${key as number}]`;
    } else if (kind === S_MAP_KEY) {
      seg = `.keys()[${w.idx[i]!}]`;
    } else if (kind === S_MAP_VALUE) {
      const r = renderMapKey(key);
      seg = r === undefined ? `.values()[${w.idx[i]!}]` : `.get(${r})`;
    } else {
      seg = `.values()[${w.idx[i]!}]`;
    }
    out += out === '' && seg.charCodeAt(0) === 0x2e ? seg.slice(1) : seg;
  }
  return out;
}

function encodeError(w: Walk, reason: string): CodecError {
  const path = renderPath(w, w.kinds.length);
  const where = path === '' ? 'the root value' : path;
  return new CodecError(ErrorCode.CODEC_ENCODE, `cannot encode ${where}: ${reason}`, path);
}

const PLAIN_DATA_HINT = 'store plain data (objects, arrays, Map, Set, Date, bigint, Uint8Array)';

function className(proto: object): string | undefined {
  try {
    const d = Object.getOwnPropertyDescriptor(proto, 'constructor');
    const ctor: unknown = d?.value;
    if (typeof ctor === 'function' && typeof ctor.name === 'string' && ctor.name !== '') return ctor.name;
  } catch {
    // A hostile proxy in the prototype chain: fall back to the generic message.
  }
  return undefined;
}

function utf8Length(s: string): number {
  return s.length * 3 <= maxStringBytes ? s.length : Buffer.byteLength(s, 'utf8');
}

function checkString(w: Walk, s: string, what: string): void {
  if (s.length > maxStringBytes || utf8Length(s) > maxStringBytes) {
    const n = Buffer.byteLength(s, 'utf8');
    throw encodeError(w, `${what} of ${n} UTF-8 bytes exceeds limits.maxStringBytes (${maxStringBytes})`);
  }
}

function push(w: Walk, kind: number, key: unknown, idx: number): void {
  w.kinds.push(kind);
  w.keys.push(key);
  w.idx.push(idx);
}

function pop(w: Walk): void {
  w.kinds.pop();
  w.keys.pop();
  w.idx.pop();
}

function walkValue(w: Walk, v: unknown, depth: number): void {
  switch (typeof v) {
    case 'string':
      checkString(w, v, 'string');
      return;
    case 'number':
    case 'boolean':
    case 'undefined':
      return;
    case 'bigint': {
      const n = v === 0n ? 0 : Math.ceil((v < 0n ? -v : v).toString(16).length / 2);
      if (n > maxBytesLength) {
        throw encodeError(w, `bigint of ${n} magnitude bytes exceeds limits.maxBytesLength (${maxBytesLength})`);
      }
      return;
    }
    case 'function':
      throw encodeError(w, 'functions are not encodable');
    case 'symbol':
      throw encodeError(w, 'symbols are not encodable');
    default:
      if (v === null) return;
      walkObject(w, v as object, depth);
  }
}

function enter(w: Walk, o: object, depth: number): void {
  if (w.onPath.has(o)) {
    const at = w.ancestors.indexOf(o);
    const target = at <= 0 ? 'the root value' : renderPath(w, at);
    throw encodeError(w, `cyclic reference (back to ${target})`);
  }
  if (depth >= maxDepth) throw encodeError(w, `nesting deeper than ${maxDepth} levels (limits.maxDepth)`);
  w.ancestors.push(o);
  w.onPath.add(o);
}

function leave(w: Walk, o: object): void {
  w.ancestors.pop();
  w.onPath.delete(o);
}

function walkObject(w: Walk, o: object, depth: number): void {
  const proto = getPrototypeOf(o);
  if (proto === NestedPrototype) {
    walkValue(w, (o as Nested).value, 0); // its own root, as in encode()
    return;
  }
  if (proto === ObjectPrototype || proto === null) {
    enter(w, o, depth);
    const rec = o as Record<string, unknown>;
    const keys = objectKeys(rec);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      push(w, S_PROP, k, i);
      checkString(w, k, 'property name');
      walkValue(w, rec[k], depth + 1);
      pop(w);
    }
    leave(w, o);
    return;
  }
  if (proto === ArrayPrototype && isArray(o)) {
    enter(w, o, depth);
    const arr = o as readonly unknown[];
    const n = arr.length;
    for (let i = 0; i < n; i++) {
      push(w, S_INDEX, i, i);
      walkValue(w, arr[i], depth + 1);
      pop(w);
    }
    leave(w, o);
    return;
  }
  if ((proto === BufferPrototype || proto === Uint8ArrayPrototype) && isUint8Array(o)) {
    const n = (o as Uint8Array).length;
    if (n > maxBytesLength) {
      throw encodeError(w, `byte array of ${n} bytes exceeds limits.maxBytesLength (${maxBytesLength})`);
    }
    return;
  }
  if (proto === DatePrototype && isDate(o)) return;
  if (proto === MapPrototype && isMap(o)) {
    enter(w, o, depth);
    let i = 0;
    for (const [k, val] of o as ReadonlyMap<unknown, unknown>) {
      push(w, S_MAP_KEY, k, i);
      walkValue(w, k, depth + 1);
      pop(w);
      push(w, S_MAP_VALUE, k, i);
      walkValue(w, val, depth + 1);
      pop(w);
      i++;
    }
    leave(w, o);
    return;
  }
  if (proto === SetPrototype && isSet(o)) {
    enter(w, o, depth);
    let i = 0;
    for (const item of o as ReadonlySet<unknown>) {
      push(w, S_SET_ITEM, item, i);
      walkValue(w, item, depth + 1);
      pop(w);
      i++;
    }
    leave(w, o);
    return;
  }
  const name = className(proto);
  if (name !== undefined) throw encodeError(w, `instances of class ${name} are not encodable; ${PLAIN_DATA_HINT}`);
  throw encodeError(w, `objects with a custom prototype are not encodable; ${PLAIN_DATA_HINT}`);
}

function diagnose(value: unknown): void {
  const w: Walk = { kinds: [], keys: [], idx: [], ancestors: [], onPath: new Set() };
  walkValue(w, value, 0);
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
    diagnose(value);
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
 * Checks that `value` is encodable under `limits` without producing bytes.
 *
 * @throws the same {@link CodecError} {@link encode} would throw (same path and message); {@link ConfigError} for
 *   malformed limits.
 */
export function checkEncodable(value: unknown, limits?: CodecLimits): void {
  const savedDepth = maxDepth;
  const savedString = maxStringBytes;
  const savedBytes = maxBytesLength;
  applyLimits(limits);
  try {
    diagnose(value);
  } finally {
    maxDepth = savedDepth;
    maxStringBytes = savedString;
    maxBytesLength = savedBytes;
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
