/**
 * A session's own cookie settings (what a request set on `req.session.cookie` that differs from
 * the node-wide `sessions.cookie`), kept as one reserved attribute of the session. As an attribute
 * it replicates in CREATED/DELTA messages and state transfer like any other (no wire change), so
 * the node that serves the session after a failover, or after regenerate({ keep: true }), re-issues
 * the cookie with the same lifetime and attributes. The attribute is invisible to the application
 * (not a property of `req.session`, not in its keys, JSON or listeners' events).
 */

import { COOKIE_DOMAIN, COOKIE_MAX_AGE_LIMIT, COOKIE_PATH } from '../config/session-config.js';

/** Name of the reserved attribute. Assigning it through `req.session` is refused. */
export const COOKIE_ATTRIBUTE = '__clowder.cookie';

/**
 * The fields that differ from the node-wide settings; absent = the node's. Short keys: it travels
 * with every change of the settings and lives in every node's copy.
 */
export interface CookieMeta {
  /** originalMaxAge in ms; null = a browser-session cookie. */
  m?: number | null;
  /** Domain; null = none. */
  d?: string | null;
  /** Path. */
  p?: string;
  /** SameSite: 'Lax' | 'Strict' | 'None'; null = none sent. */
  s?: string | null;
  /** Secure. */
  x?: boolean;
  /** HttpOnly. */
  h?: boolean;
}

/**
 * The reserved attribute's value as a {@link CookieMeta}, or undefined when it is absent or has
 * another shape (it came from another node: a field of the wrong type is dropped, not trusted; the
 * cookie then falls back to the node's settings for that field).
 */
export function readCookieMeta(v: unknown): CookieMeta | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const out: CookieMeta = {};
  const m = o.m;
  if (m === null || (typeof m === 'number' && Number.isFinite(m) && m >= 0 && m <= COOKIE_MAX_AGE_LIMIT)) out.m = m;
  // Domain and path go into a Set-Cookie header: only what the config would accept (no ";", CR, LF).
  const d = o.d;
  if (d === null || (typeof d === 'string' && d.length <= 253 && COOKIE_DOMAIN.test(d))) out.d = d;
  if (typeof o.p === 'string' && COOKIE_PATH.test(o.p)) out.p = o.p;
  const s = o.s;
  if (s === null || s === 'Lax' || s === 'Strict' || s === 'None') out.s = s;
  if (typeof o.x === 'boolean') out.x = o.x;
  if (typeof o.h === 'boolean') out.h = o.h;
  return out;
}
