/**
 * One request's binding to a clowder session, for the framework adapters that give a session API
 * of their own (Fastify's `request.session`, Koa's `ctx.session`). The policy is the middleware's
 * (request-session.ts), over the manager's public API; finding, waiting for and ending the session
 * is the lifecycle both share (request-lifecycle.ts):
 * - the cookie `<id>.<route>` names the session; an unknown or malformed id is never adopted;
 * - a session another node owns is taken over before the handler runs (ownership), and a copy
 *   another node may have just changed is read only after the input that came with the request;
 * - the session is created lazily, on the first write (an empty new session is never stored);
 * - a cookie naming another node's route (failover) is re-issued with this node's;
 * - at the end the request's changes replicate; the response waits for them in synchronous mode,
 *   or (batchResponses) until the turn's replication batch was written;
 * - with sessions.serialize (its path matching), a request on an existing session waits for the
 *   session's lock (session/request-queue.ts) and holds it until it ends; one that waits too long
 *   or finds the queue full is `busy` (the adapter answers 503).
 */
import type { IncomingMessage } from 'node:http';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session/session-manager.js';
import { serializeCookie, sessionCookieValue } from './cookie.js';
import { requestIsSecure } from './proxy-trust.js';
import { RequestLifecycle, requestPath } from './request-lifecycle.js';

/** Cookie settings of an adapter (names and defaults follow the manager's config). */
export interface BindingCookieOptions {
  /** Cookie name; default the manager's `cookieName`. */
  cookieName?: string;
  /**
   * Lifetime of new sessions in ms: the cookie's Max-Age and the session's idle timeout
   * (maxInactiveInterval, rounded up to seconds). Default: a browser-session cookie and the
   * manager's maxInactiveInterval.
   */
  maxAge?: number;
  /** Re-send the cookie (a fresh Max-Age) on every response of a used session. */
  rolling?: boolean;
}

export class SessionBinding extends RequestLifecycle {
  /** Cookie lifetime in ms for this session, or null (browser-session cookie). */
  maxAgeMs: number | null;
  #destroyed = false;
  /** What the cookie must say at the end: the id, '' (clear it), or undefined (leave it). */
  #cookie: string | undefined;
  readonly #cookieName: string;
  readonly #rolling: boolean;
  readonly #maxAgeOption: number | undefined;

  constructor(
    manager: SessionManager,
    readonly req: IncomingMessage,
    options: BindingCookieOptions = {},
  ) {
    super(manager, false);
    this.#cookieName = options.cookieName ?? manager.config.cookieName;
    this.#rolling = options.rolling === true;
    this.maxAgeMs = options.maxAge ?? null;
    this.#maxAgeOption = options.maxAge;
    this.open(sessionCookieValue(req.headers.cookie, this.#cookieName, manager));
  }

  /** The id came from the client's cookie (the session existed before this request; set once fetched, if it was). */
  get loaded(): boolean {
    return this.loadedId !== undefined;
  }

  protected requestPath(): string {
    return requestPath(this.req.url);
  }

  protected using(s: Session, rehomedFrom: string | undefined): void {
    // A lifetime set for this session earlier (its own idle timeout) keeps its cookie persistent.
    if (this.#maxAgeOption === undefined && s.maxInactiveInterval !== this.manager.config.maxInactiveInterval)
      this.maxAgeMs = s.maxInactiveInterval > 0 ? s.maxInactiveInterval * 1000 : null;
    if (rehomedFrom !== undefined) this.#cookie = s.id; // failover: re-issued with this node's route
  }

  protected sessionLost(): void {
    this.#cookie = undefined;
  }

  protected ending(): boolean {
    return true;
  }

  /** The session, created now if there is none (a write needs one). */
  create(): Session {
    const s = this.session;
    if (s?.valid) return s;
    if (this.finished) throw new Error('the session cannot be created after the response ended');
    const created = this.manager.createSession();
    this.#destroyed = false;
    this.begin(created);
    if (this.maxAgeMs !== null) created.setMaxInactiveInterval(secondsOf(this.maxAgeMs));
    this.#cookie = created.id;
    return created;
  }

  /** New id, same data (fixation defence), on every node. */
  regenerate(): void {
    const s = this.create();
    const { id, sent } = this.manager.changeSessionId(s);
    this.#cookie = id;
    this.waitFor(sent);
  }

  /** Invalidates the session on every node; `clearCookie` also expires the browser's cookie. */
  destroy(clearCookie: boolean): void {
    const s = this.session;
    this.#destroyed = true;
    if (clearCookie && (s !== undefined || this.loaded)) this.#cookie = '';
    else this.#cookie = undefined;
    if (s === undefined) return;
    if (s.valid) this.waitFor(s.invalidate());
    this.drop(s);
  }

  /** Sends what changed now (resolves once every member applied it in synchronous mode). */
  save(): Promise<void> {
    const s = this.session;
    if (s === undefined || !s.valid) return Promise.resolve();
    return this.manager.replicate(s) ?? Promise.resolve();
  }

  /** Sets this session's lifetime (ms): its idle timeout on every node, and the cookie's Max-Age. */
  setMaxAge(ms: number | null): void {
    if (ms !== null && !(Number.isFinite(ms) && ms > 0))
      throw new TypeError('maxAge must be a number of milliseconds > 0, or null');
    this.maxAgeMs = ms;
    const s = this.create();
    s.setMaxInactiveInterval(ms === null ? this.manager.config.maxInactiveInterval : secondsOf(ms));
    this.#cookie = s.id;
  }

  /**
   * The Set-Cookie header line the response needs, or undefined: a new, regenerated or re-homed
   * session's cookie; with rolling, every used session's; a cleared one after destroy.
   */
  setCookieHeader(): string | undefined {
    let value = this.#cookie;
    const s = this.session;
    if (value === undefined && this.#rolling && s?.valid && !this.#destroyed) value = s.id;
    if (value === undefined) return undefined;
    const clear = value === '';
    return serializeCookie(this.#cookieName, clear ? '' : `${value}.${this.manager.route}`, {
      path: this.manager.config.contextPath,
      secure: secureCookie(this),
      sameSite: this.manager.config.cookieSameSite,
      maxAgeMs: clear ? 0 : (this.maxAgeMs ?? undefined),
    });
  }
}

/** Whether the binding's cookie is Secure (a function, not a `#` method: no brand field per request). */
function secureCookie(b: SessionBinding): boolean {
  const config = b.manager.config;
  return config.cookieSecure === 'auto' ? requestIsSecure(b.req, config.trustProxy) : config.cookieSecure;
}

function secondsOf(ms: number): number {
  return Math.min(31_536_000, Math.max(1, Math.ceil(ms / 1000)));
}
