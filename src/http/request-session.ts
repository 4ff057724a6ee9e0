/**
 * The session side of one HTTP request (the replication valve and route binder):
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
import { cookieIdPart, cookieNamesRoute, cookieRoute, newSessionId } from '../session/ids.js';
import { QUEUE_FULL, type SerialOutcome, type SerialRequest, type SerialWait } from '../session/request-queue.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session/session-manager.js';
import { serializeCookie, sessionCookieValue } from './cookie.js';
import { requestIsSecure } from './proxy-trust.js';
import { type CookieOwner, SessionCookie } from './session-cookie.js';
import { createSessionHandle, type HandleHost, type SessionHandle } from './session-handle.js';

/** Longest idle timeout a persistent cookie raises its session's to (the config's maximum), in seconds. */
const MAX_INACTIVE_LIMIT = 31_536_000;

export class RequestSession implements HandleHost, CookieOwner, SerialRequest {
  session: Session | undefined;
  originalRoute: string | undefined;
  #handle: SessionHandle | undefined;
  #cookie: SessionCookie | undefined;
  /** Id of the session the request's cookie named and this node found (its cookie need not be re-sent). */
  #loadedId: string | undefined;
  /** The id `req.sessionID` showed before the session existed (the session gets it), or after destroy(). */
  #id: string | undefined;
  #started = false;
  #finished = false;
  #destroyed = false;
  #abandoned = false;
  /** The application changed the session in this request (express-session's "modified"). */
  #modified = false;
  /** This request's Set-Cookie for the session is among the response's headers. */
  #cookieSet = false;
  #pending: Promise<void> | undefined;
  readonly #replicate: boolean;
  /** sessions.serialize: the session whose lock this request holds (released when it ends). */
  #locked: Session | undefined;
  /** sessions.serialize: this request's wait for its turn, while it waits. */
  #serialWait: SerialWait | undefined;
  /** The session cookie's value (`<id>.<route>`), kept for a request that waits for its turn. */
  #cookieValue = '';
  #busy = false;
  /** The path matches readOnlyFilter: the session may be read, not changed, created or taken over. */
  readonly readOnly: boolean;

  constructor(
    readonly manager: SessionManager,
    readonly config: SessionConfig,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** The request's path as the filters saw it. */
    readonly path: string,
  ) {
    this.#replicate = config.replicationFilter === undefined || !config.replicationFilter.test(path);
    this.readOnly = config.readOnlyFilter?.test(path) === true;
    const value = sessionCookieValue(req.headers.cookie, config.cookieName, manager);
    if (value === undefined) return;
    const id = cookieIdPart(value);
    if (id === undefined) return;
    const now = Date.now();
    const s = manager.findSession(id, now);
    if (s !== undefined) this.#found(s, value, now);
    else {
      // Not held here (BackupManager): fetched from the members that hold it, then used as if
      // found here. A client gone meanwhile (finish() ran) uses nothing.
      const fetching = manager.fetchSession?.(id, now, this.readOnly, cookieRoute(value));
      if (fetching !== undefined)
        this.ready = fetching.then((f) => {
          this.ready = undefined;
          if (f === undefined || this.#finished) return;
          this.#found(f, value, Date.now());
          return this.ready;
        });
    }
  }

  /** The session the cookie (value `value`) names: waits for its turn (sessions.serialize), or uses it. */
  #found(s: Session, value: string, now: number): void {
    const manager = this.manager;
    const serialize = this.config.serialize;
    if (serialize !== false && !this.readOnly && (serialize === true || serialize.test(this.path))) {
      // One request of the session at a time: wait for the lock (serialStart runs once it is ours).
      this.#cookieValue = value;
      const w = manager.serializer.enter(s, this);
      if (w === QUEUE_FULL) this.#busy = true;
      else if (w !== undefined) {
        this.#serialWait = w;
        this.ready = w.promise.then((outcome) => this.#afterSerialWait(outcome));
      }
      return;
    }
    const wait = this.#use(s, value, now);
    if (wait !== undefined) this.ready = wait.then(() => this.#afterWait(s));
  }

  /**
   * sessions.serialize: the session's lock is this request's now (see request-queue.ts). Begins
   * using the session; returns the take-over still to wait for, if any. Not for applications.
   */
  serialStart(s: Session): Promise<void> | undefined {
    this.#locked = s;
    return this.#use(s, this.#cookieValue, Date.now());
  }

  /** Begins using the session the cookie `value` named; returns what to wait for before the application runs. */
  #use(s: Session, value: string, now: number): Promise<void> | undefined {
    const manager = this.manager;
    const config = this.config;
    this.#begin(s, now);
    this.#loadedId = s.id;
    if (!cookieNamesRoute(value, manager.route)) {
      // Failover (or no route yet): this node now serves the session; tell the balancer, with the
      // session's cookie settings (a persistent cookie stays persistent). A read leaves the session
      // where it is, so it re-homes the cookie only when that node is gone.
      this.originalRoute = cookieRoute(value);
      if (!this.readOnly || !manager.servesRoute(this.originalRoute)) this.#setCookie(s.id);
    } else if (config.rolling && !this.readOnly) this.#setCookie(s.id);
    // Another node owns the session: take it over before the application runs (its last change
    // comes before the hand-over). Served from this node's copy instead (a read, or ownership
    // none) while another node may have just changed it: that change may have arrived with this
    // request, on a socket the kernel reported after this one; run once every ready socket was read.
    return (
      (this.readOnly ? undefined : manager.acquire(s)) ?? (manager.copyMayTrail(s) ? manager.inputHandled() : undefined)
    );
  }

  /** sessions.serialize: the wait for the session's turn ended. */
  #afterSerialWait(outcome: SerialOutcome): void {
    this.#serialWait = undefined;
    this.ready = undefined;
    const s = this.session;
    if (outcome === 'go') {
      if (s !== undefined) this.#afterWait(s);
      return;
    }
    // Waited too long (or the client went away): the application does not run; the session stays
    // where it is, and the lock passes on.
    if (s !== undefined && this.#started) {
      this.#started = false;
      this.manager.requestAbandoned(s);
      this.session = undefined;
      this.#loadedId = undefined;
      this.#removeCookie();
    }
    this.#unlock();
    if (outcome === 'timeout') this.#busy = true;
  }

  /** Passes the session's lock on (sessions.serialize), once. */
  #unlock(): void {
    const s = this.#locked;
    if (s === undefined) return;
    this.#locked = undefined;
    this.manager.serializer.leave(s);
  }

  /**
   * sessions.serialize: this request waited longer than serializeTimeoutMs for its session, or its
   * session's queue was full; the application must not run (the adapter answers 503).
   */
  get busy(): boolean {
    return this.#busy;
  }

  /**
   * Set while the session is being taken over from the node that owns it, or while a request
   * served from this node's copy waits for the input that came with it: the adapter runs the
   * application only once it resolves.
   */
  ready: Promise<void> | undefined;

  #afterWait(s: Session): void {
    this.ready = undefined;
    if (s.valid) return;
    // Invalidated meanwhile (on the owner, or by a message that came with this request): the
    // request goes on without it.
    this.#end(s);
    this.session = undefined;
    this.#loadedId = undefined;
    this.#removeCookie();
  }

  /**
   * `req.session`: the handle (the session itself is created when the request first writes to
   * it, or here with saveUninitialized). Undefined after destroy() or once the response ended.
   */
  handle(): SessionHandle | undefined {
    if (this.#handle !== undefined) return this.#handle;
    if (this.#destroyed || this.#finished) return undefined;
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

  /** The request ended before the application ran (its client went away while it waited): do not run it. */
  get abandoned(): boolean {
    return this.#abandoned;
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
      if (this.#finished)
        throw new Error(`cannot change session attribute ${JSON.stringify(name)}: the response has ended`);
      s = this.#create();
    } else if (!s.valid) throw new Error('this session was destroyed');
    if (!this.#modified) {
      this.#modified = true;
      if (!this.#cookieSet && this.#loadedId === s.id && this.#persistent(s)) this.#setCookie(s.id);
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
    if (this.#finished) throw new Error('req.session.regenerate(): the response has ended');
    const old = this.session;
    if (old !== undefined && !old.valid) throw new Error('this session was destroyed');
    this.#modified = true;
    if (keep && old !== undefined) {
      const { id, sent } = this.manager.changeSessionId(old);
      this.#setCookie(id);
      this.#wait(sent);
      return;
    }
    if (old !== undefined) {
      this.#wait(old.invalidate());
      this.#end(old);
      this.session = undefined;
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
      if (s.valid) this.#wait(s.invalidate());
      this.#end(s);
      this.session = undefined;
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

  /**
   * The response is ending: replicate. Returns a promise when the response must wait: for the
   * other nodes (synchronous mode), or for the end of the turn (batchResponses). Safe to call
   * more than once.
   */
  finish(): Promise<void> | undefined {
    if (this.#finished) return undefined;
    const w = this.#serialWait;
    if (w !== undefined) {
      // The client went away while the request waited for its turn: it leaves the queue.
      this.#abandoned = true;
      this.manager.serializer.abort(w);
    }
    const done = this.#finish();
    this.#unlock(); // after the manager was told: a hand-over to a waiting member goes first
    return done;
  }

  #finish(): Promise<void> | undefined {
    this.#finished = true;
    const pending = this.#pending; // a synchronous invalidation the response waits for
    // Still waiting (a fetch, its turn, a take-over) when the response ends: the client went
    // away and the application must not run, also when no session was found yet (a fetch).
    if (this.ready !== undefined) this.#abandoned = true;
    const s = this.session;
    if (s === undefined || !this.#started) return pending;
    this.#started = false;
    if (this.ready !== undefined) {
      // The client went away while the request waited for the session: the application never
      // ran, and the node that owns the session keeps it.
      this.#abandoned = true;
      this.manager.requestAbandoned(s);
      return pending;
    }
    if (!this.readOnly && s.valid) {
      this.#storeCookie(s);
      if (!this.#modified && !this.#cookieSet && s.handedOut !== undefined) this.#changedInPlace(s);
    }
    let sent = this.#completed(s, this.#replicate);
    // Ended with the turn's other responses, after the turn's replication batch (see batchResponses).
    if (sent === undefined && this.config.batchResponses) sent = this.manager.turnWritten();
    return pending === undefined ? sent : sent === undefined ? pending : Promise.all([pending, sent]).then(() => {});
  }

  /** A loaded session changed only in place (`req.session.cart.push(x)`): a persistent cookie is re-sent. */
  #changedInPlace(s: Session): void {
    if (this.#loadedId !== s.id || this.res.headersSent || !this.#persistent(s)) return;
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
    this.#begin(s, now);
    this.#modified = true;
    this.#raiseInterval(s, this.#cookie !== undefined ? this.#cookie.originalMaxAge : this.config.cookie.maxAge);
    this.#setCookie(s.id);
    return s;
  }

  #wait(p: Promise<void> | undefined): void {
    if (p !== undefined)
      this.#pending = this.#pending === undefined ? p : Promise.all([this.#pending, p]).then(() => {});
  }

  #begin(s: Session, now = Date.now()): void {
    this.session = s;
    this.#started = true;
    this.manager.requestStarted(s, now);
  }

  #end(s: Session): void {
    if (!this.#started) return;
    this.#started = false;
    this.#completed(s, false);
  }

  /** Tells the manager this request is done with `s`; a read-only one changed nothing. */
  #completed(s: Session, replicate: boolean): Promise<void> | undefined {
    if (!this.readOnly) return this.manager.requestCompleted(s, replicate);
    this.manager.readCompleted(s);
    return undefined;
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
