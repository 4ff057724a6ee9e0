/** Application-payload codec: strict, safe binary encoding of session attribute values. See docs/codec.md. */
export type { Allocator, CodecLimits, DecodeOptions, Encodable } from './value-codec.js';
export {
  checkEncodable,
  DEFAULT_MAX_STRING_BYTES,
  decode,
  encode,
  encodedEquals,
  isScalarEncoding,
} from './value-codec.js';
