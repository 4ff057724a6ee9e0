/**
 * The per-request state machine every HTTP binding shares (the middleware and node listener's
 * request-session.ts, the Fastify/Koa binding's session-binding.ts): how one request finds, waits
 * for, uses and ends its session, following the HTTP contract of session-manager.ts. A binding
 * extends this class with what is its own (the cookie it sends, the API it gives the application)
 * through three hooks: {@link RequestLifecycle.using}, {@link RequestLifecycle.sessionLost} and
 * {@link RequestLifecycle.ending}.
 *
 * 1. The cookie `<id>.<route>` names a session: `findSession`; not held here (BackupManager):
 *    `fetchSession`, then used as if found. A malformed or unknown id is never adopted.
 * 2. sessions.serialize (a writing request on a matching path): the session's lock first
 *    (session/request-queue.ts: enter, then serialStart once the turn is this request's; a full
 *    queue or a wait past serializeTimeoutMs makes the request `busy`: the adapter answers 503).
 * 3. Using it: `requestStarted`, the route re-homed (failover), then the take-over from another
 *    owner (`acquire`), or for a copy another node may have just changed, the input that came with
 *    the request (`inputHandled`). Invalidated meanwhile: the request goes on without it.
 * 4. The end (`finish`, once): `requestCompleted` / `readCompleted`, or `requestAbandoned` when
 *    the client went away while the request still waited (fetch, turn or take-over): then the
 *    request is `abandoned` and the application must not run. The lock passes on after that.
 *
 * A request that waits for nothing allocates nothing here (no promise, no closure): the waits'
 * continuations are made only on the paths that wait. A subclass, not a member object, so that a
 * request is one object; its methods are TypeScript-private rather than `#` methods, which would
 * give every request one more (brand) field.
 */
import { cookieIdPart, cookieNamesRoute, cookieRoute } from '../session/ids.js';
import { QUEUE_FULL, type SerialOutcome, type SerialRequest, type SerialWait } from '../session/request-queue.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session/session-manager.js';

export abstract class RequestLifecycle implements SerialRequest {
  /** The session this request uses: undefined until found or created, and after destroy(). */
  session: Session | undefined;
  /** The route the client's cookie named, when it is not this node's (failover; '' for none). */
  originalRoute: string | undefined;
  /**
   * Set while the request waits: for the session to be fetched, for its turn (sessions.serialize),
   * for the take-over from its owner, or for the input that came with it. The adapter runs the
   * application only once it resolved, and then only if the request is neither
   * {@link abandoned} nor {@link busy}.
   */
  ready: Promise<void> | undefined;
  /** Id of the session the request's cookie named and this node found (or fetched). */
  protected loadedId: string | undefined;
  /** requestStarted ran for `session` and its matching end has not. */
  #started = false;
  #finished = false;
  #abandoned = false;
  #busy = false;
  /** What the response waits for besides the replication (a synchronous invalidation, a new id). */
  #pending: Promise<void> | undefined;
  /** sessions.serialize: the session whose lock this request holds (released when it ends). */
  #locked: Session | undefined;
  /** sessions.serialize: this request's wait for its turn, while it waits. */
  #serialWait: SerialWait | undefined;
  /** The session cookie's value (`<id>.<route>`), kept for a request that waits for its turn. */
  #cookieValue = '';

  constructor(
    readonly manager: SessionManager,
    /** The path matches readOnlyFilter: the session may be read, not changed, created or taken over. */
    readonly readOnly: boolean,
  ) {}

  /** The request's path as the filters see it (sessions.serialize tests it). */
  protected abstract requestPath(): string;

  /**
   * The request begins using the session its cookie named (requestStarted ran; the take-over, if
   * any, is still to come). `rehomedFrom`: the route the cookie named when it is not this node's
   * (failover), else undefined.
   */
  protected abstract using(s: Session, rehomedFrom: string | undefined): void;

  /** The session the cookie named is gone before the application ran (invalidated meanwhile, or its wait ended without a turn). */
  protected abstract sessionLost(): void;

  /** The request ends with `s` in use (valid or not): last changes; returns whether its changes replicate (replicationFilter). */
  protected abstract ending(s: Session): boolean;

  /**
   * Steps 1–3 for the cookie's value, `undefined` when the request has no session cookie. Called
   * once, by the subclass's constructor, when its own fields are set.
   */
  protected open(value: string | undefined): void {
    if (value === undefined) return;
    const id = cookieIdPart(value);
    if (id === undefined) return;
    const now = Date.now();
    const manager = this.manager;
    const s = manager.findSession(id, now);
    if (s !== undefined) {
      this.onFound(s, value, now);
      return;
    }
    // Not held here (BackupManager): fetched from the members that hold it (the cookie's route
    // served it last: asked first), then used as if found here. A client gone meanwhile (finish()
    // ran) uses nothing.
    const fetching = manager.fetchSession?.(id, now, this.readOnly, cookieRoute(value));
    if (fetching !== undefined) this.ready = fetching.then((f) => this.onFetched(f, value));
  }

  private onFetched(f: Session | undefined, value: string): Promise<void> | undefined {
    this.ready = undefined;
    if (f === undefined || this.#finished) return undefined;
    this.onFound(f, value, Date.now());
    return this.ready;
  }

  /** The session the cookie (value `value`) names: waits for its turn (sessions.serialize), or uses it. */
  private onFound(s: Session, value: string, now: number): void {
    this.loadedId = s.id;
    const serialize = this.manager.config.serialize;
    if (serialize !== false && !this.readOnly && (serialize === true || serialize.test(this.requestPath()))) {
      // One request of the session at a time: wait for the lock (serialStart runs once it is ours).
      this.#cookieValue = value;
      const w = this.manager.serializer.enter(s, this);
      if (w === QUEUE_FULL) this.#busy = true;
      else if (w !== undefined) {
        this.#serialWait = w;
        this.ready = w.promise.then((outcome) => this.afterSerialWait(outcome));
      }
      return;
    }
    const wait = this.startUsing(s, value, now);
    if (wait !== undefined) this.ready = wait.then(() => this.afterWait(s));
  }

  /**
   * sessions.serialize: the session's lock is this request's now (see request-queue.ts). Begins
   * using the session; returns the take-over still to wait for, if any. Not for applications.
   */
  serialStart(s: Session): Promise<void> | undefined {
    this.#locked = s;
    return this.startUsing(s, this.#cookieValue, Date.now());
  }

  /** Begins using the session the cookie `value` named; returns what to wait for before the application runs. */
  private startUsing(s: Session, value: string, now: number): Promise<void> | undefined {
    const manager = this.manager;
    this.begin(s, now);
    let rehomedFrom: string | undefined;
    if (!cookieNamesRoute(value, manager.route)) this.originalRoute = rehomedFrom = cookieRoute(value);
    this.using(s, rehomedFrom);
    // Another node owns the session: take it over before the application runs (its last change
    // comes before the hand-over). Served from this node's copy instead (a read, or ownership
    // none) while another node may have just changed it: that change may have arrived with this
    // request, on a socket the kernel reported after this one; run once every ready socket was read.
    return (
      (this.readOnly ? undefined : manager.acquire(s)) ?? (manager.copyMayTrail(s) ? manager.inputHandled() : undefined)
    );
  }

  private afterWait(s: Session): void {
    this.ready = undefined;
    if (s.valid) return;
    // Invalidated meanwhile (on the owner, or by a message that came with this request): the
    // request goes on without it.
    this.drop(s);
    this.sessionLost();
  }

  /** sessions.serialize: the wait for the session's turn ended. */
  private afterSerialWait(outcome: SerialOutcome): void {
    this.#serialWait = undefined;
    this.ready = undefined;
    const s = this.session;
    if (outcome === 'go') {
      if (s !== undefined) this.afterWait(s);
      return;
    }
    // Waited too long (or the client went away): the application does not run; the session stays
    // where it is, and the lock passes on.
    if (s !== undefined && this.#started) {
      this.#started = false;
      this.manager.requestAbandoned(s);
      this.session = undefined;
      this.sessionLost();
    }
    this.unlock();
    if (outcome === 'timeout') this.#busy = true;
  }

  /** Passes the session's lock on (sessions.serialize), once. */
  private unlock(): void {
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

  /** The request ended before the application ran (its client went away while it waited): do not run it. */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /** finish() ran: the response has ended. */
  protected get finished(): boolean {
    return this.#finished;
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
    const done = this.endRequest();
    this.unlock(); // after the manager was told: a hand-over to a waiting member goes first
    return done;
  }

  private endRequest(): Promise<void> | undefined {
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
      this.manager.requestAbandoned(s);
      return pending;
    }
    let sent = this.completed(s, this.ending(s));
    // Ended with the turn's other responses, after the turn's replication batch (see batchResponses).
    if (sent === undefined && this.manager.config.batchResponses) sent = this.manager.turnWritten();
    return pending === undefined ? sent : sent === undefined ? pending : Promise.all([pending, sent]).then(() => {});
  }

  /** The request starts using `s` (a found or a new session). */
  protected begin(s: Session, now = Date.now()): void {
    this.session = s;
    this.#started = true;
    this.manager.requestStarted(s, now);
  }

  /** The request stops using `s` without replicating it (it was invalidated, or is replaced). */
  protected drop(s: Session): void {
    if (this.#started) {
      this.#started = false;
      this.completed(s, false);
    }
    this.session = undefined;
  }

  /** The response waits for `p` too (an invalidation, a new id, in synchronous mode). */
  protected waitFor(p: Promise<void> | undefined): void {
    if (p !== undefined)
      this.#pending = this.#pending === undefined ? p : Promise.all([this.#pending, p]).then(() => {});
  }

  /** Tells the manager this request is done with `s`; a read-only one changed nothing. */
  private completed(s: Session, replicate: boolean): Promise<void> | undefined {
    if (!this.readOnly) return this.manager.requestCompleted(s, replicate);
    this.manager.readCompleted(s);
    return undefined;
  }
}

/** The path of a request URL (no query string): what the session filters test. */
export function requestPath(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
