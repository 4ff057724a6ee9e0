import { z } from 'zod';
import { ConfigError, type UnknownOption, UnknownOptionsError } from '../core/errors.js';
import { type ForeignTable, foreignOption } from './foreign-options.js';

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
 * Parses `input` with `schema`. Unknown keys are reported first and all at once, each with a hint
 * (why an express-session option does not apply, where a misplaced key belongs, or the nearest
 * known name), as an {@link UnknownOptionsError}. Otherwise the first problem becomes a
 * {@link ConfigError} naming the dotted key (prefixed with `prefix`) and the expected form, so
 * nothing starts with a bad config.
 */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  input: unknown,
  prefix: string,
  options: ParseOptions = {},
): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const unknown: UnknownOption[] = [];
  for (const issue of result.error.issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const at = objectAt(schema, issue.path, input ?? {});
    for (const key of (issue as { keys: string[] }).keys) {
      const dotted = [prefix, ...issue.path.map(String), key].filter(Boolean).join('.');
      const parent = dotted.slice(0, dotted.length - key.length);
      unknown.push({ key: dotted, hint: hintFor(key, parent, at, issue.path.length === 0 ? options : {}) });
    }
  }
  if (unknown.length > 0) throw new UnknownOptionsError(unknown);
  const issue = result.error.issues[0]!;
  const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
  const received = valueAt(input, issue.path);
  const expected =
    issue.code === 'invalid_type' && received === undefined
      ? `given (it is required): ${issue.message.replace(/^Invalid input: /, '')}`
      : issue.message;
  throw new ConfigError(path, expected, received);
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
