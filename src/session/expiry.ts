/**
 * How sessions end, the same under every manager: idle ones expire (the periodic sweep every
 * processExpiresFrequency, and a lookup that finds one past its time), requests invalidate them.
 * A session this node served last (primary) ends everywhere (EXPIRED to the members that hold it,
 * after what requests changed); a copy nobody refreshed ends here, silently. Either way it leaves
 * a tombstone (session-store.ts), so a late message cannot revive it, and `sessionDestroyed` fires.
 */
import type { Member } from '../channel/types.js';
import type { SessionConfig } from '../config/session-config.js';
import type { Counter } from './counters.js';
import { type EndReason, expiredMsg } from './message-builders.js';
import type { Outbound } from './outbound.js';
import type { Session } from './session.js';
import type { SessionStore } from './session-store.js';

/** What expiry needs of its manager. */
export interface ExpiryHost {
  readonly config: SessionConfig;
  /** Who holds `s` besides this node (the manager's recipients of its changes). */
  holders(s: Session): readonly Member[];
  /** `s` ended (listeners: `sessionDestroyed`); `replicated`: another node decided it. */
  destroyed(s: Session, reason: EndReason, replicated: boolean): void;
  /** Runs with every sweep, after the sessions (forgets what waits too long). */
  swept(now: number): void;
}

export class Expiry {
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: ExpiryHost,
    private readonly store: SessionStore,
    private readonly out: Outbound,
    private readonly counters: Record<Counter, number>,
  ) {}

  /** Sweeps every processExpiresFrequency seconds until {@link stop}. */
  start(): void {
    this.#timer = setInterval(() => this.sweep(Date.now()), this.host.config.processExpiresFrequency * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * Expires idle sessions: a session this node served last (primary) expires everywhere after
   * maxInactiveInterval; a copy that nobody refreshed expires here, silently, after twice that
   * (a safety net for a primary that crashed). Also forgets old tombstones.
   */
  sweep(now: number): void {
    for (const s of this.store.sessions.values())
      if (this.store.expired(s, now)) this.end(s, 'expired', s.primary, false);
    this.store.forgetTombstones(now);
    this.host.swept(now);
  }

  /** Whether `s`, found for a request, has expired (and ends it now). */
  expiredOnLookup(s: Session, now: number): boolean {
    if (s.maxInactiveInterval <= 0 || s.active !== 0) return false;
    // A copy learns of use elsewhere at most every accessedIntervalMs: allow for that lag.
    if (s.idleMs(now) < this.store.expiresAfter(s, s.maxInactiveInterval * 1000)) return false;
    this.end(s, 'expired', s.primary, false);
    return true;
  }

  /**
   * Ends `s` here; with `broadcast`, on its holders too (in synchronous mode the promise resolves
   * once they all dropped it). `replicated` says whether another node decided it.
   */
  end(s: Session, reason: EndReason, broadcast: boolean, replicated: boolean): Promise<void> | undefined {
    if (!s.valid) return undefined;
    if (broadcast) this.out.flush(); // what requests changed goes before the end (listeners see both)
    s.valid = false;
    this.store.remove(s);
    if (reason === 'expired') this.counters.sessionsExpired++;
    else this.counters.sessionsInvalidated++;
    let sent: Promise<void> | undefined;
    if (broadcast && s.announced) {
      const members = this.host.holders(s);
      if (members.length > 0)
        sent = this.out.send(members, expiredMsg(this.host.config.name, s.id, reason), this.out.sync);
    }
    this.host.destroyed(s, reason, replicated);
    return sent;
  }
}
