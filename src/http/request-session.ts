/**
 * The session side of one HTTP request for the middleware and the node listener (the replication
 * valve and route binder; finding, waiting for and ending the session: request-lifecycle.ts):
 * - reads the session cookie `<id>.<route>`; an unknown or malformed id is ignored (a fresh id is
 *   issued when the request writes to a session: no fixation);
 * - creates a session only when the request writes to it (express-session's
 *   `saveUninitialized: false`; with `sessions.saveUninitialized` on first use of `req.session`),
 *   and sends the cookie when express-session would: for a new or regenerated session; for a
 *   loaded one when it changed and its cookie is persistent, or always with `sessions.rolling`;
 * - a known session whose cookie names another node's route (failover) is served here and its
 *   cookie re-issued with this node's route; the original route stays readable;
 * - at the end of the request replicates what changed; the response is held until every member
 *   applied it (synchronous mode), or, with batchResponses, until the end of the event-loop turn,
 *   after the turn's replication batch was written (asynchronous mode);
 * - a request whose path matches readOnlyFilter only reads: it is served from this node's copy
 *   without taking the session over, creates none, may not change it, and re-homes the cookie
 *   only when the node it names is gone;
 * - a request served from this node's copy of a session another node may have just changed (a
 *   read of a session owned elsewhere; any request with ownership none) waits for the end of the
 *   event-loop turn: a change that arrived with it applies first;
 * - with sessions.serialize, a request on an existing session (not on a read-only path) waits for
 *   the session's lock (session/request-queue.ts) before it uses it, and holds it until it ends;
 *   one that waits too long, or finds the queue full, is answered 503 by the adapter (`busy`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionConfig } from '../config/session-config.js';
import { ClusterError, ErrorCode } from '../core/errors.js';
import { COOKIE_ATTRIBUTE, readCookieMeta } from '../session/cookie-meta.js';
import { newSessionId } from '../session/ids.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session/session-manager.js';
import { serializeCookie, sessionCookieValue } from './cookie.js';
import { requestIsSecure } from './proxy-trust.js';
import { RequestLifecycle } from './request-lifecycle.js';
import { type CookieOwner, SessionCookie } from './session-cookie.js';
import { createSessionHandle, type HandleHost, type SessionHandle } from './session-handle.js';

/** Longest idle timeout a persistent cookie raises its session's to (the config's maximum), in seconds. */
const MAX_INACTIVE_LIMIT = 31_536_000;

export class RequestSession extends RequestLifecycle implements HandleHost, CookieOwner {
  #handle: SessionHandle | undefined;
  #cookie: SessionCookie | undefined;
  /** The id `req.sessionID` showed before the session existed (the session gets it), or after destroy(). */
  #id: string | undefined;
  #destroyed = false;
  /** The application changed the session in this request (express-session's "modified"). */
  #modified = false;
  /** This request's Set-Cookie for the session is among the response's headers. */
  #cookieSet = false;
  readonly #replicate: boolean;

  constructor(
    manager: SessionManager,
    readonly config: SessionConfig,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** The request's path as the filters saw it. */
    readonly path: string,
  ) {
    super(manager, config.readOnlyFilter?.test(path) === true);
    this.#replicate = config.replicationFilter === undefined || !config.replicationFilter.test(path);
    this.open(sessionCookieValue(req.headers.cookie, config.cookieName, manager));
  }

  protected requestPath(): string {
    return this.path;
  }

  protected using(s: Session, rehomedFrom: string | undefined): void {
    if (rehomedFrom !== undefined) {
      // Failover (or no route yet): this node now serves the session; tell the balancer, with the
      // session's cookie settings (a persistent cookie stays persistent). A read leaves the session
      // where it is, so it re-homes the cookie only when that node is gone.
      if (!this.readOnly || !this.manager.servesRoute(rehomedFrom)) this.#setCookie(s.id);
    } else if (this.config.rolling && !this.readOnly) this.#setCookie(s.id);
  }

  protected sessionLost(): void {
    this.#removeCookie();
  }

  /**
   * `req.session`: the handle (the session itself is created when the request first writes to
   * it, or here with saveUninitialized). Undefined after destroy() or once the response ended.
   */
  handle(): SessionHandle | undefined {
    if (this.#handle !== undefined) return this.#handle;
    if (this.#destroyed || this.finished) return undefined;
    if (this.session === undefined && this.config.saveUninitialized && !this.readOnly) this.#create();
    this.#handle = createSessionHandle(this);
    return this.#handle;
  }

  /** `req.sessionID`: the session's id; before it exists, the id it will get. */
  sessionId(): string {
    return this.session?.id ?? (this.#id ??= newSessionId());
  }

  /** The idle timeout a new session gets (seconds). */
  get maxInactiveInterval(): number {
    return this.config.maxInactiveInterval;
  }

  /** destroy() was called in this request. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** The session without creating one (for `req.session` checks that must not create). */
  get existing(): Session | undefined {
    return this.session;
  }

  /** `req.session.cookie`. */
  get cookie(): SessionCookie {
    if (this.#cookie === undefined) {
      const s = this.session;
      const meta =
        s?.valid && s.hasAttribute(COOKIE_ATTRIBUTE) ? readCookieMeta(s.getAttribute(COOKIE_ATTRIBUTE)) : undefined;
      this.#cookie = new SessionCookie(this, this.config.cookie, meta, this.#encrypted());
    }
    return this.#cookie;
  }

  /** A cookie setting changed: a Set-Cookie this request already decided to send follows it. */
  cookieChanged(): void {
    const s = this.session;
    if (this.#cookieSet && s?.valid) this.#setCookie(s.id);
  }

  /** @throws ClusterError SESSION_READ_ONLY in a read-only request. */
  writable(what: string): void {
    if (this.readOnly)
      throw new ClusterError(
        ErrorCode.SESSION_READ_ONLY,
        `${what}: this request only reads the session (its path ${JSON.stringify(this.path)} matches ` +
          `sessions.readOnlyFilter ${String(this.config.readOnlyFilter)}); change the session on another path`,
      );
  }

  /**
   * The session for a change by the application, created (with its cookie) when there is none
   * yet. The first change of a loaded session re-sends a persistent cookie (express-session).
   */
  forWrite(name: string): Session {
    // The message is built only when it is thrown (this runs for every write).
    if (this.readOnly) this.writable(`cannot change session attribute ${JSON.stringify(name)}`);
    let s = this.session;
    if (s === undefined) {
      if (this.#destroyed) throw new Error('this session was destroyed');
      if (this.finished)
        throw new Error(`cannot change session attribute ${JSON.stringify(name)}: the response has ended`);
      s = this.#create();
    } else if (!s.valid) throw new Error('this session was destroyed');
    if (!this.#modified) {
      this.#modified = true;
      if (!this.#cookieSet && this.loadedId === s.id && this.#persistent(s)) this.#setCookie(s.id);
    }
    return s;
  }

  /**
   * A new session for this request. `keep`: the same data and cookie settings under a new id
   * (Tomcat's changeSessionId); otherwise express-session's regenerate: the old session is
   * invalidated everywhere and a new, empty one with the node-wide cookie settings replaces it.
   */
  regenerate(keep: boolean): void {
    this.writable('req.session.regenerate()');
    if (this.#destroyed) throw new Error('this session was destroyed');
    // A session begun now would never see its request end (and never expire): refuse.
    if (this.finished) throw new Error('req.session.regenerate(): the response has ended');
    const old = this.session;
    if (old !== undefined && !old.valid) throw new Error('this session was destroyed');
    this.#modified = true;
    if (keep && old !== undefined) {
      const { id, sent } = this.manager.changeSessionId(old);
      this.#setCookie(id);
      this.waitFor(sent);
      return;
    }
    if (old !== undefined) {
      this.waitFor(old.invalidate());
      this.drop(old);
    }
    this.#id = undefined;
    this.#cookie = undefined;
    this.#create();
  }

  destroy(): void {
    const s = this.session;
    if (s !== undefined) {
      this.writable('req.session.destroy()');
      this.#id = s.id;
      if (s.valid) this.waitFor(s.invalidate());
      this.drop(s);
    }
    this.#destroyed = true;
    this.#handle = undefined;
    // As express-session: no Set-Cookie (the browser keeps a cookie that names nothing any more).
    this.#removeCookie();
  }

  save(): Promise<void> {
    const s = this.session;
    if (s === undefined || !s.valid || this.readOnly) return Promise.resolve();
    this.#storeCookie(s);
    return this.manager.replicate(s) ?? Promise.resolve();
  }

  touch(): void {
    const s = this.session;
    if (s !== undefined) s.lastAccessedTime = Date.now();
    this.#cookie?.touch();
  }

  protected ending(s: Session): boolean {
    if (!this.readOnly && s.valid) {
      this.#storeCookie(s);
      if (!this.#modified && !this.#cookieSet && s.handedOut !== undefined) this.#changedInPlace(s);
    }
    return this.#replicate;
  }

  /** A loaded session changed only in place (`req.session.cart.push(x)`): a persistent cookie is re-sent. */
  #changedInPlace(s: Session): void {
    if (this.loadedId !== s.id || this.res.headersSent || !this.#persistent(s)) return;
    s.detectInPlaceChanges(); // again in requestCompleted: then nothing more has changed
    const dirty = s.dirty;
    if (dirty === undefined) return;
    for (const name of dirty)
      if (name !== COOKIE_ATTRIBUTE) {
        this.#setCookie(s.id);
        return;
      }
  }

  /** Keeps what this request set on `req.session.cookie` in the session, so it replicates with it. */
  #storeCookie(s: Session): void {
    const c = this.#cookie;
    if (c === undefined || !c.changed) return;
    c.changed = false;
    const meta = c.meta();
    const had = s.hasAttribute(COOKIE_ATTRIBUTE);
    if (meta === undefined) {
      if (had) s.removeAttribute(COOKIE_ATTRIBUTE);
    } else if (!had || JSON.stringify(readCookieMeta(s.getAttribute(COOKIE_ATTRIBUTE))) !== JSON.stringify(meta))
      s.setAttribute(COOKIE_ATTRIBUTE, meta);
    this.#raiseInterval(s, c.originalMaxAge);
  }

  /**
   * A session lives at least as long as its persistent cookie when idle ("remember me" outlives
   * sessions.maxInactiveInterval): its idle timeout is raised to the cookie's lifetime, never lowered.
   */
  #raiseInterval(s: Session, maxAgeMs: number | null): void {
    if (maxAgeMs === null || s.maxInactiveInterval <= 0) return;
    const seconds = Math.min(MAX_INACTIVE_LIMIT, Math.ceil(maxAgeMs / 1000));
    if (seconds > s.maxInactiveInterval) s.setMaxInactiveInterval(seconds);
  }

  /** Whether the session's cookie is persistent, without building `req.session.cookie` (hot path). */
  #persistent(s: Session): boolean {
    if (this.#cookie !== undefined) return this.#cookie.persistent;
    if (!s.hasAttribute(COOKIE_ATTRIBUTE)) return this.config.cookie.maxAge !== null;
    const m = readCookieMeta(s.getAttribute(COOKIE_ATTRIBUTE))?.m;
    return m === undefined ? this.config.cookie.maxAge !== null : m !== null;
  }

  #create(): Session {
    const now = Date.now();
    const s = this.manager.createSession(now, this.#id);
    this.#id = undefined;
    this.begin(s, now);
    this.#modified = true;
    this.#raiseInterval(s, this.#cookie !== undefined ? this.#cookie.originalMaxAge : this.config.cookie.maxAge);
    this.#setCookie(s.id);
    return s;
  }

  /** The request came over TLS, or through a trusted proxy that says so (what secure "auto" means). */
  #encrypted(): boolean {
    return requestIsSecure(this.req, this.config.trustProxy);
  }

  /** Sets (or replaces) this request's session cookie, expiring originalMaxAge from now. */
  #setCookie(id: string): void {
    const res = this.res;
    if (res.headersSent) return;
    const c = this.cookie;
    const now = Date.now();
    c.touch(now);
    const header = serializeCookie(this.config.cookieName, `${id}.${this.manager.route}`, c.attributes(now));
    // Replace our own earlier Set-Cookie (e.g. regenerate after create), keep the application's.
    const prev = res.getHeader('set-cookie');
    if (prev === undefined) res.setHeader('Set-Cookie', header);
    else {
      const list = this.#othersCookies(prev);
      list.push(header);
      res.setHeader('Set-Cookie', list);
    }
    this.#cookieSet = true;
  }

  /** Takes back this request's session cookie (the session was destroyed or is gone). */
  #removeCookie(): void {
    if (!this.#cookieSet) return;
    this.#cookieSet = false;
    const res = this.res;
    if (res.headersSent) return;
    const prev = res.getHeader('set-cookie');
    if (prev === undefined) return;
    const list = this.#othersCookies(prev);
    if (list.length === 0) res.removeHeader('Set-Cookie');
    else res.setHeader('Set-Cookie', list);
  }

  /** The Set-Cookie values that are not this session cookie. */
  #othersCookies(prev: number | string | string[]): string[] {
    const prefix = `${this.config.cookieName}=`;
    return (Array.isArray(prev) ? prev : [String(prev)]).filter((c) => !c.startsWith(prefix));
  }
}
