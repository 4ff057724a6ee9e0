/**
 * What the value codec accepts: the {@link Encodable} values, {@link Nested} (an encoding written
 * in place), and {@link kindOf}, by which both the encoder (value-codec.ts) and its diagnosing
 * walker (encode-check.ts) recognize the objects among them.
 *
 * @module
 */
import { isDate, isMap, isSet, isUint8Array } from 'node:util/types';

/**
 * A value that travels as the bytes of its own encoding: `encode([new Nested(v)])` produces the same
 * bytes as `encode([encode(v)])`, without the intermediate Buffer (the value is written in place).
 * It decodes as those bytes (a Buffer), to be decoded again by whoever needs the value.
 */
export class Nested {
  constructor(readonly value: unknown) {}
}

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
const NestedPrototype = Nested.prototype;
const getPrototypeOf = Object.getPrototypeOf;
const isArray = Array.isArray;

/** The objects the codec encodes (see {@link kindOf}). */
export type ObjectKind = 'object' | 'array' | 'bytes' | 'nested' | 'date' | 'map' | 'set';

/**
 * Which encodable object `o` is, by its exact prototype (a subclass, a class instance or a
 * cross-realm object is none: undefined), and, but for plain objects and Nested, its brand
 * (a forged prototype is none either). The one rule of what the encoder accepts, and of what its
 * diagnosing walker refuses.
 */
export function kindOf(o: object): ObjectKind | undefined {
  const proto = getPrototypeOf(o);
  if (proto === ObjectPrototype || proto === null) return 'object';
  if (proto === ArrayPrototype) return isArray(o) ? 'array' : undefined;
  if (proto === BufferPrototype || proto === Uint8ArrayPrototype) return isUint8Array(o) ? 'bytes' : undefined;
  if (proto === NestedPrototype) return 'nested';
  if (proto === DatePrototype) return isDate(o) ? 'date' : undefined;
  if (proto === MapPrototype) return isMap(o) ? 'map' : undefined;
  if (proto === SetPrototype) return isSet(o) ? 'set' : undefined;
  return undefined;
}
