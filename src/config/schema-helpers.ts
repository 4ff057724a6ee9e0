import { z } from 'zod';
import { ConfigError } from '../core/errors.js';

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

/**
 * Parses `input` with `schema`. The first problem becomes a {@link ConfigError} naming the dotted key
 * (prefixed with `prefix`) and the expected form, so nothing starts with a bad config.
 */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, prefix: string): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    throw new ConfigError(
      `${path ? `${path}.` : ''}${keys[0]}`,
      'a known option (check the spelling; unknown keys are refused)',
    );
  }
  const received = valueAt(input, issue.path);
  const expected =
    issue.code === 'invalid_type' && received === undefined
      ? `given (it is required): ${issue.message.replace(/^Invalid input: /, '')}`
      : issue.message;
  throw new ConfigError(path, expected, received);
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
