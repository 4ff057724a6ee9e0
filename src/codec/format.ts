/**
 * What the encoder and the decoder share: the format's tags and limits (see docs/codec.md), the
 * limit types and their validation, and small byte helpers.
 *
 * @module
 */
import { constants as bufferConstants } from 'node:buffer';
import { ConfigError } from '../core/errors.js';

/**
 * Limits applied by {@link encode}, {@link decode} and {@link checkEncodable}. Omitted fields take their defaults.
 * Encoder and decoder should be given the same limits: a value accepted by one is then accepted by the other.
 */
export interface CodecLimits {
  /**
   * Maximum container nesting (arrays, objects, Map, Set). The root container is at depth 1, so the default 64
   * allows 64 nested containers and rejects the 65th. Integer in 0..1000. Default 64.
   */
  maxDepth?: number;
  /** Maximum UTF-8 byte length of one string (values, object keys, Map/Set members). Default 16 MiB. */
  maxStringBytes?: number;
  /** Maximum byte length of one Uint8Array/Buffer value, and of one bigint magnitude. Default 64 MiB. */
  maxBytesLength?: number;
}

/** How {@link decode} hands values out. */
export interface DecodeOptions {
  /**
   * Byte arrays come back as views into the input (`Buffer.subarray`) instead of copies: for a
   * caller that decodes or copies every byte array it keeps (a message whose embedded encodings
   * are decoded or stored in memory of their own), saving a copy per value. A view keeps the
   * whole input alive and changes with it. Default false.
   */
  byteViews?: boolean;
}

/** Allocates `size` bytes for an encoding (see {@link encode}'s `alloc`). */
export type Allocator = (size: number) => Buffer;

// ---------------------------------------------------------------------------------------------------------------
// Format constants (see docs/codec.md)
// ---------------------------------------------------------------------------------------------------------------

/** First byte of every encoding. */
export const FORMAT_VERSION = 0x01;

export const T_UNDEFINED = 0x00;
export const T_NULL = 0x01;
export const T_FALSE = 0x02;
export const T_TRUE = 0x03;
/** int32, zigzag + unsigned LEB128 (1..5 bytes). */
export const T_INT = 0x04;
/** float64, 8 bytes little-endian. */
export const T_FLOAT = 0x05;
/** varint byte length + UTF-8. */
export const T_STRING = 0x06;
/** bigint >= 0: varint byte length + big-endian magnitude without leading zero bytes (0n has length 0). */
export const T_BIGINT_POS = 0x07;
/** bigint < 0: same layout as T_BIGINT_POS, magnitude >= 1. */
export const T_BIGINT_NEG = 0x08;
/** Date: float64 LE of getTime() (NaN for an invalid Date). */
export const T_DATE = 0x09;
/** Uint8Array/Buffer: varint byte length + bytes. */
export const T_BYTES = 0x0a;
/** varint count + values. */
export const T_ARRAY = 0x0b;
/** varint count + (varint key byte length + UTF-8 key + value) per property. */
export const T_OBJECT = 0x0c;
/** varint count + (key value + value) per entry. */
export const T_MAP = 0x0d;
/** varint count + values. */
export const T_SET = 0x0e;

export const DEFAULT_MAX_DEPTH = 64;
/** Default limits.maxStringBytes: the UTF-8 size of the longest string encode() accepts. */
export const DEFAULT_MAX_STRING_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_BYTES_LENGTH = 64 * 1024 * 1024;
/** Hard cap on maxDepth: keeps the recursive encoder/decoder far away from the JS stack limit. */
export const MAX_DEPTH_CAP = 1000;
/** Longest string V8 can create; decoding a longer one would throw RangeError. */
export const MAX_STRING_CAP = bufferConstants.MAX_STRING_LENGTH;
/** Largest Buffer Node can allocate; also the hard cap of one encoding. */
export const MAX_BUFFER_CAP = Math.min(bufferConstants.MAX_LENGTH, 2 ** 32);

/** Strings up to this many UTF-16 units are written/read by a JS loop when ASCII (faster than a native call). */
export const SHORT_STRING = 16;
/** Decoded ASCII strings up to this many bytes are built in JS. */
export const SHORT_DECODE = 10;
/** Byte ranges up to this length are copied by a JS loop. */
export const SHORT_COPY = 64;

/** Node's internal, undocumented but long-standing Buffer methods; they skip `write`/`toString` argument parsing. */
export interface BufferInternals {
  utf8Write(str: string, offset: number, length: number): number;
  utf8Slice(start: number, end: number): string;
}

/** True on every supported Node version; the fallback keeps the codec working should they ever disappear. */
export const HAS_INTERNALS =
  typeof (Buffer.prototype as unknown as Partial<BufferInternals>).utf8Write === 'function' &&
  typeof (Buffer.prototype as unknown as Partial<BufferInternals>).utf8Slice === 'function';

/** Shared scratch for float64 conversion. Little-endian byte order is produced explicitly below. */
export const f64 = new Float64Array(1);
export const f64Bytes = new Uint8Array(f64.buffer);
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** {@link CodecLimits} with every field set and checked. */
export interface ResolvedLimits {
  readonly maxDepth: number;
  readonly maxStringBytes: number;
  readonly maxBytesLength: number;
}

/** The default limits (what an omitted `limits` means). */
export const DEFAULT_LIMITS: ResolvedLimits = Object.freeze({
  maxDepth: DEFAULT_MAX_DEPTH,
  maxStringBytes: DEFAULT_MAX_STRING_BYTES,
  maxBytesLength: DEFAULT_MAX_BYTES_LENGTH,
});

/**
 * The limits of one encode or decode call: {@link DEFAULT_LIMITS} when omitted (no allocation),
 * otherwise each field checked (all three before any is used).
 *
 * @throws {@link ConfigError} naming the malformed field (`limits.maxDepth`…).
 */
export function resolveLimits(limits: CodecLimits | undefined): ResolvedLimits {
  if (limits === undefined) return DEFAULT_LIMITS;
  return {
    maxDepth: limitValue(limits, 'maxDepth', DEFAULT_MAX_DEPTH, MAX_DEPTH_CAP),
    maxStringBytes: limitValue(limits, 'maxStringBytes', DEFAULT_MAX_STRING_BYTES, MAX_STRING_CAP),
    maxBytesLength: limitValue(limits, 'maxBytesLength', DEFAULT_MAX_BYTES_LENGTH, MAX_BUFFER_CAP),
  };
}

function limitValue(limits: CodecLimits, key: keyof CodecLimits, dflt: number, max: number): number {
  const v = limits[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new ConfigError(`limits.${key}`, `an integer between 0 and ${max}`, v);
  }
  return v;
}

/** Copies `src[start, end)` into a new Buffer (a JS loop beats the native call for short ranges). */
export function copyOut(
  src: Buffer,
  start: number,
  end: number,
  headroom: number,
  alloc: Allocator | undefined,
): Buffer {
  const n = end - start;
  const out = alloc === undefined ? Buffer.allocUnsafe(n + headroom) : alloc(n + headroom);
  if (n <= SHORT_COPY) {
    for (let i = 0; i < n; i++) out[headroom + i] = src[start + i]!;
  } else {
    src.copy(out, headroom, start, end);
  }
  return out;
}
