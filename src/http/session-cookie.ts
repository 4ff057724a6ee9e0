/**
 * `req.session.cookie`: express-session's Cookie (maxAge, expires, originalMaxAge, secure,
 * httpOnly, sameSite, domain, path), built from the node-wide `sessions.cookie` settings and the
 * session's own ones (the reserved attribute of cookie-meta.ts). What a request changes here is
 * written back to that attribute when the request ends, so it replicates with the session.
 */
import { inspect } from 'node:util';
import {
  COOKIE_DOMAIN,
  COOKIE_MAX_AGE_LIMIT,
  COOKIE_PATH,
  type CookieOptions,
  sameSiteOf,
} from '../config/session-config.js';
import type { CookieMeta } from '../session/cookie-meta.js';
import type { CookieAttributes } from './cookie.js';

/** What a cookie tells its request: a setter ran (the request re-issues a cookie it already set). */
export interface CookieOwner {
  cookieChanged(): void;
}

type SameSiteValue = 'Lax' | 'Strict' | 'None';

/** The session cookie's settings for one request (express-session's Cookie). */
export class SessionCookie {
  /** The configured lifetime in ms (express-session's originalMaxAge); null = a browser-session cookie. */
  #originalMaxAge: number | null;
  /** Expiry in ms since the epoch; null = a browser-session cookie. */
  #expires: number | null;
  #domain: string | undefined;
  #path: string;
  #sameSite: SameSiteValue | undefined;
  /** As configured or set: "auto" follows the request. */
  #secure: boolean | 'auto';
  #httpOnly: boolean;
  /** A setter ran since this object was built. */
  changed = false;

  constructor(
    private readonly owner: CookieOwner,
    private readonly options: CookieOptions,
    meta: CookieMeta | undefined,
    /** The request came over TLS (what secure "auto" means). */
    private readonly encrypted: boolean,
    now = Date.now(),
  ) {
    this.#originalMaxAge = meta?.m !== undefined ? meta.m : options.maxAge;
    this.#expires = this.#originalMaxAge === null ? null : now + this.#originalMaxAge;
    this.#domain = meta?.d !== undefined ? (meta.d ?? undefined) : options.domain;
    this.#path = meta?.p ?? options.path;
    this.#sameSite = meta?.s !== undefined ? ((meta.s ?? undefined) as SameSiteValue | undefined) : options.sameSite;
    this.#secure = meta?.x ?? options.secure;
    this.#httpOnly = meta?.h ?? options.httpOnly;
  }

  /** Milliseconds until the cookie expires (express-session's getter); null = a browser-session cookie. */
  get maxAge(): number | null {
    return this.#expires === null ? null : this.#expires - Date.now();
  }

  /**
   * Sets the lifetime in ms from now (and originalMaxAge); null = a browser-session cookie. Beyond
   * 400 days it is 400 days (what browsers keep at most); below 0 it is 0 (expired).
   */
  set maxAge(ms: number | null) {
    if (ms === null || ms === undefined) this.#lifetime(null);
    else if (typeof ms === 'number' && Number.isFinite(ms))
      this.#lifetime(Math.min(COOKIE_MAX_AGE_LIMIT, Math.max(0, Math.round(ms))));
    else throw new TypeError('cookie.maxAge must be a number of milliseconds, or null for a browser-session cookie');
  }

  /** The configured lifetime in ms; null = a browser-session cookie. */
  get originalMaxAge(): number | null {
    return this.#originalMaxAge;
  }

  set originalMaxAge(ms: number | null) {
    this.maxAge = ms;
  }

  /** When the cookie expires; null = at the end of the browser session. */
  get expires(): Date | null {
    return this.#expires === null ? null : new Date(this.#expires);
  }

  /**
   * Sets the expiry (express-session: originalMaxAge becomes the time left). Each response that
   * sends the cookie moves it to now + originalMaxAge, as express-session's touch() does.
   */
  set expires(date: Date | null | false) {
    if (date === null || date === false || date === undefined) this.#lifetime(null);
    else if (date instanceof Date && Number.isFinite(date.getTime())) this.maxAge = date.getTime() - Date.now();
    else throw new TypeError('cookie.expires must be a Date, or null for a browser-session cookie');
  }

  get domain(): string | undefined {
    return this.#domain;
  }

  set domain(d: string | undefined) {
    if (d !== undefined && d !== null && !(typeof d === 'string' && COOKIE_DOMAIN.test(d)))
      throw new TypeError(
        'cookie.domain must be a domain such as "example.com" (letters, digits, "-" and "."), or undefined',
      );
    this.#domain = d ?? undefined;
    this.#set();
  }

  get path(): string {
    return this.#path;
  }

  set path(p: string) {
    if (typeof p !== 'string' || !COOKIE_PATH.test(p))
      throw new TypeError('cookie.path must start with "/" (printable, no ";", at most 1024 characters)');
    this.#path = p;
    this.#set();
  }

  /** "Lax", "Strict", "None", or false (no SameSite attribute). */
  get sameSite(): SameSiteValue | false {
    return this.#sameSite ?? false;
  }

  set sameSite(v: boolean | string) {
    if (typeof v !== 'boolean' && !(typeof v === 'string' && /^(lax|strict|none)$/i.test(v)))
      throw new TypeError('cookie.sameSite must be "lax", "strict", "none", true (strict) or false (none sent)');
    this.#sameSite = sameSiteOf(v);
    this.#set();
  }

  /** Whether the cookie is sent with the Secure attribute on this request. */
  get secure(): boolean {
    return this.#secure === 'auto' ? this.encrypted : this.#secure;
  }

  set secure(v: boolean | 'auto') {
    if (typeof v !== 'boolean' && v !== 'auto') throw new TypeError('cookie.secure must be true, false or "auto"');
    this.#secure = v;
    this.#set();
  }

  get httpOnly(): boolean {
    return this.#httpOnly;
  }

  set httpOnly(v: boolean) {
    if (typeof v !== 'boolean') throw new TypeError('cookie.httpOnly must be true or false');
    this.#httpOnly = v;
    this.#set();
  }

  /** Whether the cookie outlives the browser session. */
  get persistent(): boolean {
    return this.#originalMaxAge !== null;
  }

  /** Moves the expiry to now + originalMaxAge (express-session's touch / resetMaxAge). */
  touch(now = Date.now()): void {
    if (this.#originalMaxAge !== null) this.#expires = now + this.#originalMaxAge;
  }

  /** The attributes of a Set-Cookie for this cookie, expiring originalMaxAge from `now`. */
  attributes(now: number): CookieAttributes {
    return {
      path: this.#path,
      domain: this.#domain,
      secure: this.secure,
      httpOnly: this.#httpOnly,
      sameSite: this.#sameSite,
      maxAgeMs: this.#originalMaxAge ?? undefined,
      now,
    };
  }

  /** The settings that differ from the node-wide ones (what the session keeps); undefined = none. */
  meta(): CookieMeta | undefined {
    const o = this.options;
    let m: CookieMeta | undefined;
    if (this.#originalMaxAge !== o.maxAge) (m ??= {}).m = this.#originalMaxAge;
    if (this.#domain !== o.domain) (m ??= {}).d = this.#domain ?? null;
    if (this.#path !== o.path) (m ??= {}).p = this.#path;
    if (this.#sameSite !== o.sameSite) (m ??= {}).s = this.#sameSite ?? null;
    if (this.#secure !== o.secure && this.#secure !== 'auto') (m ??= {}).x = this.#secure;
    if (this.#httpOnly !== o.httpOnly) (m ??= {}).h = this.#httpOnly;
    return m;
  }

  /** express-session's stored shape: `JSON.stringify(req.session.cookie)`. */
  toJSON(): Record<string, unknown> {
    return {
      originalMaxAge: this.#originalMaxAge,
      expires: this.#expires === null ? null : new Date(this.#expires).toISOString(),
      // "auto" on plain HTTP: absent, as express-session's default (secure unset)
      secure: this.#secure === 'auto' && !this.encrypted ? undefined : this.secure,
      httpOnly: this.#httpOnly,
      domain: this.#domain,
      path: this.#path,
      sameSite: this.sameSite,
    };
  }

  [inspect.custom](): Record<string, unknown> {
    return { ...this.toJSON(), expires: this.expires };
  }

  #lifetime(ms: number | null): void {
    this.#originalMaxAge = ms;
    this.#expires = ms === null ? null : Date.now() + ms;
    this.#set();
  }

  #set(): void {
    this.changed = true;
    this.owner.cookieChanged();
  }
}
