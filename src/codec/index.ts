/** Application-payload codec: strict, safe binary encoding of session attribute values. See docs/codec.md. */
export type { Allocator, CodecLimits, DecodeOptions, Encodable } from './value-codec.js';
export {
  checkEncodable,
  DECODE_BUDGET,
  DEFAULT_MAX_STRING_BYTES,
  decode,
  decodeBudgetRefusals,
  encode,
  encodedEquals,
  isScalarEncoding,
} from './value-codec.js';
