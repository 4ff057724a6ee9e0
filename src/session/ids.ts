/**
 * Session ids: 128 bits from the CSPRNG as 32 upper-case hex characters (Tomcat's form). The
 * cookie value is `<id>.<jvmRoute>`; the route is not part of the id. A client-supplied value that
 * is not exactly that shape is never used as an id.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 16 * 256;
let pool = Buffer.allocUnsafe(0);
let offset = 0;

/** A new random session id (128 bits; the random bytes come from a refilled CSPRNG pool). */
export function newSessionId(): string {
  if (offset + 16 > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
    offset = 0;
  }
  const id = pool.toString('hex', offset, offset + 16).toUpperCase();
  pool.fill(0, offset, offset + 16); // never keep used randomness around
  offset += 16;
  return id;
}

/** Length of a session id (ours: 32 upper-case hex characters). */
const ID_LENGTH = 32;
const DOT = 46;

/**
 * The id part of a cookie value `<id>[.<route>]` when it has the shape of one (32 characters,
 * then the end or a dot), without checking the characters: for a lookup among the sessions this
 * node holds, which all have well-formed ids, so an unknown or malformed value is simply not found
 * and never becomes a session id. (Checking 32 random hex characters one by one costs more than
 * the rest of the cookie handling together; ids from the network are checked with isSessionId.)
 */
export function cookieIdPart(value: string): string | undefined {
  const n = value.length;
  if (n === ID_LENGTH) return value;
  return n > ID_LENGTH && value.charCodeAt(ID_LENGTH) === DOT ? value.slice(0, ID_LENGTH) : undefined;
}

/**
 * Whether `id` is exactly a session id: 32 characters of the base64url alphabet. clowder's own ids
 * (upper-case hex) are of that alphabet; so are express-session's (24 random bytes, base64url),
 * which the express-session store keeps under their own id. A loop, not a RegExp.
 */
export function isSessionId(id: string): boolean {
  if (id.length !== ID_LENGTH) return false;
  for (let i = 0; i < ID_LENGTH; i++) {
    const c = id.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95)) return false;
  }
  return true;
}

/** Whether a cookie value whose id part has the right shape (see {@link cookieIdPart}) ends in `.<route>`. */
export function cookieNamesRoute(value: string, route: string): boolean {
  return value.length === ID_LENGTH + 1 + route.length && value.endsWith(route);
}

/** The route of a well-formed cookie value; '' when it names none. */
export function cookieRoute(value: string): string {
  return value.length > ID_LENGTH + 1 ? value.slice(ID_LENGTH + 1) : '';
}

/**
 * A random 48-bit integer (a safe integer, so it keeps the integer layout of ACQUIRE/GRANT): the
 * id of an ACQUIRE, which only the asked member learns. Its answer is accepted only from that
 * member and for that id, so another member can neither guess nor replay one (a sequential id
 * could be guessed from the last one seen).
 */
export function newRequestId(): number {
  if (offset + 6 > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
    offset = 0;
  }
  const id = pool.readUIntBE(offset, 6);
  pool.fill(0, offset, offset + 6);
  offset += 6;
  return id;
}
