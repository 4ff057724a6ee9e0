/**
 * The session side of one HTTP request (the replication valve and route binder):
 * - reads the session cookie `<id>.<route>`; an unknown or malformed id is ignored (a fresh id is
 *   issued when the request uses a session: no fixation);
 * - creates the session on first use of `req.session`, and sets the cookie;
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
 *   event-loop turn: a change that arrived with it applies first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionConfig } from '../config/session-config.js';
import { ClusterError, ErrorCode } from '../core/errors.js';
import { cookieIdPart, cookieNamesRoute, cookieRoute } from '../session/ids.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session/session-manager.js';
import { serializeCookie, sessionCookieValue } from './cookie.js';
import { requestIsSecure } from './proxy-trust.js';
import { createSessionHandle, type HandleHost, type SessionCookie, type SessionHandle } from './session-handle.js';

export class RequestSession implements HandleHost {
  session: Session | undefined;
  originalRoute: string | undefined;
  #handle: SessionHandle | undefined;
  #cookie: CookieSettings | undefined;
  #started = false;
  #finished = false;
  #destroyed = false;
  #abandoned = false;
  #pending: Promise<void> | undefined;
  readonly #replicate: boolean;
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
    if (s === undefined) return;
    this.#begin(s, now);
    if (!cookieNamesRoute(value, manager.route)) {
      // Failover (or no route yet): this node now serves the session; tell the balancer. A read
      // leaves the session where it is, so it re-homes the cookie only when that node is gone.
      this.originalRoute = cookieRoute(value);
      if (!this.readOnly || !manager.servesRoute(this.originalRoute)) this.#setCookie(s.id);
    }
    // Another node owns the session: take it over before the application runs (its last change
    // comes before the hand-over). Served from this node's copy instead (a read, or ownership
    // none) while another node may have just changed it: that change may have arrived with this
    // request, on a socket the kernel reported after this one; run once every ready socket was read.
    const wait =
      (this.readOnly ? undefined : manager.acquire(s)) ??
      (manager.copyMayTrail(s) ? manager.inputHandled() : undefined);
    if (wait !== undefined) this.ready = wait.then(() => this.#afterWait(s));
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
  }

  /** `req.session`: the handle, creating the session on first use. Undefined after destroy(). */
  handle(): SessionHandle | undefined {
    if (this.#handle !== undefined) return this.#handle;
    if (this.#destroyed || this.#finished) return undefined;
    if (this.session === undefined) {
      if (this.readOnly) return undefined; // a read creates nothing
      const s = this.manager.createSession();
      this.#begin(s);
      this.#setCookie(s.id);
    }
    this.#handle = createSessionHandle(this);
    return this.#handle;
  }

  /** The request ended before the application ran (its client went away while it waited): do not run it. */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /** The session without creating one (for `req.session` checks that must not create). */
  get existing(): Session | undefined {
    return this.session;
  }

  get cookie(): SessionCookie {
    this.#cookie ??= new CookieSettings(this, this.config.contextPath, this.#secure(), this.config.cookieSameSite);
    return this.#cookie;
  }

  /** cookie.maxAge changed: re-issue the Set-Cookie header now (before the headers go out). */
  cookieChanged(): void {
    const s = this.session;
    if (s?.valid && !this.#destroyed) this.#setCookie(s.id);
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

  regenerate(): void {
    this.writable('req.session.regenerate()');
    const s = this.#live();
    const { id, sent } = this.manager.changeSessionId(s);
    this.#setCookie(id);
    if (sent !== undefined)
      this.#pending = this.#pending === undefined ? sent : Promise.all([this.#pending, sent]).then(() => {});
  }

  destroy(): void {
    const s = this.session;
    if (s === undefined) return;
    this.writable('req.session.destroy()');
    this.#destroyed = true;
    if (s.valid) this.#pending = s.invalidate();
    this.#end(s);
    this.session = undefined;
    this.#handle = undefined;
    this.#setCookie('', 0);
  }

  save(): Promise<void> {
    const s = this.session;
    if (s === undefined || !s.valid || this.readOnly) return Promise.resolve();
    return this.manager.replicate(s) ?? Promise.resolve();
  }

  touch(): void {
    const s = this.session;
    if (s !== undefined) s.lastAccessedTime = Date.now();
  }

  /**
   * The response is ending: replicate. Returns a promise when the response must wait: for the
   * other nodes (synchronous mode), or for the end of the turn (batchResponses). Safe to call
   * more than once.
   */
  finish(): Promise<void> | undefined {
    if (this.#finished) return undefined;
    this.#finished = true;
    const pending = this.#pending; // a synchronous invalidation the response waits for
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
    let sent = this.#completed(s, this.#replicate);
    // Ended with the turn's other responses, after the turn's replication batch (see batchResponses).
    if (sent === undefined && this.config.batchResponses) sent = this.manager.turnWritten();
    return pending === undefined ? sent : sent === undefined ? pending : Promise.all([pending, sent]).then(() => {});
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

  #live(): Session {
    const s = this.session;
    if (s === undefined || !s.valid) throw new Error('this session was destroyed');
    return s;
  }

  #secure(): boolean {
    const c = this.config.cookieSecure;
    return c === 'auto' ? requestIsSecure(this.req, this.config.trustProxy) : c;
  }

  #setCookie(id: string, maxAgeSeconds?: number): void {
    const res = this.res;
    if (res.headersSent) return;
    const maxAge =
      maxAgeSeconds ?? (this.#cookie?.maxAge != null ? Math.max(0, Math.floor(this.#cookie.maxAge / 1000)) : undefined);
    const value = id === '' ? '' : `${id}.${this.manager.route}`;
    const header = serializeCookie(this.config.cookieName, value, {
      path: this.config.contextPath,
      secure: this.#cookie?.secure ?? this.#secure(),
      sameSite: this.config.cookieSameSite,
      maxAge,
    });
    // Replace our own earlier Set-Cookie (e.g. regenerate after create), keep the application's.
    const prev = res.getHeader('set-cookie');
    const prefix = `${this.config.cookieName}=`;
    if (prev === undefined) res.setHeader('Set-Cookie', header);
    else {
      const list = (Array.isArray(prev) ? prev : [String(prev)]).filter((c) => !c.startsWith(prefix));
      list.push(header);
      res.setHeader('Set-Cookie', list);
    }
  }
}

/** `req.session.cookie`: assigning `maxAge` (ms) makes the cookie persistent (Max-Age), at once. */
class CookieSettings implements SessionCookie {
  readonly httpOnly = true as const;
  #maxAge: number | null = null;

  constructor(
    private readonly owner: RequestSession,
    readonly path: string,
    readonly secure: boolean,
    readonly sameSite: 'Lax' | 'Strict' | 'None',
  ) {}

  get maxAge(): number | null {
    return this.#maxAge;
  }

  set maxAge(ms: number | null) {
    if (ms !== null && !(Number.isFinite(ms) && ms >= 0))
      throw new TypeError('cookie.maxAge must be a number of milliseconds ≥ 0, or null');
    this.#maxAge = ms;
    this.owner.cookieChanged();
  }
}
