/**
 * The sessions a manager holds on this node, and what their bookkeeping needs: ids (fresh ones
 * never reuse a held or lately ended id), tombstones (an ended session's id, kept for
 * tombstoneTtlMs so that a late message cannot bring it back), copies made from what members sent
 * (bounded by maxReplicaSessions), capacity (maxActiveSessions) and the expiry rules. No policy:
 * which node holds what, and what is sent, is the manager's.
 */
import type { SessionConfig } from '../config/session-config.js';
import { ClusterError, ErrorCode } from '../core/errors.js';
import type { Counter } from './counters.js';
import { Forks } from './forks.js';
import { newSessionId } from './ids.js';
import { Session, type SessionOwner } from './session.js';

export class SessionStore {
  /** Every session held here, by id (sessions of this node and copies). */
  readonly sessions = new Map<string, Session>();
  /** Ids of sessions ended lately → when the tombstone may be forgotten (ms). */
  readonly tombstones = new Map<string, number>();
  /** Where the copies forked from members apart (rejoin merges tell concurrent writes by it). */
  readonly forks = new Forks();
  /** Sessions held as copies (made from what a member sent): bounded by maxReplicaSessions. */
  readonly #replicas = new WeakSet<Session>();
  #replicaCount = 0;

  constructor(
    private readonly config: SessionConfig,
    private readonly counters: Record<Counter, number>,
    private readonly owner: SessionOwner,
  ) {}

  /** How many of the sessions are copies. */
  get replicaCount(): number {
    return this.#replicaCount;
  }

  /** An id neither held nor ended lately: `wanted` if it is one, else a fresh one. */
  freshId(wanted?: string): string {
    let id = wanted ?? newSessionId();
    while (this.sessions.has(id) || this.tombstones.has(id)) id = newSessionId();
    return id;
  }

  /** Whether `id` is held or ended lately (a tombstone). */
  taken(id: string): boolean {
    return this.sessions.has(id) || this.tombstones.has(id);
  }

  /**
   * @throws ClusterError TOO_MANY_SESSIONS when maxActiveSessions is reached (counted): it counts
   * the sessions created here, not the copies (maxReplicaSessions bounds those), so a flood on one
   * node cannot stop creation elsewhere.
   */
  checkCapacity(): void {
    const max = this.config.maxActiveSessions;
    if (max >= 0 && this.sessions.size - this.#replicaCount >= max) {
      this.counters.rejectedSessions++;
      throw new ClusterError(
        ErrorCode.TOO_MANY_SESSIONS,
        `too many active sessions (maxActiveSessions ${this.config.maxActiveSessions}): try again later`,
      );
    }
  }

  /** A new session of this node (its owner `localId`), held. */
  createLocal(id: string, now: number, localId: string): Session {
    const s = new Session(id, now, now, this.config.maxInactiveInterval, this.owner);
    s.primary = true;
    s.ownerId = localId;
    this.sessions.set(id, s);
    this.counters.sessionsCreated++;
    return s;
  }

  /** Whether another copy fits (maxReplicaSessions). */
  get replicaRoom(): boolean {
    const max = this.config.maxReplicaSessions;
    return max < 0 || this.#replicaCount < max;
  }

  /** A copy of a session made on another node, held (the caller checked {@link replicaRoom}). */
  createReplica(id: string, created: number, accessed: number, maxInactive: number): Session {
    const s = new Session(id, created, accessed, maxInactive, this.owner);
    s.announced = true;
    s.isNew = false;
    this.sessions.set(id, s);
    this.#replicas.add(s);
    this.#replicaCount++;
    return s;
  }

  /**
   * The session a replication message is about: undefined if unknown here, null if it ended
   * lately (counted as stale).
   */
  forMessage(id: string): Session | undefined | null {
    // (size first: most of the time there is no tombstone, and a lookup hashes the fresh id string)
    if (this.tombstones.size > 0 && this.tombstones.has(id)) {
      this.counters.staleDeltas++;
      return null;
    }
    return this.sessions.get(id);
  }

  /** Forgets `s` and leaves its tombstone. */
  remove(s: Session): void {
    this.sessions.delete(s.id);
    if (this.#replicas.delete(s)) this.#replicaCount--;
    this.tombstone(s.id);
  }

  /** Forgets a copy without a tombstone (it lives on on other nodes; a later copy may come back). */
  forget(s: Session): void {
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    if (this.#replicas.delete(s)) this.#replicaCount--;
  }

  /** Holds `s` under `newId` from now on; its old id gets a tombstone. */
  rename(s: Session, newId: string): void {
    const old = s.id;
    this.sessions.delete(old);
    this.tombstone(old);
    s.id = newId;
    this.sessions.set(newId, s);
  }

  tombstone(id: string): void {
    this.tombstones.set(id, Date.now() + this.config.tombstoneTtlMs);
  }

  /** Forgets the tombstones older than tombstoneTtlMs. */
  forgetTombstones(now: number): void {
    for (const [id, until] of this.tombstones) if (until <= now) this.tombstones.delete(id);
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /** Whether `s`, idle and not in use, has outlived its timeout here ({@link expiresAfter}). */
  expired(s: Session, now: number): boolean {
    if (s.maxInactiveInterval <= 0 || s.active > 0) return false;
    return s.idleMs(now) >= this.expiresAfter(s, s.maxInactiveInterval * 1000);
  }

  /**
   * Idle time after which `s` has expired here: maxInactiveInterval on the node that served it
   * last (the primary); twice that on a copy (Tomcat's rule: a copy learns of use elsewhere only
   * through "accessed" messages, and must outlive a primary that crashed only as a safety net).
   */
  expiresAfter(s: Session, max: number): number {
    return s.primary ? max : Math.max(2 * max, max + this.accessedInterval(s) + 1000);
  }

  /** How often a read-only use of `s` is told to the others: a quarter of its own timeout, at most the configured interval. */
  accessedInterval(s: Session): number {
    const own =
      s.maxInactiveInterval > 0 ? Math.max(100, (s.maxInactiveInterval * 1000) / 4) : this.config.accessedIntervalMs;
    return Math.min(this.config.accessedIntervalMs, own);
  }
}
