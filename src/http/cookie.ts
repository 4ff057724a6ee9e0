/** Session cookie parsing and serialisation, without a per-request parse of every cookie. */

/** The value of cookie `name` in a Cookie header, or undefined. Scans without splitting the header. */
export function findCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let from = 0;
  const len = header.length;
  while (from < len) {
    let i = header.indexOf(name, from);
    if (i < 0) return undefined;
    // Must start the header or follow "; " / ";" and be followed by "=".
    const before = i === 0 ? ';' : header[i - 1];
    const eq = i + name.length;
    if ((before === ';' || before === ' ') && header.charCodeAt(eq) === 61 /* = */) {
      let end = header.indexOf(';', eq + 1);
      if (end < 0) end = len;
      let value = header.slice(eq + 1, end).trim();
      if (value.length >= 2 && value[0] === '"' && value[value.length - 1] === '"') value = value.slice(1, -1);
      return value;
    }
    from = i + 1;
    i = 0;
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
