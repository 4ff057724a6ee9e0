/**
 * Session cookie parsing and serialisation, without a per-request parse of every cookie.
 *
 * A Cookie header is read as browsers write it (RFC 6265 §5.4: `name=value` pairs joined by
 * `; `): it is cut at every `;`, each pair's name is the text before its first `=`, and the name
 * and the value are trimmed of spaces and tabs; a value in double quotes loses them. So
 * `JSESSIONID=` inside another cookie's value (`other=a JSESSIONID=x`, `x="JSESSIONID=y"`) is part
 * of that value, never a cookie of its own: a value a site reflects into another cookie cannot
 * choose the session. (A browser never sends `;` inside a value: it ends the cookie when it is set.)
 */
import { cookieIdPart } from '../session/ids.js';
import type { SessionManager } from '../session/session-manager.js';

const SEMI = 59; // ;
const EQ = 61; // =
const SP = 32;
const TAB = 9;
const DQUOTE = 34;

/**
 * Where the value of the next `name` cookie at or after `from` begins (the index after its `=`),
 * or -1. Scans for the name with indexOf instead of splitting the header; every character is
 * looked at a bounded number of times (linear in the header).
 */
function nextCookie(header: string, name: string, from: number): number {
  const len = header.length;
  while (from < len) {
    const i = header.indexOf(name, from);
    if (i < 0) return -1;
    from = i + 1;
    // It must begin a pair: only spaces or tabs between it and the header's start or a ';'.
    let b = i - 1;
    while (b >= 0 && (header.charCodeAt(b) === SP || header.charCodeAt(b) === TAB)) b--;
    if (b >= 0 && header.charCodeAt(b) !== SEMI) continue;
    // And be the pair's whole name: only spaces or tabs between it and '='.
    let a = i + name.length;
    while (a < len && (header.charCodeAt(a) === SP || header.charCodeAt(a) === TAB)) a++;
    if (a < len && header.charCodeAt(a) === EQ) return a + 1;
  }
  return -1;
}

/** The value that begins at `start`: up to the next ';', trimmed of spaces and tabs, unquoted. */
function valueFrom(header: string, start: number): string {
  let end = header.indexOf(';', start);
  if (end < 0) end = header.length;
  while (start < end && (header.charCodeAt(start) === SP || header.charCodeAt(start) === TAB)) start++;
  while (end > start && (header.charCodeAt(end - 1) === SP || header.charCodeAt(end - 1) === TAB)) end--;
  if (end - start >= 2 && header.charCodeAt(start) === DQUOTE && header.charCodeAt(end - 1) === DQUOTE) {
    start++;
    end--;
  }
  return header.slice(start, end);
}

/** The value of the first cookie named `name` in a Cookie header, or undefined. */
export function findCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const at = nextCookie(header, name, 0);
  return at < 0 ? undefined : valueFrom(header, at);
}

/**
 * The values of every cookie named `name`, in header order: undefined when there is none, the
 * value itself when there is one (the usual case: no array), an array when there are several
 * (a browser sends the cookie with the longest matching Path first, RFC 6265 §5.4).
 */
export function findCookies(header: string | undefined, name: string): string | string[] | undefined {
  if (header === undefined) return undefined;
  const first = nextCookie(header, name, 0);
  if (first < 0) return undefined;
  let at = nextCookie(header, name, first);
  if (at < 0) return valueFrom(header, first);
  const all = [valueFrom(header, first)];
  for (; at >= 0; at = nextCookie(header, name, at)) all.push(valueFrom(header, at));
  return all;
}

/**
 * The session cookie's value for this request. With one cookie of that name (the usual case) it is
 * that cookie, looked up by the caller. With several (cookies of one name set for different paths
 * or domains) the candidates are tried in header order and the first whose id names a session this
 * node holds wins, as Tomcat does; when none does, undefined (a fresh id is issued on use: a
 * client-chosen id is never adopted).
 */
export function sessionCookieValue(
  header: string | undefined,
  name: string,
  manager: SessionManager,
): string | undefined {
  const found = findCookies(header, name);
  if (typeof found !== 'object') return found;
  const now = Date.now();
  for (const value of found) {
    const id = cookieIdPart(value);
    if (id !== undefined && manager.findSession(id, now) !== undefined) return value;
  }
  return undefined;
}

export interface CookieAttributes {
  path: string;
  /** Domain attribute; undefined = none. */
  domain?: string | undefined;
  secure: boolean;
  /** HttpOnly attribute; default true. */
  httpOnly?: boolean;
  /** undefined = no SameSite attribute. */
  sameSite: 'Lax' | 'Strict' | 'None' | undefined;
  /**
   * Lifetime in ms; undefined = a browser-session cookie. Sent as Max-Age (seconds, what browsers
   * use) and Expires (what express-session sends; for clients without Max-Age). 0 = delete.
   */
  maxAgeMs?: number | undefined;
  /** Now, in ms since the epoch (for Expires). */
  now?: number;
}

/**
 * `name=value; Path=…[; Domain=…]; HttpOnly; SameSite=…[; Secure][; Max-Age=…; Expires=…]`. The
 * domain and path were checked against COOKIE_DOMAIN / COOKIE_PATH when they were set.
 */
export function serializeCookie(name: string, value: string, a: CookieAttributes): string {
  let out = `${name}=${value}; Path=${a.path}`;
  if (a.domain !== undefined) out += `; Domain=${a.domain}`;
  if (a.httpOnly !== false) out += '; HttpOnly';
  if (a.sameSite !== undefined) out += `; SameSite=${a.sameSite}`;
  if (a.secure || a.sameSite === 'None') out += '; Secure';
  const ms = a.maxAgeMs;
  if (ms !== undefined) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const expires = seconds === 0 ? 0 : (a.now ?? Date.now()) + ms;
    out += `; Max-Age=${seconds}; Expires=${new Date(expires).toUTCString()}`;
  }
  return out;
}
