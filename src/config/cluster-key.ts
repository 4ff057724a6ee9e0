/**
 * What a cluster key must be, decided from the key alone (so every node decides the same):
 *
 * - at least {@link MIN_KEY_CHARS} characters, at most {@link MAX_KEY_CHARS};
 * - an estimated strength of at least {@link MIN_KEY_BITS} bits, where the estimate is the key's
 *   length times the Shannon entropy of its own character frequencies, capped at 6 bits per
 *   distinct 3-character substring so that a repeated pattern scores low (`"x".repeat(40)` is 0
 *   bits, `"0123".repeat(10)` 24, the 44 characters of `openssl rand -base64 32` about 220);
 * - a key that does not look like the output of a random generator is *passphrase-like* and is
 *   stretched with scrypt once at start (see `stretchPassphrase` in wire/auth.ts). Random-looking
 *   means: only hex or base64/base64url characters, an estimate of at least
 *   {@link RANDOM_KEY_BITS} bits, and either only hex digits or both upper- and lower-case letters.
 *
 * Errors never echo the key, only its length or the index of the offending entry.
 */
import { ConfigError } from '../core/errors.js';

export const MIN_KEY_CHARS = 32;
export const MAX_KEY_CHARS = 1024;
/** Below this estimate a key is refused even stretched: it is a pattern, not a secret. */
export const MIN_KEY_BITS = 64;
/** From this estimate up, a hex or base64 key is used as it is. */
export const RANDOM_KEY_BITS = 128;
/** The most keys `clusterKey` (or a key file) may list: each hello and heartbeat is tried against each. */
export const MAX_CLUSTER_KEYS = 4;

const ADVICE = 'generate one with `openssl rand -base64 32`';

/**
 * A rough strength estimate in bits: length × the Shannon entropy of the key's character
 * frequencies, at most 6 bits per distinct 3-character substring (repeated patterns).
 */
export function estimateKeyBits(key: string): number {
  const counts = new Map<string, number>();
  const chars = Array.from(key);
  for (const c of chars) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / chars.length;
    h -= p * Math.log2(p);
  }
  const trigrams = new Set<string>();
  for (let i = 0; i + 3 <= chars.length; i++) trigrams.add(chars[i]! + chars[i + 1]! + chars[i + 2]!);
  return Math.floor(Math.min(h * chars.length, 6 * trigrams.size));
}

/** True when the key must be stretched (scrypt) before use: it does not look machine-generated. */
export function isPassphraseLike(key: string): boolean {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(key)) return true;
  if (estimateKeyBits(key) < RANDOM_KEY_BITS) return true;
  if (/^[0-9a-fA-F]+$/.test(key)) return false;
  return !(/[a-z]/.test(key) && /[A-Z]/.test(key));
}

/**
 * Checks one key; throws a ConfigError naming `where` (e.g. `clusterKey`, `clusterKey.1`,
 * `keyFile (/path, line 2)`) that describes the problem without the key.
 */
export function checkClusterKey(key: unknown, where: string): asserts key is string {
  if (typeof key !== 'string') {
    throw new ConfigError(where, `a string of at least ${MIN_KEY_CHARS} characters (got a ${typeOf(key)}); ${ADVICE}`);
  }
  const length = Array.from(key).length;
  if (length < MIN_KEY_CHARS) {
    throw new ConfigError(
      where,
      `at least ${MIN_KEY_CHARS} characters (got ${length}; the key is not shown); ${ADVICE}`,
    );
  }
  if (length > MAX_KEY_CHARS) {
    throw new ConfigError(where, `at most ${MAX_KEY_CHARS} characters (got ${length}; the key is not shown)`);
  }
  const bits = estimateKeyBits(key);
  if (bits < MIN_KEY_BITS) {
    throw new ConfigError(
      where,
      `a random secret: this one repeats a few characters (estimated ${bits} bits, at least ${MIN_KEY_BITS} needed; the key is not shown); ${ADVICE}`,
    );
  }
}

/**
 * `clusterKey` as given (a string, or a list for rotation: the first sends, all are accepted) to
 * the checked list of keys; undefined when none was given.
 */
export function normalizeClusterKeys(input: unknown, where = 'clusterKey'): readonly string[] | undefined {
  if (input === undefined) return undefined;
  if (!Array.isArray(input)) {
    checkClusterKey(input, where);
    return [input];
  }
  if (input.length < 1 || input.length > MAX_CLUSTER_KEYS) {
    throw new ConfigError(
      where,
      `a key or a list of 1 to ${MAX_CLUSTER_KEYS} keys (the first sends, all are accepted; got ${input.length})`,
    );
  }
  for (let i = 0; i < input.length; i++) checkClusterKey(input[i], `${where}.${i}`);
  if (new Set(input).size !== input.length) throw new ConfigError(where, 'a list without repeated keys');
  return input as string[];
}

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v;
}
