/**
 * BackupManager (`sessions.manager: backup`): each session lives on the node serving it (its
 * primary, the owner of the ownership protocol) and on `sessions.backups` (k) other members serving
 * the context, chosen by placement.ts (rendezvous hashing, host/zone anti-affinity). Changes go to
 * the k backups only, so a node's memory and the messages per request stay constant as the cluster
 * grows (the DeltaManager sends every change to every node).
 *
 * It is the DeltaManager's policy hooks filled in differently; the session core (store, outbound
 * path, inbound dispatch, merge rules, ownership, fencing, expiry, listeners, send modes, filters,
 * tombstones) is the same code:
 *
 * - recipients: the changes of a session go to its backups;
 * - a request for a session this node does not hold: {@link fetchSession} asks its likely holders
 *   (fetch-routing.ts, fetches.ts); the owner hands it over in its answer (FETCH "take"), else the
 *   copies are merged by stamps and the request takes it over with ACQUIRE, fenced by versions;
 * - a membership change (backup-rebalance.ts, planned by rebalance.ts): this node's part (the
 *   sessions it acts for: copies to new holders in chunks of stateTransferChunkSize, acknowledged,
 *   then RELEASE to holders that no longer are), in the background, one chunk per event-loop turn;
 * - start (backup-rebalance.ts): no full state transfer; the node is ready once every member
 *   serving the context that was there when it started has sent it its share (SHARE_SENT), or
 *   left, or stateTransferTimeoutMs passed;
 * - outside membership changes (backup-sync.ts): the merge by stamps with a member back after a
 *   silence, the periodic repair of missing copies, the hand-over before a graceful stop.
 */
import type { Member } from '../channel/types.js';
import { SendFlag } from '../config/send-options.js';
import type { SessionConfig } from '../config/session-config.js';
import type { Logger } from '../core/logger.js';
import { type BackupCounters, type BackupStats, newBackupCounters } from './backup-counters.js';
import {
  copiesMsg,
  fetchedMsg,
  movedMsg,
  readCopies,
  readFetch,
  readFetched,
  readRelease,
  readShareSent,
  TAKE,
} from './backup-messages.js';
import { BackupRebalance, type BackupRebalanceHost } from './backup-rebalance.js';
import { BackupSync, newSyncCounters } from './backup-sync.js';
import { byName } from './counters.js';
import { DeltaManager } from './delta-manager.js';
import { FetchRouting } from './fetch-routing.js';
import { Fetches } from './fetches.js';
import type { BackupSyncCounters } from './manager-stats.js';
import { Refused } from './message-readers.js';
import { MSG_TYPES, Msg } from './messages.js';
import { Placement, type PlacementMember } from './placement.js';
import { placementMemberOf, type ReplicationHub } from './replication-hub.js';
import type { Session } from './session.js';
import { toRecord } from './state-donor.js';

const NO_MEMBERS: readonly Member[] = Object.freeze([]);

export class BackupManager extends DeltaManager {
  readonly #hub: ReplicationHub;
  readonly #log: Logger;
  readonly #k: number;
  readonly #bc: BackupCounters = newBackupCounters();
  /** The context's members the placement below was built from (the hub's array: same until membership changes). */
  #builtFrom: readonly Member[] | undefined;
  #placement: Placement | undefined;
  /** Member by placement index (undefined at this node's own index). */
  #memberAt: (Member | undefined)[] = [];
  #selfIndex = -1;
  /** Interned recipient lists for one backup: by member index (consecutive sessions share batches). */
  #single: (readonly Member[])[] = [];
  readonly #multi = new Map<string, readonly Member[]>();
  readonly #scratch = new Int32Array(65);
  #degraded = false;
  /** Session id → the member that fetched it from this owner: it gets the changes until it owns it. */
  readonly #fetchers = new Map<string, { member: Member; until: number }>();
  readonly #fetches: Fetches;
  /** Where dropped copies' sessions went, and where a fetch goes first (fetch-routing.ts). */
  readonly #routing = new FetchRouting();
  #started = false;
  #stoppedHere = false;
  /** Rejoin exchange, periodic repair, graceful-stop hand-over (backup-sync.ts). */
  readonly #sync: BackupSync;
  /** Membership changes, take-overs' copies, start readiness (backup-rebalance.ts). */
  readonly #rebalance: BackupRebalance;
  readonly #sc: BackupSyncCounters = newSyncCounters();
  /** The BackupManager's messages received, by type (the base counts the shared ones). */
  readonly #received: number[] = new Array<number>(MSG_TYPES).fill(0);

  constructor(config: SessionConfig, hub: ReplicationHub, logger: Logger, distributable = true) {
    super(config, hub, logger, distributable);
    this.#hub = hub;
    this.#log = logger;
    this.#k = config.backups;
    const manager = this;
    this.#fetches = new Fetches({
      contextName: this.contextName,
      get localId() {
        return manager.localId;
      },
      timeoutMs: config.ownershipTimeoutMs,
      counters: this.#bc,
      members: () => this.#contextMembers(),
      likely: (id, route, members) => {
        const byRoute = route === this.route ? this.localId : members.find((m) => m.name === route)?.id;
        return this.#routing.likely(id, byRoute, members, this.#current(members), this.#k);
      },
      post: (to, message) => this.#post(to, message),
      applyRecord: (raw, from, now) => this.applyRecordFrom(raw, from, now),
      find: (id) => this.findSession(id),
      endedLately: (id) => this.endedLately(id),
      refuse: (from, why) => this.#refuse(from, why),
      granted: (s, from) => {
        this.ownedByFetch(s);
        this.#rebalance.rehome(s, from.id, true);
      },
    });
    const host: BackupRebalanceHost = {
      contextName: this.contextName,
      get localId() {
        return manager.localId;
      },
      config,
      k: this.#k,
      sessions: this.sessions,
      logger,
      counters: this.#sc,
      get stopped() {
        return manager.#stoppedHere;
      },
      members: () => this.#contextMembers(),
      placement: () => this.#current(),
      flush: () => this.flushQueued(),
      send: (to, message) => this.#hub.channel.send(to, message, { options: SendFlag.USE_ACK | SendFlag.SYNC_ACK }),
      post: (to, message) => this.#post(to, message),
      applyRecord: (raw, from, now) => this.applyRecordFrom(raw, from, now),
      applyTombstones: (ids) => this.endedElsewhere(ids),
      endedLately: (id) => this.endedLately(id),
      refuse: (from, why) => this.#refuse(from, why),
      restore: (sends, releases) => this.#rebalance.restore(sends, releases),
      merged: (m) => this.mergedWith(m.id),
      backupCounters: this.#bc,
      distributable: this.distributable,
      repairFailed: (ids, to) => this.#sync.repair.failed(ids, to),
    };
    this.#sync = new BackupSync(host);
    this.#rebalance = new BackupRebalance(host);
  }

  /** Which manager this is (stats). */
  get managerKind(): 'backup' {
    return 'backup';
  }

  // ---- placement ------------------------------------------------------------------------------

  #contextMembers(): readonly Member[] {
    return this.distributable ? this.#hub.membersFor(this.contextName) : NO_MEMBERS;
  }

  /** The placement over this node and the members serving the context (rebuilt when they change). */
  #current(members: readonly Member[] = this.#contextMembers()): Placement {
    if (this.#placement !== undefined && members === this.#builtFrom) return this.#placement;
    const local: PlacementMember = {
      id: this.localId,
      host: this.#hub.placement.host,
      zone: this.#hub.placement.zone,
    };
    const p = new Placement([local, ...members.map(placementMemberOf)]);
    this.#placement = p;
    this.#builtFrom = members;
    this.#selfIndex = p.indexOf(local.id);
    this.#memberAt = p.ids.map((id) => members.find((m) => m.id === id));
    this.#single = this.#memberAt.map((m) => (m === undefined ? NO_MEMBERS : Object.freeze([m])));
    this.#multi.clear();
    const effective = p.backupCount(this.#k);
    if (effective < this.#k && !this.#degraded) {
      this.#degraded = true;
      this.#log.warn(
        { backups: this.#k, members: p.size, effective },
        `sessions.backups is ${this.#k} but only ${p.size - 1} other member(s) serve this context: each session has ${effective} backup(s) until more members arrive`,
      );
    } else if (effective >= this.#k && this.#degraded) {
      this.#degraded = false;
      this.#log.info({ backups: this.#k }, 'enough members again: every session gets its backups');
    }
    return p;
  }

  /** The changes of `s` (this node serves it) go to its backups, and to a node about to take it over. */
  protected override recipientsOf(s: Session, members: readonly Member[]): readonly Member[] {
    const p = this.#current(members);
    const out = this.#scratch;
    const c = p.backupsInto(s.id, this.#selfIndex, this.#k, out);
    let list: readonly Member[];
    if (c === 0) list = NO_MEMBERS;
    else if (c === 1) list = this.#single[out[0]!]!;
    else {
      let key = '';
      for (let i = 0; i < c; i++) key += `${out[i]},`;
      let cached = this.#multi.get(key);
      if (cached === undefined) {
        const arr: Member[] = [];
        for (let i = 0; i < c; i++) arr.push(this.#memberAt[out[i]!]!);
        cached = Object.freeze(arr);
        this.#multi.set(key, cached);
      }
      list = cached;
    }
    if (this.#fetchers.size > 0) {
      const f = this.#fetchers.get(s.id);
      if (f !== undefined) {
        if (s.ownerId !== this.localId || f.until < Date.now()) this.#fetchers.delete(s.id);
        else if (!list.includes(f.member) && members.includes(f.member)) return [...list, f.member];
      }
    }
    return list;
  }

  /**
   * Handing `s` over to `to`: a node that is not among the recipients of its changes (a former
   * owner or holder whose copy was not released yet, a fetcher superseded by another) holds a
   * copy that may be many writes old, and would serve, then replicate, that old value as the
   * new owner (lost increments). It gets the whole session first, on the connection the GRANT
   * follows (merged by stamps: nothing newer there is undone).
   */
  protected override handingOver(s: Session, to: Member): void {
    if (this.recipientsOf(s, this.#contextMembers()).includes(to)) return;
    this.#post([to], copiesMsg(this.contextName, [toRecord(s)]));
  }

  /** A copy dropped here: remember who serves the session (oldest hints go first past the bound). */
  #forgetFor(s: Session, owner: string): void {
    this.forget(s);
    if (owner !== '' && owner !== this.localId) this.#routing.dropped(s.id, owner);
  }

  protected override takingOver(id: string): Promise<unknown> | undefined {
    return this.#fetches.taking(id);
  }

  protected override movedTo(id: string): string | undefined {
    return this.#routing.movedTo(id);
  }

  // ---- start, readiness -----------------------------------------------------------------------

  /**
   * Ready once every member serving the context when this node started has sent this node its
   * share (or left); no full state transfer (backup-rebalance.ts). On timeout: start-cold (logged)
   * or fail, as the DeltaManager's transfer.
   */
  protected override async initialTransfer(): Promise<void> {
    this.#started = true;
    this.#sync.start();
    await this.#rebalance.start();
  }

  override async stop(): Promise<void> {
    // A graceful stop hands its sessions over first (backup-handover.ts), unless they end with it.
    if (!this.#stoppedHere && this.#started && this.distributable && !this.config.expireSessionsOnShutdown)
      await this.#sync.stopping();
    this.#stoppedHere = true;
    this.#sync.stop();
    this.#fetches.cancel();
    await super.stop();
  }

  // ---- membership: rebalance ------------------------------------------------------------------

  /** A member joined (or this node saw it late): its share moves to it (no DeltaManager-style full merge). */
  override memberAdded(_m: Member): void {
    this.#rebalance.schedule();
  }

  /**
   * A member found late or back after a silence: the placement decides who holds what, so the
   * copies move by a rebalance (no DeltaManager-style pull of every session the member holds).
   */
  override mergeWith(m: Member, why: 'late' | 'rejoined'): boolean {
    this.#rebalance.schedule();
    // Back after a silence: what both sides changed merges by stamps (backup-rejoin.ts).
    return (
      why === 'rejoined' && this.#started && !this.#stoppedHere && this.distributable && this.#sync.rejoin.start(m)
    );
  }

  override memberRemoved(m: Member): void {
    super.memberRemoved(m);
    this.#fetches.memberRemoved(m.id);
    this.#sync.memberRemoved(m.id);
    this.#rebalance.memberRemoved();
  }

  #post = (to: readonly Member[], message: readonly unknown[]): unknown =>
    to.length > 0 && this.sendAfterQueued(to, message, false);

  // ---- taking a session over ------------------------------------------------------------------

  /**
   * Before a request uses `s`: the ownership protocol as the DeltaManager; once this node owns a
   * session another node served, its copies move to this node's backups (COPIES to the new
   * holders, RELEASE to those that no longer are).
   */
  override acquire(s: Session): Promise<void> | undefined {
    const previous = s.ownerId;
    const wait = super.acquire(s);
    if (previous === this.localId || previous === '') return wait;
    if (wait === undefined) {
      this.#rebalance.rehome(s, previous);
      return undefined;
    }
    return wait.then(() => {
      if (s.valid && s.ownerId === this.localId) this.#rebalance.rehome(s, previous);
    });
  }

  /**
   * A read-only request ended: a copy fetched only for it (this node is not among the session's
   * holders) is dropped again, so the session stays on 1 + k nodes.
   */
  override readCompleted(s: Session, now = Date.now()): void {
    super.readCompleted(s, now);
    if (!s.valid || s.active > 0 || s.ownerId === this.localId || s.ownerId === '') return;
    const p = this.#current();
    if (p.has(s.ownerId) && !p.isHolder(s.id, s.ownerId, this.#k, this.localId)) this.#forgetFor(s, s.ownerId);
  }

  /**
   * A session this node does not hold: asks the node the cookie's `route` names and its backups
   * by placement for their copies (FETCH), and every other member serving the context only when
   * none of those serves it; waits for their answers (a member removed meanwhile answers nothing, the wait ends
   * at ownershipTimeoutMs at the latest), and merges the copies by their stamps. Concurrent
   * requests for one session share the fetch.
   */
  fetchSession(
    id: string,
    _now = Date.now(),
    readOnly = false,
    route?: string,
  ): Promise<Session | undefined> | undefined {
    return this.distributable ? this.#fetches.fetch(id, readOnly, route) : undefined;
  }

  /** @internal Turns the one-round-trip take (FETCH "take") on or off for this manager (fetches.ts FETCH_TAKES). */
  set fetchTakes(on: boolean) {
    this.#fetches.takes = on;
  }

  // ---- the BackupManager's messages -----------------------------------------------------------

  protected override receiveOther(m: unknown[], from: Member): boolean | Promise<void> {
    const type = m[0];
    if (type === Msg.HOLDING || type === Msg.MERGE_COPIES || type === Msg.WANTED) return this.#sync.receive(m, from);
    if (typeof type !== 'number' || type < Msg.FETCH || type > Msg.SHARE_SENT) return false;
    this.#received[type]!++;
    switch (type) {
      case Msg.FETCH:
        this.#onFetch(m, from);
        break;
      case Msg.FETCHED:
        this.#onFetched(m, from);
        break;
      case Msg.COPIES:
        this.#onCopies(m, from);
        break;
      case Msg.RELEASE:
        this.#onRelease(m, from);
        break;
      case Msg.SHARE_SENT:
        if (this.#ok(readShareSent(m), from)) this.#rebalance.shareSent(from.id);
        break;
    }
    return true;
  }

  #ok<T>(r: T | Refused, from: Member): r is T {
    if (!(r instanceof Refused)) return true;
    this.#refuse(from, r.why);
    return false;
  }

  #refuse(from: Member, why: string): void {
    if (this.#bc.refusedBackupMessages++ % 100 === 0)
      this.#log.warn({ from: from.name, why, refused: this.#bc.refusedBackupMessages }, 'refused a backup message');
  }

  /**
   * FETCH: this node's copy (after its queued changes), or null. "take" to the owner: the session
   * and its ownership once its requests here ended; no mode: the owner's changes until ACQUIRE.
   */
  #onFetch(raw: unknown[], from: Member): void {
    const m = readFetch(raw);
    if (!this.#ok(m, from)) return;
    const s = this.sessions.get(m[2]);
    // Named as the owner by another member while this node's own take of the session is under
    // way: its grant may be on its way here, so "none here" would be wrong (fetches.ts holdFor).
    // Only when hinted: two nodes taking the same session that asked each other plainly would
    // each wait for the other's answer.
    if (m[5] === true && (s === undefined || s.ownerId !== this.localId)) {
      const held = this.#fetches.holdFor(m[2]);
      if (held !== undefined) return void held.then(() => this.#onFetch(raw, from));
    }
    if (s === undefined || !s.valid || !s.announced) {
      const to = s === undefined ? this.#routing.movedTo(m[2]) : undefined;
      this.#post(
        [from],
        to !== undefined && to !== from.id
          ? movedMsg(this.contextName, m[3], to)
          : fetchedMsg(this.contextName, m[3], null),
      );
      return;
    }
    const requestId = m[3];
    if (m[4] === TAKE && s.ownerId === this.localId && this.handOverWhenFree(s, () => this.#grant(s, from, requestId)))
      return;
    this.flushQueued(); // the record's stamps must cover its values
    if (s.ownerId === this.localId && m[4] !== true)
      this.#fetchers.set(s.id, { member: from, until: Date.now() + 2 * this.config.ownershipTimeoutMs });
    this.#post([from], fetchedMsg(this.contextName, m[3], toRecord(s)));
  }

  /**
   * The hand-over of a take: the whole session (every change of this node's in it) and, when this
   * node still owns it and the asker still serves the context, its ownership; else only the copy.
   */
  #grant(s: Session, from: Member, requestId: number): void {
    if (!s.valid) return void this.#post([from], fetchedMsg(this.contextName, requestId, null));
    this.flushQueued(); // the record's stamps must cover its values
    const record = toRecord(s);
    const granted = s.ownerId === this.localId && this.#contextMembers().includes(from);
    if (granted) {
      s.ownerId = from.id;
      s.primary = false;
      this.#fetchers.delete(s.id);
    }
    this.#post([from], fetchedMsg(this.contextName, requestId, record, granted));
    // Not a holder once `from` serves it: dropped now (the new owner sends no RELEASE for it).
    if (granted && !this.#rebalance.running && !this.#current().isHolder(s.id, from.id, this.#k, this.localId))
      queueMicrotask(() => {
        if (s.ownerId !== from.id || s.active > 0 || this.#fetches.fetching(s.id)) return;
        this.#forgetFor(s, from.id);
        this.#bc.copiesReleased++;
      });
  }

  #onFetched(raw: unknown[], from: Member): void {
    const m = readFetched(raw);
    if (this.#ok(m, from)) this.#fetches.onFetched(m, from);
  }

  /** COPIES: hold these sessions (merged by stamps); acknowledged once applied (the send is synchronous). */
  #onCopies(raw: unknown[], from: Member): void {
    const m = readCopies(raw);
    if (!this.#ok(m, from)) return;
    const now = Date.now();
    for (const r of m[2]) this.applyRecordFrom(r, from, now);
  }

  /**
   * RELEASE: drop the copies the sender placed elsewhere — only those the sender holds at least as
   * new as this node (its version), never one in use or served here.
   */
  #onRelease(raw: unknown[], from: Member): void {
    const m = readRelease(raw);
    if (!this.#ok(m, from)) return;
    const ids = m[2];
    for (let i = 0; i < ids.length; i++) {
      const s = this.sessions.get(ids[i]!);
      // A copy fetched for a request here that has not begun yet (the answers of the fetch and
      // this release can come in one batch): dropping it would run the request without it.
      if (s === undefined || this.#fetches.fetching(s.id)) continue;
      // The sender serves the session at a version at least this copy's: nothing here is lost.
      if (s.ownerId === this.localId || s.active > 0 || s.waiters !== undefined || m[3][i]! < s.version) {
        this.#refuse(from, 'a release of a copy this node serves, uses, or holds newer than the sender');
        continue;
      }
      this.#forgetFor(s, from.id); // the sender serves it
      this.#fetchers.delete(s.id);
      this.#bc.copiesReleased++;
    }
  }

  // ---- stats ----------------------------------------------------------------------------------

  /** Counters and state; `manager`, `primarySessions`, `backupSessions`, `underReplicated`, `sessionsMoved`, `lastRestoredAt`. */
  override stats(): ReturnType<DeltaManager['stats']> & BackupStats {
    const base = super.stats();
    let primary = 0;
    const me = this.localId;
    for (const s of this.sessions.values()) if (s.ownerId === me) primary++;
    const p = this.#current();
    const effective = p.backupCount(this.#k);
    return {
      ...base,
      manager: 'backup',
      backups: this.#k,
      effectiveBackups: effective,
      degraded: effective < this.#k,
      primarySessions: primary,
      backupSessions: this.sessions.size - primary,
      underReplicated: effective < this.#k ? primary : this.#sync.repair.underReplicated(this.#rebalance.pendingCopies),
      lastRestoredAt:
        this.#rebalance.lastRestoredAt === 0 ? null : new Date(this.#rebalance.lastRestoredAt).toISOString(),
      ...this.#bc,
      ...this.#sc,
      received: { ...base.received, ...byName(this.#received) },
    };
  }
}

export type { BackupCounters, BackupStats } from './backup-counters.js';
