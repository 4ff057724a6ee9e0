/**
 * What the HTTP layer (the route binder and replication valve, src/http/) needs of a session
 * manager, so that it works the same with every manager: the DeltaManager (every node holds every
 * session) and the BackupManager to come. Route re-homing lives above this contract: a request at
 * node B whose cookie names node A finds the session through `findSession`, is served at B, and
 * gets its cookie re-issued with `route` (B); `req.session.originalRoute` keeps A.
 */
import type { SessionConfig } from '../config/session-config.js';
import type { Session } from './session.js';

export interface SessionManager {
  /** The application's session settings (cookie name, filters, send mode…). */
  readonly config: SessionConfig;
  /** True once the node may serve (its state transfer ended). */
  readonly ready: boolean;
  /** This node's route (jvmRoute): the suffix of the session cookies it issues. */
  readonly route: string;
  /** Whether `route` is this node's or a live member's (a read-only request keeps such a cookie). */
  servesRoute(route: string): boolean;
  /** The valid session with this id, from wherever the manager keeps it; undefined if none. */
  findSession(id: string, now?: number): Session | undefined;
  /**
   * A session this node does not hold, fetched from the members that do (the BackupManager; a
   * manager holding every session has no such method). Called when {@link findSession} found
   * nothing; resolves with the session (held here now, then used like a found one: acquire…), or
   * undefined when no member holds it. Undefined at once when there is nothing to ask. `readOnly`:
   * the request only reads it (sessions.readOnlyFilter) and will not take it over.
   */
  fetchSession?(id: string, now?: number, readOnly?: boolean): Promise<Session | undefined> | undefined;
  /** A new session; `wanted`: an unused id this node generated earlier (a `req.sessionID` read before the session existed). */
  createSession(now?: number, wanted?: string): Session;
  /** Before a request uses `s`: a wait while it is taken over from another node, else undefined. */
  acquire(s: Session): Promise<void> | undefined;
  /** Whether this node's copy of `s` may trail a change another node just made. */
  copyMayTrail(s: Session): boolean;
  /** Resolves once the input that was ready with the current request was handled. */
  inputHandled(): Promise<void>;
  /** Resolves once this event-loop turn's replication was written. */
  turnWritten(): Promise<void>;
  requestStarted(s: Session, now?: number): void;
  /** The request ended: replicates what changed (a promise in synchronous mode). */
  requestCompleted(s: Session, replicate?: boolean, now?: number): Promise<void> | undefined;
  readCompleted(s: Session, now?: number): void;
  requestAbandoned(s: Session): void;
  /** Sends what changed now (req.session.save()). */
  replicate(s: Session, now?: number): Promise<void> | undefined;
  /** A new id for the same data (regenerate), replicated. */
  changeSessionId(s: Session): { id: string; sent: Promise<void> | undefined };
}
