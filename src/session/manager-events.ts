/**
 * The events of a session manager (every manager emits the same ones): session and attribute
 * listeners (Tomcat's HttpSessionListener and HttpSessionAttributeListener), conflicts, ready.
 * `replicated` is true when another node made the change (reported with
 * sessions.notifyListenersOnReplication).
 */
import type { Session } from './session.js';

/** Why a session ended. */
export type DestroyReason = 'invalidated' | 'expired' | 'replaced';

/** A write to the same attribute on two nodes that did not see each other's change. */
export interface ConflictInfo {
  readonly sessionId: string;
  readonly attribute: string;
  /** Node ids of the two writers; `winner` is the one whose value every node keeps. */
  readonly local: string;
  readonly remote: string;
  readonly winner: string;
}

export interface SessionManagerEvents {
  sessionCreated: [session: Session, replicated: boolean];
  sessionDestroyed: [session: Session, reason: DestroyReason, replicated: boolean];
  attributeAdded: [session: Session, name: string, value: unknown, replicated: boolean];
  attributeReplaced: [session: Session, name: string, value: unknown, replicated: boolean];
  attributeRemoved: [session: Session, name: string, replicated: boolean];
  conflict: [info: ConflictInfo];
  /** The node can serve: state transfer finished (or there was nobody to ask). */
  ready: [];
}
