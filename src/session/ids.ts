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

const ID = /^[0-9A-F]{32}$/;

/** Splits a cookie value into id and route; undefined when the id part is malformed. */
export function parseSessionCookie(value: string): { id: string; route: string } | undefined {
  const dot = value.indexOf('.');
  const id = dot < 0 ? value : value.slice(0, dot);
  if (id.length !== 32 || !ID.test(id)) return undefined;
  return { id, route: dot < 0 ? '' : value.slice(dot + 1) };
}
