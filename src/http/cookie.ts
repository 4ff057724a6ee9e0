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
  secure: boolean;
  sameSite: 'Lax' | 'Strict' | 'None';
  /** Seconds; undefined = a browser-session cookie. 0 = delete. */
  maxAge?: number;
}

/** `name=value; Path=…; HttpOnly; SameSite=…[; Secure][; Max-Age=…]` */
export function serializeCookie(name: string, value: string, a: CookieAttributes): string {
  let out = `${name}=${value}; Path=${a.path}; HttpOnly; SameSite=${a.sameSite}`;
  if (a.secure || a.sameSite === 'None') out += '; Secure';
  if (a.maxAge !== undefined) {
    out += `; Max-Age=${a.maxAge}`;
    if (a.maxAge === 0) out += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  }
  return out;
}
