/** Application-payload codec: strict, safe binary encoding of session attribute values. See docs/codec.md. */
export type { CodecLimits, Encodable } from './value-codec.js';
export { checkEncodable, decode, encode, encodedEquals } from './value-codec.js';
