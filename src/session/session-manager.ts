/**
 * What the HTTP layer (the route binder and replication valve, src/http/) needs of a session
 * manager, so that it works the same with every manager: the DeltaManager (every node holds every
 * session) and the BackupManager (1 + k nodes hold each). src/http/ imports this interface only,
 * never a concrete manager. Route re-homing lives above this contract: a request at node B whose
 * cookie names node A finds the session through `findSession`, is served at B, and gets its
 * cookie re-issued with `route` (B); `req.session.originalRoute` keeps A.
 *
 * ## The HTTP contract: which calls, in which order (src/http/request-session.ts)
 *
 * Per request, for one session `s` (docs/architecture.md, "The HTTP contract"):
 *
 * 1. Before serving: nothing until `ready` (the adapter answers 503, or waits for `'ready'`).
 * 2. The cookie names an id: `findSession(id, now)`. Undefined → the request goes on without a
 *    session (an unknown id is never adopted). Found → `requestStarted(s, now)` at once, then
 *    - cookie route ≠ `route`: the cookie is re-issued (a read-only request only when
 *      `servesRoute(oldRoute)` is false);
 *    - a writing request: `acquire(s)`; a read-only one, or when `acquire` returned undefined:
 *      `copyMayTrail(s)` and if true `inputHandled()`. The application runs only once that
 *      promise resolved (and `s.valid` is checked again).
 *    With `sessions.serialize` on a writing path, step 2 runs behind the session's lock: first
 *    `serializer.enter(s, request)` (undefined: the lock is free and taken; QUEUE_FULL: answer 503;
 *    else a wait whose outcome is the turn or a timeout → 503), and once the lock is the
 *    request's, `requestStarted` and `acquire` as above; `serializer.leave(s)` when the request
 *    ends (after step 5's call), `serializer.abort(wait)` when the client left while queued.
 * 3. No session and the application writes (or saveUninitialized): `createSession(now, wanted)`
 *    then `requestStarted(s, now)`. `createSession` throws TOO_MANY_SESSIONS when full.
 * 4. While the application runs: `replicate(s)` on `req.session.save()`;
 *    `changeSessionId(s)` on `regenerate({ keep: true })`; `s.invalidate()` (which calls the
 *    manager's `invalidate(s)`) on `destroy()` / `regenerate()`, then `requestCompleted(s, false)`
 *    ends this request's use of it. The promises returned are awaited before the response ends.
 * 5. The response ends, exactly one of:
 *    - `requestAbandoned(s)`: the client left while step 2 was still waiting (nothing ran);
 *    - `readCompleted(s)`: a read-only request (readOnlyFilter);
 *    - `requestCompleted(s, replicate)`: any other (`replicate` false on a replicationFilter path).
 *    When it returns undefined and `config.batchResponses` is on, the response waits for
 *    `turnWritten()` (the turn's replication batch is on the wire first); a promise it returns
 *    (synchronous mode) is awaited instead.
 *
 * Every `requestStarted` is matched by exactly one of step 5's calls (or `requestCompleted(s,
 * false)` in step 4): `s.active` counts the requests using `s`, and expiry, hand-over and
 * take-over rely on it. The express-session store (src/http/express-session-store.ts) follows
 * the same rules through `createSessionWithId`, `endedLately`, `sessions` and `localId`.
 */
import type { SessionConfig } from '../config/session-config.js';
import type { RequestQueue } from './request-queue.js';
import type { Session } from './session.js';

export interface SessionManager {
  /** The application's session settings (cookie name, filters, send mode…). */
  readonly config: SessionConfig;
  /** True once the node may serve (its state transfer ended). */
  readonly ready: boolean;
  /** Calls `listener` once the node may serve (when `ready` turns true). */
  once(event: 'ready', listener: () => void): unknown;
  /** This node's route (jvmRoute): the suffix of the session cookies it issues. */
  readonly route: string;
  /** This node's member id: the owner id of the sessions it serves. */
  readonly localId: string;
  /** Every session held on this node, by id (read only: the manager adds and removes). */
  readonly sessions: ReadonlyMap<string, Session>;
  /** Whether `route` is this node's or a live member's (a read-only request keeps such a cookie). */
  servesRoute(route: string): boolean;
  /** The valid session with this id, from wherever the manager keeps it; undefined if none (an expired one ends here). */
  findSession(id: string, now?: number): Session | undefined;
  /**
   * A session this node does not hold, fetched from the members that do (the BackupManager; a
   * manager holding every session has no such method). Called when {@link findSession} found
   * nothing; resolves with the session (held here now, then used like a found one: acquire…), or
   * undefined when no member holds it. Undefined at once when there is nothing to ask. `readOnly`:
   * the request only reads it (sessions.readOnlyFilter) and will not take it over. `route`: the
   * cookie's route suffix (the node that served the session last): its likely holders are asked first.
   */
  fetchSession?(id: string, now?: number, readOnly?: boolean, route?: string): Promise<Session | undefined> | undefined;
  /**
   * A new session; `wanted`: an unused id this node generated earlier (a `req.sessionID` read
   * before the session existed). @throws ClusterError TOO_MANY_SESSIONS at maxActiveSessions.
   */
  createSession(now?: number, wanted?: string): Session;
  /** sessions.serialize: the per-session request locks of this node (request-queue.ts). */
  readonly serializer: RequestQueue;
  /** A new session under an id server code generated (express-session's genid); undefined when malformed, held or ended lately. */
  createSessionWithId(id: string, now?: number): Session | undefined;
  /** Whether a session with this id ended lately (its tombstone): it must not be created again. */
  endedLately(id: string): boolean;
  /** Before a request uses `s`: a wait while it is taken over from another node, else undefined. */
  acquire(s: Session): Promise<void> | undefined;
  /** Whether this node's copy of `s` may trail a change another node just made (then wait for {@link inputHandled}). */
  copyMayTrail(s: Session): boolean;
  /** Resolves once the input that was ready with the current request was handled. */
  inputHandled(): Promise<void>;
  /** Resolves once this event-loop turn's replication was written. */
  turnWritten(): Promise<void>;
  /** A request starts using `s` (counted in `s.active`; its last access is `now`). */
  requestStarted(s: Session, now?: number): void;
  /** The request ended: replicates what changed (a promise in synchronous mode). Never throws. */
  requestCompleted(s: Session, replicate?: boolean, now?: number): Promise<void> | undefined;
  /** A read-only request ended: nothing replicates, the owner stays; in-place changes are dropped (counted). */
  readCompleted(s: Session, now?: number): void;
  /** A request that waited for `s` ends before it used it (its client left): it claims nothing. */
  requestAbandoned(s: Session): void;
  /** Sends what changed now (req.session.save()). */
  replicate(s: Session, now?: number): Promise<void> | undefined;
  /** Ends `s` here and on the nodes holding it (what `s.invalidate()` calls). */
  invalidate(s: Session): Promise<void> | undefined;
  /** A new id for the same data (regenerate), replicated. */
  changeSessionId(s: Session): { id: string; sent: Promise<void> | undefined };
}
