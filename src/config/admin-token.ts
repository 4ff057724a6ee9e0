/**
 * `http.adminToken` (or CLOWDER_ADMIN_TOKEN): a bearer token that opens the status endpoints to
 * clients that are not on loopback. Only its SHA-256 digest is kept; a presented token is hashed
 * and the two digests, always 32 bytes, are compared in constant time, so neither the length nor
 * any prefix of the token shows in the response time. The token never appears in an error
 * message, in JSON or in util.inspect output.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigError } from '../core/errors.js';

/** Shortest accepted token: as for clusterKey, about 192 bits as base64. */
export const ADMIN_TOKEN_MIN_LENGTH = 32;
const MAX_LENGTH = 1024;
/** RFC 6750 b64token: what fits an `Authorization: Bearer` header unquoted. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

const EXPECTED =
  `a string of ${ADMIN_TOKEN_MIN_LENGTH} to ${MAX_LENGTH} characters from A-Z a-z 0-9 - . _ ~ + / ` +
  '(then "=" padding), e.g. `openssl rand -base64 32`; the value is not shown here';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class AdminToken {
  readonly #digest: Buffer;

  private constructor(token: string) {
    this.#digest = digest(token);
  }

  /** Whether `presented` is the token: constant time over equal-length digests. */
  matches(presented: string): boolean {
    return timingSafeEqual(digest(presented), this.#digest);
  }

  /**
   * Validates a configured token. @throws ConfigError naming `key`, never quoting the value (it
   * may be a real secret with a typo).
   */
  static parse(input: unknown, key: string): AdminToken | undefined {
    if (input === undefined) return undefined;
    if (typeof input !== 'string' || input.length < ADMIN_TOKEN_MIN_LENGTH || input.length > MAX_LENGTH)
      throw new ConfigError(key, EXPECTED);
    if (!B64TOKEN.test(input)) throw new ConfigError(key, EXPECTED);
    return new AdminToken(input);
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'AdminToken [redacted]';
  }
}
