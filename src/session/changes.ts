/**
 * What the end of a request tells the members about a session (the same under every manager):
 * the whole session the first time (CREATED), then the changed attributes only (DELTA), else a
 * rate-limited ACCESSED. Building the message stamps the session (merge.ts), so it is built only
 * when it will be sent; objects changed in place are found first.
 */
import type { Logger } from '../core/logger.js';
import type { Counter } from './counters.js';
import { stamp, stampAlone } from './merge.js';
import { accessedMsg, type ChangeMsg, createdOf, deltaOf } from './message-builders.js';
import type { AccessedMsg } from './message-readers.js';
import type { Session } from './session.js';
import type { SessionStore } from './session-store.js';

export class Changes {
  constructor(
    private readonly contextName: string,
    /** This node (its id is the writer of the stamps; the channel's local member exists once it started). */
    private readonly node: { readonly localId: string },
    private readonly store: SessionStore,
    private readonly counters: Record<Counter, number>,
    private readonly logger: Logger,
  ) {}

  /**
   * The message telling the members what changed in `s` (stamping it, counting the replication;
   * the outbound path counts its bytes), or undefined when nothing changed and an ACCESSED went
   * out less than accessedInterval ago.
   */
  message(s: Session, now: number): ChangeMsg | undefined {
    this.reportInPlaceErrors(s);
    let message: ChangeMsg;
    this.store.forks.touch(s);
    if (!s.announced) {
      message = createdOf(this.contextName, s, stamp(s, this.node.localId));
      s.announced = true;
    } else if (s.dirty !== undefined || s.maxInactiveDirty) {
      const base = s.version;
      // Listed once, stamped, then the message's names (two walks of the Set cost two iterators).
      const changed = s.dirty === undefined ? undefined : [...s.dirty];
      const maxInactive = s.maxInactiveDirty ? s.maxInactiveInterval : null;
      message = deltaOf(this.contextName, s, base, stamp(s, this.node.localId, changed), changed, maxInactive);
    } else {
      return this.accessed(s, now, false);
    }
    s.accessReplicatedAt = now;
    this.counters.replications++;
    return message;
  }

  /**
   * The ACCESSED message for `s` (`readOnly`: the sender did not take it over), or undefined when
   * one was sent less than accessedInterval ago.
   */
  accessed(s: Session, now: number, readOnly: boolean): AccessedMsg | undefined {
    if (now - s.accessReplicatedAt < this.store.accessedInterval(s)) return undefined;
    s.accessReplicatedAt = now;
    this.counters.accessedSent++;
    return accessedMsg(this.contextName, s.id, now, readOnly);
  }

  /** Nobody to tell: the stamps move on as if the changes had been sent (a later member gets them by transfer). */
  alone(s: Session): void {
    this.reportInPlaceErrors(s);
    this.store.forks.touch(s);
    stampAlone(s, this.node.localId);
  }

  /**
   * A read-only request (sessions.readOnlyFilter) ended: objects it changed in place are dropped,
   * counted and logged (this node's copy must stay what the owner replicated).
   */
  discardReadOnly(s: Session): void {
    const dropped = s.discardInPlaceChanges();
    if (dropped === undefined) return;
    if (this.counters.readOnlyChangesDiscarded % 100 === 0) {
      this.logger.warn(
        { session: s.id.slice(0, 8), attributes: dropped, discarded: this.counters.readOnlyChangesDiscarded + 1 },
        'a read-only request (sessions.readOnlyFilter) changed session objects in place; the changes were discarded',
      );
    }
    this.counters.readOnlyChangesDiscarded += dropped.length;
  }

  /** Finds objects changed in place; one that can no longer be encoded is logged, its last value stays. */
  reportInPlaceErrors(s: Session): void {
    const errors = s.detectInPlaceChanges();
    if (errors) {
      for (const [name, err] of errors) {
        this.counters.unencodable++;
        this.logger.error(
          { session: s.id.slice(0, 8), attribute: name, err: err.message },
          'session attribute changed in place into something that cannot be replicated; the previous value stays replicated',
        );
      }
    }
  }
}
