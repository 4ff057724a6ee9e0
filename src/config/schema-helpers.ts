import { z } from 'zod';
import { UnknownOptionsError } from '../core/errors.js';
import { type ForeignTable, foreignOption } from './foreign-options.js';
import { type KeyNamer, Problems, prefixed } from './problems.js';

/** An integer in [min, max]; every failure reports `expected`. */
export function int(min: number, max: number, expected = `an integer from ${min} to ${max}`) {
  const e = { error: expected };
  return z.number(e).int(e).min(min, e).max(max, e);
}

/** A duration in milliseconds in [min, max]. */
export function ms(min: number, max: number) {
  return int(min, max, `a duration in milliseconds from ${min} to ${max}`);
}

/** A size in bytes in [min, max]. */
export function bytes(min: number, max: number) {
  return int(min, max, `a size in bytes from ${min} to ${max}`);
}

/** A non-empty string of at most `max` characters. */
export function text(max: number, expected = `a non-empty string of at most ${max} characters`) {
  const e = { error: expected };
  return z.string(e).min(1, e).max(max, e);
}

/** Options of {@link parseConfig}. */
export interface ParseOptions {
  /**
   * Where an unknown top-level key belongs instead, if anywhere (e.g. `cookieName` given to
   * createSessions at the top: "sessions.cookieName"); checked before the nearest-name guess.
   */
  readonly elsewhere?: (key: string) => string | undefined;
  /** Explanations of foreign top-level keys, over the tables of foreign-options.ts. */
  readonly foreign?: ForeignTable;
}

/**
 * Parses `input` with `schema`. Every problem is reported at once, in one {@link ConfigError}:
 * unknown keys first (an {@link UnknownOptionsError}), each with a hint (why an express-session
 * option does not apply, where a misplaced key belongs, or the nearest known name), then every bad
 * value, each naming the dotted key (prefixed with `prefix`) and the expected form, so nothing
 * starts with a bad config.
 */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  input: unknown,
  prefix: string,
  options: ParseOptions = {},
): z.output<S> {
  const problems = new Problems();
  const data = collectConfig(schema, input, prefixed(prefix), problems, options);
  problems.throwIfAny();
  return data as z.output<S>;
}

/**
 * Parses `input` with `schema`, recording its problems in `problems` (keys named by `name`).
 * Returns the parsed value; when `input` has problems, the value parsed with the bad keys left out
 * (their defaults in their place), for the cross-field checks of the keys that are valid (guard
 * them with `problems.ok`), or undefined when no such value exists (a required key is bad).
 */
export function collectConfig<S extends z.ZodType>(
  schema: S,
  input: unknown,
  name: KeyNamer,
  problems: Problems,
  options: ParseOptions = {},
): z.output<S> | undefined {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues;
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const at = objectAt(schema, issue.path, input ?? {});
    for (const key of (issue as { keys: string[] }).keys) {
      const dotted = name([...issue.path.map(String), key].join('.'));
      const parent = dotted.slice(0, dotted.length - key.length);
      const hint = hintFor(key, parent, at, issue.path.length === 0 ? options : {});
      problems.add({ key: dotted, expected: UnknownOptionsError.EXPECTED, hint });
    }
  }
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') continue;
    const received = valueAt(input, issue.path);
    const expected =
      issue.code === 'invalid_type' && received === undefined
        ? `given (it is required): ${issue.message.replace(/^Invalid input: /, '')}`
        : issue.code === 'invalid_type' && issue.message.startsWith('Invalid input: ')
          ? (TYPE_NAMES[issue.expected] ?? `of type ${issue.expected}`)
          : issue.message;
    const key = name(issue.path.map(String).join('.'));
    problems.add(received === undefined ? { key, expected } : { key, expected, received });
  }
  return withoutBadKeys(schema, input ?? {}, issues);
}

/** What a value of a zod type is called in a message, for the schemas without their own message. */
const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'an object (a mapping of keys to values)',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  record: 'an object (a mapping of keys to values)',
};

/** How deep {@link plainCopy} copies (the schemas nest far less). */
const COPY_DEPTH = 16;

/** Rounds of {@link withoutBadKeys}: each removes at least one key (a parent when a required key is bad). */
const REPAIR_ROUNDS = 16;

/**
 * `input` parsed with the keys of `issues` left out (an array with a bad element: the whole array;
 * a required key: its parent), so that the defaults take their place; undefined when that empties
 * the root. Only on the error path: it copies the input.
 */
function withoutBadKeys<S extends z.ZodType>(
  schema: S,
  input: unknown,
  first: readonly z.core.$ZodIssue[],
): z.output<S> | undefined {
  const copy = plainCopy(input);
  let issues = first;
  for (let round = 0; round < REPAIR_ROUNDS; round++) {
    for (const issue of issues) {
      const path = [...issue.path];
      const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [undefined];
      for (const key of keys) {
        let at = key === undefined ? path : [...path, key];
        // An element of an array: the whole array goes (indexes of the others must not shift).
        const index = at.findIndex((s) => typeof s === 'number');
        if (index >= 0) at = at.slice(0, index);
        // A key that is already missing (required): its parent goes.
        if (at.length > 0 && valueAt(copy, at) === undefined) at = at.slice(0, -1);
        if (at.length === 0) return undefined;
        const parent = valueAt(copy, at.slice(0, -1));
        if (parent !== null && typeof parent === 'object') delete (parent as Record<PropertyKey, unknown>)[at.at(-1)!];
      }
    }
    const result = schema.safeParse(copy);
    if (result.success) return result.data;
    issues = result.error.issues;
  }
  return undefined;
}

/**
 * A copy of the plain objects and arrays of `value` (anything else, e.g. a custom interceptor, is
 * shared); a value met again (an alias, a cycle in a payload) is the same copy. Below COPY_DEPTH
 * (deeper than any schema: no bad key is removed there, e.g. inside a payload) values are shared.
 */
function plainCopy(value: unknown, seen = new Map<object, unknown>(), depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > COPY_DEPTH) return value;
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return value;
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    seen.set(value, copy);
    for (const v of value) copy.push(plainCopy(v, seen, depth + 1));
    return copy;
  }
  const copy: Record<string, unknown> = {};
  seen.set(value, copy);
  // defineProperty: a "__proto__" key (JSON.parse makes one) stays a key, not the prototype.
  for (const [k, v] of Object.entries(value))
    Object.defineProperty(copy, k, {
      value: plainCopy(v, seen, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return copy;
}

function hintFor(key: string, parent: string, at: ZodDef | undefined, options: ParseOptions): string {
  const known = at?.shape ? Object.keys(at.shape) : [];
  const foreign =
    (options.foreign && Object.hasOwn(options.foreign, key) ? options.foreign[key] : undefined) ??
    foreignOption(key, known);
  if (foreign !== undefined) return foreign;
  const nested = nestedKey(at, key);
  const elsewhere = nested === undefined ? options.elsewhere?.(key) : `${parent}${nested}`;
  if (elsewhere !== undefined) return `not an option here; did you mean ${elsewhere}?`;
  const near = nearest(key, known);
  return near === undefined
    ? `not an option (known: ${known.join(', ')})`
    : `not an option; did you mean ${parent}${near}?`;
}

/** The known name closest to `key` (case-insensitive edit distance), if it is close enough to be a typo. */
export function nearest(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(k.length / 3)) + 1;
  for (const name of known) {
    const n = name.toLowerCase();
    const d = n.includes(k) || k.includes(n) ? Math.abs(n.length - k.length) / 4 : distance(k, n);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance with adjacent transpositions (optimal string alignment). */
function distance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

interface ZodDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: z.ZodType[];
  element?: z.ZodType;
  valueType?: z.ZodType;
  values?: unknown[];
}
const defOf = (schema: z.ZodType | undefined): ZodDef | undefined =>
  (schema as unknown as { _zod?: { def: ZodDef } } | undefined)?._zod?.def;

/** Unwraps defaults, optionals and pipes; picks the union member `value` selects (by its literal keys). */
function unwrap(schema: z.ZodType | undefined, value: unknown): ZodDef | undefined {
  let def = defOf(schema);
  for (let depth = 0; def && depth < 16; depth++) {
    if (def.innerType) def = defOf(def.innerType);
    else if (def.type === 'pipe') def = defOf(def.in);
    else if (def.type === 'union') {
      const objects = (def.options ?? []).map((o) => unwrap(o, value)).filter((d) => d?.type === 'object');
      const v = value as Record<string, unknown> | undefined;
      return (
        objects.find((o) =>
          Object.entries(o!.shape!).some(
            ([k, s]) => defOf(s)?.type === 'literal' && defOf(s)!.values!.includes(v?.[k]),
          ),
        ) ?? objects[0]
      );
    } else return def;
  }
  return def;
}

/** The object schema at `path` (undefined when there is none). */
function objectAt(schema: z.ZodType, path: readonly PropertyKey[], input: unknown): ZodDef | undefined {
  let value = input;
  let def = unwrap(schema, value);
  for (const segment of path) {
    value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[segment] : undefined;
    const next = def?.shape?.[String(segment)] ?? def?.element ?? def?.valueType;
    def = unwrap(next, value);
  }
  return def?.type === 'object' ? def : undefined;
}

/** `child.key` when `key` is an option of one of the object's nested objects (e.g. `port` → `receiver.port`). */
function nestedKey(at: ZodDef | undefined, key: string): string | undefined {
  for (const [name, child] of Object.entries(at?.shape ?? {})) {
    const def = unwrap(child, undefined);
    if (def?.shape && Object.hasOwn(def.shape, key)) return `${name}.${key}`;
  }
  return undefined;
}
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/**
 * Deep-freezes the plain-data part of a resolved config so no component can change it after
 * validation. Objects with behaviour (any function-valued property, e.g. a custom interceptor)
 * and the keys in `skip` (values owned by the caller) are left alone.
 */
export function deepFreeze<T>(value: T, skip: ReadonlySet<string> = new Set()): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    const entries = Object.entries(value as object);
    if (entries.some(([, v]) => typeof v === 'function')) return value;
    Object.freeze(value);
    for (const [k, v] of entries) if (!skip.has(k)) deepFreeze(v, skip);
  }
  return value;
}
