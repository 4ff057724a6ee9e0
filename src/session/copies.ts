/**
 * This node's copies of sessions other nodes serve: what members send about them is applied here
 * (after inbound.ts checked it), the same way under every manager. A write applies by stamps
 * (merge.ts); a session first seen through a delta is asked for whole (SESSION_REQUEST, a
 * "repair"); a record (state transfer, repair) merges; a write of a fenced owner, a version too
 * far ahead or a session past maxReplicaSessions is refused and counted; an ended session's
 * tombstone keeps late messages from reviving it. Which members a node copies from, and whom it
 * sends to, is the manager's policy.
 */
import type { Member } from '../channel/types.js';
import type { SessionConfig } from '../config/session-config.js';
import type { Logger } from '../core/logger.js';
import type { Counter, Refusals } from './counters.js';
import { type FencingHost, isFenced, onTaken } from './fencing.js';
import { applyWrites, mergeRecord, type WriteEvents } from './merge.js';
import { type EndReason, sessionDataMsg, sessionRequestMsg } from './message-builders.js';
import {
  type AccessedMsg,
  type CreatedMsg,
  type DeltaMsg,
  type ExpiredMsg,
  type IdChangedMsg,
  type Refused,
  readRecord,
  readTombstones,
  receivedValues,
  type SessionRequestMsg,
  type TakenMsg,
  tooFarAhead,
} from './message-readers.js';
import type { SessionRecord } from './messages.js';
import type { Outbound } from './outbound.js';
import type { Session } from './session.js';
import type { SessionStore } from './session-store.js';
import { toRecord } from './state-donor.js';

/** What the copies need of their manager. */
export interface CopiesHost extends WriteEvents {
  readonly contextName: string;
  readonly config: SessionConfig;
  /** A session new here was made from what a member sent ('sessionCreated', replicated). */
  copied(s: Session): void;
  /** Another node ended `s` (or a donor's tombstone did): it ends here, without telling anyone. */
  ended(s: Session, reason: EndReason): void;
  /** Runs the hand-overs waiting for `s` (ownership.ts). */
  handOver(s: Session): void;
  /** Counts a refusal; true when `r` is the message itself (inbound.ts). */
  ok<T>(r: T | Refused, from: Member): r is T;
  malformed(from: Member, why: string): void;
}

export class Copies {
  /** Sessions asked for in full (SESSION_REQUEST) and not yet received: whom, and when. */
  readonly #repairing = new Map<string, { from: string; at: number }>();
  readonly #fencing: FencingHost;

  constructor(
    private readonly host: CopiesHost,
    private readonly store: SessionStore,
    private readonly out: Outbound,
    private readonly counters: Record<Counter, number>,
    private readonly refusals: Refusals,
    logger: Logger,
  ) {
    this.#fencing = {
      get localId() {
        return host.localId;
      },
      logger,
      count: (counter, by) => {
        this.counters[counter] += by;
      },
      handOver: (s) => host.handOver(s),
      repair: (s, from) => this.#repair(s.id, from, Date.now()),
    };
  }

  onCreated(m: CreatedMsg, from: Member): void {
    const id = m[2];
    const version = m[5];
    const incoming = receivedValues(m[7], false); // checked whole before anything is applied
    const now = Date.now();
    let s = this.store.forMessage(id);
    if (s === null) return;
    if (s === undefined) {
      s = this.#newReplica(id, m[3], now, m[4], from);
      if (s === undefined) return;
      this.host.copied(s);
    } else if (this.#tooFarAhead(version, s, from) || this.#fenced(s, from, -1)) return;
    this.store.forks.touch(s);
    applyWrites(this.host, s, version, -1, from.id, m[6], incoming, [], now);
  }

  onDelta(m: DeltaMsg, from: Member): void {
    const id = m[2];
    const version = m[4];
    const maxInactive = m[8];
    const incoming = receivedValues(m[6], false);
    const now = Date.now();
    let s = this.store.forMessage(id);
    if (s === null) return;
    if (s === undefined) {
      // A delta for a session we never saw whole (we missed its creation, e.g. while membership
      // was forming): keep what it carries and ask the sender for the rest.
      s = this.#newReplica(id, now, now, this.host.config.maxInactiveInterval, from);
      if (s === undefined) return;
      this.#repair(id, from, now);
    } else if (this.#tooFarAhead(version, s, from) || this.#fenced(s, from, m[3])) return;
    // null: unchanged (-1 is a real value: never expire).
    if (maxInactive !== null && version > s.version) s.maxInactiveInterval = maxInactive;
    this.store.forks.touch(s);
    applyWrites(this.host, s, version, m[3], from.id, m[5], incoming, m[7], now);
  }

  onAccessed(m: AccessedMsg, from: Member): void {
    const s = this.store.sessions.get(m[2]);
    if (s === undefined) return;
    // Never later than now: a time in the future would keep the session from expiring.
    s.lastAccessedTime = Math.max(s.lastAccessedTime, Math.min(m[3], Date.now()));
    // A read-only request (m[4]) left the session with its owner; any other access took it —
    // except one of an owner fenced since (fencing.ts): it may be from the request that lost it.
    if (s.active <= 0 && m[4] !== true && s.fence?.owner !== from.id) {
      s.ownerId = from.id;
      s.primary = false;
    }
  }

  /** EXPIRED: only for a session held here (one invalidated here already is no news: not counted). */
  onExpired(m: ExpiredMsg, from: Member): void {
    const s = this.store.sessions.get(m[2]);
    if (s !== undefined) this.host.ended(s, m[3] === 'invalidated' ? 'invalidated' : 'expired');
    else if (!this.store.tombstones.has(m[2])) this.refusals.refuse('refusedExpired', from, 'an unknown session');
  }

  /** ID_CHANGED: only from an id held here, to one neither held nor invalidated here. */
  onIdChanged(m: IdChangedMsg, from: Member): void {
    const oldId = m[2];
    const newId = m[3];
    const s = this.store.sessions.get(oldId);
    if (s === undefined || this.store.taken(newId)) {
      if (s !== undefined || !this.store.tombstones.has(oldId))
        this.refusals.refuse('refusedIdChanges', from, 'an id change from an unknown id or to a taken one');
      return;
    }
    this.store.rename(s, newId);
    s.primary = false;
  }

  /** SESSION_REQUEST: a member missed a session's creation; it gets the whole session. */
  onSessionRequest(m: SessionRequestMsg, from: Member): void {
    const s = this.store.sessions.get(m[2]);
    if (s?.valid && s.announced) {
      this.out.flush(); // the record's stamps must cover its values
      void this.out.send([from], sessionDataMsg(this.host.contextName, toRecord(s)), false);
    }
  }

  /** SESSION_DATA: taken only as the answer of the member this node asked, for the session asked. */
  onSessionData(r: SessionRecord, from: Member): void {
    const asked = this.#repairing.get(r[0]);
    if (asked === undefined || asked.from !== from.id) {
      this.refusals.refuse('refusedSessionData', from, 'session data this node did not ask that member for');
      return;
    }
    this.#repairing.delete(r[0]);
    // The copy it completes was dropped since (released, or handed over by a BackupManager that
    // is no holder of it, or renamed): the answer would bring back a copy naming whoever served
    // it then, maybe this node, which would serve that old value without asking anyone.
    if (!this.store.sessions.has(r[0])) return;
    this.#takeRecord(r, from, Date.now());
  }

  /** TAKEN: another node took a session over from an owner that did not hand it over (fencing.ts). */
  onTaken(m: TakenMsg, from: Member): void {
    if (m[3] === from.id) {
      this.host.malformed(from, 'a take-over from itself');
      return;
    }
    const s = this.store.forMessage(m[2]);
    if (s == null || this.#tooFarAhead(m[4], s, from)) return; // not held here: nothing to fence
    onTaken(this.#fencing, s, m, from);
  }

  /** Forgets repairs asked before `asked` (ms): an answer lost with its sender is not awaited for ever (a later one is refused, counted). */
  forgetRepairs(asked: number): void {
    for (const [id, r] of this.#repairing) if (r.at <= asked) this.#repairing.delete(id);
  }

  /** A write of an owner fenced since it was made (fencing.ts): refused as stale, counted. */
  #fenced(s: Session, from: Member, base: number): boolean {
    if (!isFenced(s, from.id, base)) return false;
    this.refusals.refuse('fencedWrites', from, 'a write of an owner whose session was taken over since (stale)');
    return true;
  }

  /** Asks `from` for the whole session `id` (SESSION_REQUEST), unless already asked. */
  #repair(id: string, from: Member, now: number): void {
    if (this.#repairing.has(id)) return;
    this.#repairing.set(id, { from: from.id, at: now });
    this.counters.repairs++;
    void this.out.send([from], sessionRequestMsg(this.host.contextName, id), false);
  }

  /** A version too far ahead of this node's copy (message-readers.ts): refused, counted. */
  #tooFarAhead(version: number, s: Session, from: Member): boolean {
    if (!tooFarAhead(version, s.version)) return false;
    this.refusals.refuse('refusedVersion', from, `a version ${version - s.version} ahead of this node's copy`);
    return true;
  }

  /**
   * A copy of a session made on another node; undefined (refused, counted) when this node holds
   * maxReplicaSessions copies already. The sender is not told: its replication succeeded as far
   * as it can see, and this node simply does not hold that session.
   */
  #newReplica(id: string, created: number, accessed: number, maxInactive: number, from: Member): Session | undefined {
    if (!this.store.replicaRoom) {
      const max = this.host.config.maxReplicaSessions;
      this.refusals.refuse('refusedReplicaLimit', from, `this node holds maxReplicaSessions (${max}) copies`);
      return undefined;
    }
    return this.store.createReplica(id, created, accessed, maxInactive);
  }

  // ---- state transfer -------------------------------------------------------------------------

  /** The donor's tombstones (end of a state transfer): those sessions must not live on here. */
  applyTombstones(list: unknown): void {
    const ids = readTombstones(list, () => this.refusals.refuse('malformedIds', undefined, 'a tombstone id'));
    for (const id of ids) {
      this.store.tombstone(id);
      const gone = this.store.sessions.get(id);
      if (gone !== undefined) this.host.ended(gone, 'invalidated');
    }
  }

  /**
   * Checks and applies one whole session (state transfer or repair), merging by stamps; returns
   * its value bytes (0 when refused, counted).
   */
  applyRecord(raw: unknown, from: Member, now: number): number {
    const r = readRecord(raw);
    if (!this.host.ok(r, from)) return 0;
    try {
      return this.#takeRecord(r, from, now);
    } catch (err) {
      this.host.malformed(from, (err as Error).message); // a value that does not decode: nothing applied
      return 0;
    }
  }

  #takeRecord(r: SessionRecord, from: Member, now: number): number {
    const id = r[0];
    if (this.store.tombstones.has(id)) return 0;
    const incoming = receivedValues(r[6], true);
    let s = this.store.sessions.get(id);
    const fresh = s === undefined;
    if (s === undefined) {
      s = this.#newReplica(id, r[1], Math.min(now, r[2]), r[3], from);
      if (s === undefined) return 0;
    } else if (this.#tooFarAhead(r[4], s, from)) return 0;
    const copy = s;
    this.store.forks.touch(s);
    // From a member apart (a rejoin merge): writes after the fork on both sides are concurrent (forks.ts).
    const apart = this.store.forks.apartWrites(s, from.id);
    const bytes = mergeRecord(
      s,
      r,
      incoming,
      (name, lw, rw, wins) => this.host.conflict(copy, name, lw, rw, wins),
      apart,
    );
    if (s.ownerId !== this.host.localId) s.primary = false;
    if (fresh) this.host.copied(s);
    return bytes;
  }
}
