/**
 * One request's binding to a clowder session, for the framework adapters that give a session API
 * of their own (Fastify's `request.session`, Koa's `ctx.session`). The policy is the middleware's
 * (request-session.ts), over the manager's public API:
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
import { cookieIdPart, cookieNamesRoute, cookieRoute } from '../session/ids.js';
import { QUEUE_FULL, type SerialOutcome, type SerialRequest, type SerialWait } from '../session/request-queue.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session/session-manager.js';
import { serializeCookie, sessionCookieValue } from './cookie.js';
import { requestIsSecure } from './proxy-trust.js';

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

export class SessionBinding implements SerialRequest {
  /** The session; undefined until created or after destroy(). */
  session: Session | undefined;
  /** The route the client's cookie named, when it differs from this node's (failover). */
  originalRoute: string | undefined;
  /** Set while the session is taken over from its owner; run the handler once it resolves. */
  ready: Promise<void> | undefined;
  /** The id came from the client's cookie (the session existed before this request; set once fetched, if it was). */
  loaded: boolean;
  /** Cookie lifetime in ms for this session, or null (browser-session cookie). */
  maxAgeMs: number | null;
  #started = false;
  #finished = false;
  #abandoned = false;
  #destroyed = false;
  /** What the cookie must say at the end: the id, '' (clear it), or undefined (leave it). */
  #cookie: string | undefined;
  #pending: Promise<void> | undefined;
  readonly #cookieName: string;
  readonly #rolling: boolean;
  readonly #maxAgeOption: number | undefined;
  /** sessions.serialize: the session whose lock this request holds. */
  #locked: Session | undefined;
  /** sessions.serialize: this request's wait for its turn, while it waits. */
  #serialWait: SerialWait | undefined;
  #cookieValue = '';
  #busy = false;

  constructor(
    readonly manager: SessionManager,
    readonly req: IncomingMessage,
    options: BindingCookieOptions = {},
  ) {
    this.#cookieName = options.cookieName ?? manager.config.cookieName;
    this.#rolling = options.rolling === true;
    this.maxAgeMs = options.maxAge ?? null;
    this.#maxAgeOption = options.maxAge;
    const value = sessionCookieValue(req.headers.cookie, this.#cookieName, manager);
    const id = value === undefined ? undefined : cookieIdPart(value);
    const s = id === undefined ? undefined : manager.findSession(id);
    this.loaded = s !== undefined;
    if (value === undefined || id === undefined) return;
    if (s !== undefined) this.#found(s, value);
    else {
      // Not held here (BackupManager): fetched from the members that hold it, then used as if
      // found here. A client gone meanwhile (finish() ran) uses nothing.
      const fetching = manager.fetchSession?.(id);
      if (fetching !== undefined)
        this.ready = fetching.then((f) => {
          this.ready = undefined;
          if (f === undefined || this.#finished) return;
          this.loaded = true;
          this.#found(f, value);
          return this.ready;
        });
    }
  }

  /** The session the cookie (value `value`) names: waits for its turn (sessions.serialize), or uses it. */
  #found(s: Session, value: string): void {
    const manager = this.manager;
    const req = this.req;
    const serialize = manager.config.serialize;
    if (serialize !== false && (serialize === true || serialize.test(pathOf(req.url)))) {
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
    const wait = this.#use(s, value);
    if (wait !== undefined) this.ready = wait.then(() => this.#afterWait(s));
  }

  /** sessions.serialize: the session's lock is this request's now; begins using it. Not for applications. */
  serialStart(s: Session): Promise<void> | undefined {
    this.#locked = s;
    return this.#use(s, this.#cookieValue);
  }

  /** Begins using `s`; returns what to wait for before the handler runs (a take-over), if anything. */
  #use(s: Session, value: string): Promise<void> | undefined {
    const manager = this.manager;
    this.#begin(s);
    // A lifetime set for this session earlier (its own idle timeout) keeps its cookie persistent.
    if (this.#maxAgeOption === undefined && s.maxInactiveInterval !== manager.config.maxInactiveInterval)
      this.maxAgeMs = s.maxInactiveInterval > 0 ? s.maxInactiveInterval * 1000 : null;
    if (!cookieNamesRoute(value, manager.route)) {
      this.originalRoute = cookieRoute(value);
      this.#cookie = s.id;
    }
    return manager.acquire(s) ?? (manager.copyMayTrail(s) ? manager.inputHandled() : undefined);
  }

  #afterWait(s: Session): void {
    this.ready = undefined;
    if (!s.valid) this.#drop(s); // invalidated meanwhile: the request goes on without it
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
    // Waited too long (or the client went away): the handler does not run; the lock passes on.
    if (s !== undefined && this.#started) {
      this.#started = false;
      this.manager.requestAbandoned(s);
      this.session = undefined;
      this.#cookie = undefined;
      this.originalRoute = undefined;
    }
    this.#unlock();
    if (outcome === 'timeout') this.#busy = true;
  }

  #unlock(): void {
    const s = this.#locked;
    if (s === undefined) return;
    this.#locked = undefined;
    this.manager.serializer.leave(s);
  }

  /**
   * sessions.serialize: the request waited longer than serializeTimeoutMs for its session, or its
   * session's queue was full: the handler must not run (answer 503).
   */
  get busy(): boolean {
    return this.#busy;
  }

  /** The client went away while the request waited for the session: the handler must not run. */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /** The session, created now if there is none (a write needs one). */
  create(): Session {
    const s = this.session;
    if (s?.valid) return s;
    if (this.#finished) throw new Error('the session cannot be created after the response ended');
    const created = this.manager.createSession();
    this.#destroyed = false;
    this.#begin(created);
    if (this.maxAgeMs !== null) created.setMaxInactiveInterval(secondsOf(this.maxAgeMs));
    this.#cookie = created.id;
    return created;
  }

  /** New id, same data (fixation defence), on every node. */
  regenerate(): void {
    const s = this.create();
    const { id, sent } = this.manager.changeSessionId(s);
    this.#cookie = id;
    this.#wait(sent);
  }

  /** Invalidates the session on every node; `clearCookie` also expires the browser's cookie. */
  destroy(clearCookie: boolean): void {
    const s = this.session;
    this.#destroyed = true;
    if (clearCookie && (s !== undefined || this.loaded)) this.#cookie = '';
    else this.#cookie = undefined;
    if (s === undefined) return;
    if (s.valid) this.#wait(s.invalidate());
    this.#drop(s);
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
      secure: this.#secure(),
      sameSite: this.manager.config.cookieSameSite,
      maxAgeMs: clear ? 0 : (this.maxAgeMs ?? undefined),
    });
  }

  /**
   * The request ends: replicates what it changed. Returns a promise when the response must wait
   * (synchronous mode; the turn's batch with batchResponses). Safe to call more than once.
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
    const pending = this.#pending;
    // Still waiting (a fetch, its turn, a take-over) when the response ends: the client went
    // away and the application must not run, also when no session was found yet (a fetch).
    if (this.ready !== undefined) this.#abandoned = true;
    const s = this.session;
    if (s === undefined || !this.#started) return pending;
    this.#started = false;
    if (this.ready !== undefined) {
      // The client went away while the request waited for the session: the owner keeps it.
      this.#abandoned = true;
      this.manager.requestAbandoned(s);
      return pending;
    }
    let sent = this.manager.requestCompleted(s);
    if (sent === undefined && this.manager.config.batchResponses) sent = this.manager.turnWritten();
    return pending === undefined ? sent : sent === undefined ? pending : Promise.all([pending, sent]).then(() => {});
  }

  #begin(s: Session): void {
    this.session = s;
    this.#started = true;
    this.manager.requestStarted(s);
  }

  /** Ends this request's use of `s` without replicating (it was invalidated). */
  #drop(s: Session): void {
    if (this.#started) {
      this.#started = false;
      this.manager.requestCompleted(s, false);
    }
    this.session = undefined;
  }

  #wait(p: Promise<void> | undefined): void {
    if (p !== undefined)
      this.#pending = this.#pending === undefined ? p : Promise.all([this.#pending, p]).then(() => {});
  }

  #secure(): boolean {
    const c = this.manager.config.cookieSecure;
    return c === 'auto' ? requestIsSecure(this.req, this.manager.config.trustProxy) : c;
  }
}

/** The path of a request URL (no query). */
function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function secondsOf(ms: number): number {
  return Math.min(31_536_000, Math.max(1, Math.ceil(ms / 1000)));
}
