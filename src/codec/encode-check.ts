/**
 * The encoder's diagnosing walker: exact cycle detection (an ancestor set) and path tracking. The
 * fast encoder (value-codec.ts) tracks no paths; when it fails, encode() runs this walker to find
 * the offending value, its path and the reason. {@link checkEncodable} runs it alone. Off the hot
 * path: it allocates freely.
 *
 * @module
 */
import { CodecError, ErrorCode } from '../core/errors.js';
import { kindOf, type Nested } from './encodable.js';
import { type CodecLimits, type ResolvedLimits, resolveLimits } from './format.js';

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
  /** The call's limits (resolved). */
  readonly maxDepth: number;
  readonly maxStringBytes: number;
  readonly maxBytesLength: number;
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

function utf8Length(s: string, maxStringBytes: number): number {
  return s.length * 3 <= maxStringBytes ? s.length : Buffer.byteLength(s, 'utf8');
}

function checkString(w: Walk, s: string, what: string): void {
  const maxStringBytes = w.maxStringBytes;
  if (s.length > maxStringBytes || utf8Length(s, maxStringBytes) > maxStringBytes) {
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
      if (n > w.maxBytesLength) {
        throw encodeError(w, `bigint of ${n} magnitude bytes exceeds limits.maxBytesLength (${w.maxBytesLength})`);
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
  if (depth >= w.maxDepth) throw encodeError(w, `nesting deeper than ${w.maxDepth} levels (limits.maxDepth)`);
  w.ancestors.push(o);
  w.onPath.add(o);
}

function leave(w: Walk, o: object): void {
  w.ancestors.pop();
  w.onPath.delete(o);
}

/** Walks the child `v` of the current container: the path gets the segment (kind, key, idx) meanwhile. */
function walkChild(w: Walk, kind: number, key: unknown, idx: number, v: unknown, depth: number): void {
  push(w, kind, key, idx);
  walkValue(w, v, depth);
  pop(w);
}

function walkObject(w: Walk, o: object, depth: number): void {
  switch (kindOf(o)) {
    case 'nested':
      walkValue(w, (o as Nested).value, 0); // its own root, as in encode()
      return;
    case 'object': {
      enter(w, o, depth);
      const rec = o as Record<string, unknown>;
      const keys = Object.keys(rec);
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
    case 'array': {
      enter(w, o, depth);
      const arr = o as readonly unknown[];
      const n = arr.length;
      for (let i = 0; i < n; i++) walkChild(w, S_INDEX, i, i, arr[i], depth + 1);
      leave(w, o);
      return;
    }
    case 'bytes': {
      const n = (o as Uint8Array).length;
      if (n > w.maxBytesLength) {
        throw encodeError(w, `byte array of ${n} bytes exceeds limits.maxBytesLength (${w.maxBytesLength})`);
      }
      return;
    }
    case 'date':
      return;
    case 'map': {
      enter(w, o, depth);
      let i = 0;
      for (const [k, val] of o as ReadonlyMap<unknown, unknown>) {
        walkChild(w, S_MAP_KEY, k, i, k, depth + 1);
        walkChild(w, S_MAP_VALUE, k, i, val, depth + 1);
        i++;
      }
      leave(w, o);
      return;
    }
    case 'set': {
      enter(w, o, depth);
      let i = 0;
      for (const item of o as ReadonlySet<unknown>) walkChild(w, S_SET_ITEM, item, i++, item, depth + 1);
      leave(w, o);
      return;
    }
  }
  const name = className(Object.getPrototypeOf(o));
  if (name !== undefined) throw encodeError(w, `instances of class ${name} are not encodable; ${PLAIN_DATA_HINT}`);
  throw encodeError(w, `objects with a custom prototype are not encodable; ${PLAIN_DATA_HINT}`);
}

/**
 * Walks `value` under `limits` and throws the {@link CodecError} that names the first value that
 * cannot be encoded (its path and why); returns when there is none.
 */
export function diagnose(value: unknown, limits: ResolvedLimits): void {
  const w: Walk = {
    kinds: [],
    keys: [],
    idx: [],
    ancestors: [],
    onPath: new Set(),
    maxDepth: limits.maxDepth,
    maxStringBytes: limits.maxStringBytes,
    maxBytesLength: limits.maxBytesLength,
  };
  walkValue(w, value, 0);
}

/**
 * Checks that `value` is encodable under `limits` without producing bytes.
 *
 * @throws the same {@link CodecError} {@link encode} would throw (same path and message); {@link ConfigError} for
 *   malformed limits.
 */
export function checkEncodable(value: unknown, limits?: CodecLimits): void {
  diagnose(value, resolveLimits(limits));
}
