/**
 * The events of a session manager (every manager emits the same ones): session and attribute
 * listeners (Tomcat's HttpSessionListener and HttpSessionAttributeListener), conflicts, ready.
 * `replicated` is true when another node made the change (reported with
 * sessions.notifyListenersOnReplication).
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from '../core/logger.js';
import { COOKIE_ATTRIBUTE } from './cookie-meta.js';
import type { Counter } from './counters.js';
import { Attribute, type Session } from './session.js';

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

/**
 * Tells the attribute listeners of `em` (none for the cookie's internal attribute). `value` is
 * the value set locally, or the Attribute a member wrote (decoded only when a listener exists).
 */
export function notifyAttribute(
  em: EventEmitter<SessionManagerEvents>,
  s: Session,
  name: string,
  kind: 'added' | 'replaced' | 'removed',
  value: unknown,
  replicated: boolean,
): void {
  const event = kind === 'added' ? 'attributeAdded' : kind === 'replaced' ? 'attributeReplaced' : 'attributeRemoved';
  if (em.listenerCount(event) === 0 || name === COOKIE_ATTRIBUTE) return; // internal: not the application's

  if (kind === 'removed') em.emit('attributeRemoved', s, name, replicated);
  else {
    const v = value instanceof Attribute ? s.getAttribute(name) : value;
    em.emit(event as 'attributeAdded', s, name, v, replicated);
  }
}

/**
 * Two writes to the same attribute on two nodes, neither having seen the other: counted, and
 * reported to the 'conflict' listeners (or, without any, logged every 100th time).
 */
export function reportConflict(
  em: EventEmitter<SessionManagerEvents>,
  counters: Record<Counter, number>,
  logger: Logger,
  s: Session,
  name: string,
  localWriter: string,
  remoteWriter: string,
  incomingWins: boolean,
): void {
  counters.conflicts++;
  if (em.listenerCount('conflict') > 0) {
    em.emit('conflict', {
      sessionId: s.id,
      attribute: name,
      local: localWriter,
      remote: remoteWriter,
      winner: incomingWins ? remoteWriter : localWriter,
    });
  } else if (counters.conflicts % 100 === 1) {
    logger.warn(
      { session: s.id.slice(0, 8), attribute: name, conflicts: counters.conflicts },
      'concurrent writes to the same session attribute on two nodes (the newer write wins; add a "conflict" listener to handle it)',
    );
  }
}
