/**
 * DeltaManager: every node that serves a context holds every session of it (all-to-all, only
 * among the nodes serving that context). At the end of each request the changed attributes travel
 * as a delta; a starting node takes every session from the oldest member before it serves.
 *
 * Beyond Tomcat: every session has a version that only goes up (a Lamport clock); every attribute
 * carries the stamp of its last write, so deltas apply in order, stale or duplicate ones are
 * counted and never applied over newer data, concurrent changes to different attributes on two
 * nodes both survive, and two changes to the same attribute are detected and reported ('conflict').
 * An invalidated session leaves a tombstone, so a late delta cannot revive it.
 *
 * This class is the policy ("every member gets everything") over the shared session core:
 * session-store.ts (sessions, tombstones, ids, expiry), outbound.ts (turn batching, the flush
 * barrier, sends), inbound.ts (receive → reader → handler), merge.ts (the stamping and merge
 * rules), message-builders.ts / message-readers.ts (typed messages), manager-stats.ts, and the
 * protocols ownership.ts, fencing.ts, state-donor.ts, state-receiver.ts.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Member } from '../channel/types.js';
import type { SessionConfig } from '../config/session-config.js';
import type { Logger } from '../core/logger.js';
import { Changes } from './changes.js';
import { Copies } from './copies.js';
import { type Counter, newCounters, Refusals } from './counters.js';
import { Expiry } from './expiry.js';
import { isSessionId } from './ids.js';
import { handlersOf, Inbound } from './inbound.js';
import { notifyAttribute, type SessionManagerEvents } from './manager-events.js';
import { copiesHost, type HostParts, ownershipHost } from './manager-hosts.js';
import { type ManagerStats, managerStats } from './manager-stats.js';
import { idChangedMsg, type SessionMsg } from './message-builders.js';
import { Outbound } from './outbound.js';
import { Ownership } from './ownership.js';
import type { HubManager, ReplicationHub } from './replication-hub.js';
import { RequestQueue } from './request-queue.js';
import type { Session, SessionOwner } from './session.js';
import type { SessionManager } from './session-manager.js';
import { SessionStore } from './session-store.js';
import { StateDonor } from './state-donor.js';
import { StateReceiver } from './state-receiver.js';

export type { ConflictInfo, DestroyReason } from './manager-events.js';
export type { ManagerStats } from './manager-stats.js';
export type { StateTransferStats } from './state-receiver.js';
/** The events of a DeltaManager (manager-events.ts: every manager emits the same). */
export type DeltaManagerEvents = SessionManagerEvents;

export class DeltaManager extends EventEmitter<DeltaManagerEvents> implements HubManager, SessionOwner, SessionManager {
  readonly contextName: string;
  /** Every session held here, by id (the store's map). */
  readonly sessions: Map<string, Session>;
  readonly #store: SessionStore;
  readonly #counters: Record<Counter, number> = newCounters();
  readonly #refusals: Refusals;
  readonly #out: Outbound;
  readonly #in: Inbound;
  readonly #changes: Changes;
  readonly #donor: StateDonor;
  readonly #expiry: Expiry;
  #ready = false;
  readonly #receiver: StateReceiver;
  #readyAt = 0;
  #stopped = false;
  readonly #ownership: Ownership | undefined;
  /** sessions.serialize: the per-session request locks of this node (request-queue.ts). */
  readonly serializer: RequestQueue;
  readonly #copies: Copies;
  readonly #sync: boolean;

  /**
   * @param distributable false for an application that did not declare itself distributable:
   *   its sessions stay on this node (nothing is sent or received for its context).
   */
  constructor(
    readonly config: SessionConfig,
    private readonly hub: ReplicationHub,
    logger: Logger,
    readonly distributable = true,
  ) {
    super();
    this.contextName = config.name;
    this.#store = new SessionStore(config, this.#counters, this);
    this.sessions = this.#store.sessions;
    this.#refusals = new Refusals(this.#counters, logger);
    this.#out = new Outbound(
      {
        contextName: this.contextName,
        members: () => this.#members(),
        // Only a policy with its own recipients pays for the call (BackupManager).
        recipients:
          this.recipientsOf === DeltaManager.prototype.recipientsOf
            ? undefined
            : (s: Session, members: readonly Member[]) => this.recipientsOf(s, members),
        scheduleTurn: () => this.hub.queueTurn(this),
        changeMessage: (s, now) => this.#changes.message(s, now),
        alone: (s) => this.#changes.alone(s),
        handOver: (s) => this.#ownership?.handOver(s),
      },
      hub.channel,
      config.sendOptions,
      this.#counters,
      logger,
    );
    this.#sync = this.#out.sync;
    this.#changes = new Changes(this.contextName, this, this.#store, this.#counters, logger);
    this.#donor = new StateDonor(
      {
        channel: hub.channel,
        context: this.contextName,
        sessions: this.sessions,
        tombstones: this.#store.tombstones,
        chunkSize: config.stateTransferChunkSize,
        logger,
        beforeChunk: () => this.#out.flush(), // a record must not carry changes its stamps do not
      },
      (from, why) => this.#refusals.refuse('refusedStateRequests', from, why),
      (to, message) => this.#out.post(to, message),
    );
    const parts: HostParts = {
      counters: this.#counters,
      refusals: this.#refusals,
      out: this.#out,
      logger,
      members: () => this.#members(),
      ownership: () => this.#ownership,
      expiry: () => this.#expiry,
      inbound: () => this.#in,
      movedTo: (id) => this.movedTo(id),
      takingOver: (id) => this.takingOver(id),
      handingOver: (s, to) => this.handingOver(s, to),
    };
    this.#ownership = config.ownership === 'migrate' ? new Ownership(ownershipHost(this, parts)) : undefined;
    // sessions.serialize (request-queue.ts): members waiting for a hand-over go before the next local request.
    this.serializer = new RequestQueue(
      { yieldTo: (s) => this.#ownership?.yieldTo(s) },
      config.serializeTimeoutMs,
      config.serializeQueueLimit,
    );
    this.#copies = new Copies(copiesHost(this, parts), this.#store, this.#out, this.#counters, this.#refusals, logger);
    const copies = this.#copies;
    this.#receiver = new StateReceiver(
      {
        applyRecord: (r, from, now) => copies.applyRecord(r, from, now),
        applyTombstones: (ids) => copies.applyTombstones(ids),
        apply: (m, from) => this.#in.apply(m, from),
        refuse: (from, why) => this.#refusals.refuse('refusedSessionData', from, why),
        malformed: (from, why) => this.#in.malformed(from, why),
        merged: (m) => this.#store.forks.merged(m.id),
      },
      hub,
      config,
      logger,
    );
    // Live messages go to this node's copies (copies.ts); the ownership protocol to ownership.ts.
    const handlers = handlersOf(copies, this.#ownership, (requestId, from) => this.#donor.answer(requestId, from));
    this.#in = new Inbound(this.contextName, handlers, this.#receiver, this.#refusals);
    this.#expiry = new Expiry(
      {
        config,
        holders: (s) => this.recipientsOf(s, this.#members()),
        destroyed: (s, reason, replicated) => {
          if ((!replicated || this.config.notifyListenersOnReplication) && this.listenerCount('sessionDestroyed') > 0)
            this.emit('sessionDestroyed', s, reason, replicated);
        },
        // An answer lost with its sender is not awaited for ever (a later one is refused, counted).
        swept: (now) => copies.forgetRepairs(now - this.config.processExpiresFrequency * 1000),
      },
      this.#store,
      this.#out,
      this.#counters,
    );
    if (distributable) hub.register(this);
  }

  /** This node's id (the channel member id): the writer id in attribute stamps. */
  get localId(): string {
    return this.hub.channel.local.id;
  }

  /** True once the state transfer finished: the node may serve requests. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Route (jvmRoute) of this node: the suffix of its session cookies. */
  get route(): string {
    return this.hub.channel.config.name;
  }

  /**
   * Starts the manager: asks the oldest member serving this context for every session and queues
   * live changes until they have arrived. Resolves when the node may serve. Call after the channel
   * started and its membership settled.
   */
  async start(): Promise<void> {
    this.#expiry.start();
    const knownAtStart = new Set(this.#members().map((m) => m.id));
    await this.initialTransfer();
    this.#ready = true;
    this.#readyAt = Date.now();
    // Members that appeared while we were starting may hold sessions we did not get.
    for (const m of this.#members()) if (!knownAtStart.has(m.id)) this.memberAdded(m);
    this.emit('ready');
  }

  /** Stops: sends what is pending; with expireSessionsOnShutdown, expires this node's sessions everywhere. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#out.flush();
    this.#stopped = true;
    this.#expiry.stop();
    this.#receiver.cancel();
    if (this.config.expireSessionsOnShutdown) {
      for (const s of [...this.sessions.values()]) if (s.primary) this.#expiry.end(s, 'expired', true, false);
    }
    if (this.distributable) this.hub.unregister(this);
  }

  /** Members that serve this context (none for a non-distributable application). */
  #members(): Member[] {
    return this.distributable ? this.hub.membersFor(this.contextName) : [];
  }

  // ---- sessions -------------------------------------------------------------------------------

  /**
   * Creates a session with a fresh id (or `wanted`, an unused one this node generated with
   * newSessionId, e.g. for a `req.sessionID` read before the session existed). @throws ClusterError when maxActiveSessions is reached: it
   * counts the sessions created here (not the copies of other nodes' sessions, which
   * maxReplicaSessions bounds), so a flood on one node cannot stop creation elsewhere.
   */
  createSession(now = Date.now(), wanted?: string): Session {
    this.#store.checkCapacity();
    return this.#newSession(this.#store.freshId(wanted), now);
  }

  /**
   * Creates a session under an id that server code generated (express-session's `genid`, for the
   * express-session store), never one a client presented: undefined when the id is malformed (see
   * isSessionId), already held, or was invalidated or expired lately (its tombstone), so a late
   * write cannot bring an ended session back. @throws ClusterError when maxActiveSessions is reached.
   */
  createSessionWithId(id: string, now = Date.now()): Session | undefined {
    if (!isSessionId(id) || this.#store.taken(id)) return undefined;
    this.#store.checkCapacity();
    return this.#newSession(id, now);
  }

  /** Whether a session with this id ended lately (invalidated or expired: its tombstone is kept). */
  endedLately(id: string): boolean {
    return this.#store.tombstones.has(id);
  }

  #newSession(id: string, now: number): Session {
    const s = this.#store.createLocal(id, now, this.localId);
    if (this.listenerCount('sessionCreated') > 0) this.emit('sessionCreated', s, false);
    return s;
  }

  /** The valid session with this id, or undefined (unknown, invalidated or expired). */
  findSession(id: string, now = Date.now()): Session | undefined {
    const s = this.sessions.get(id);
    return s === undefined || this.#expiry.expiredOnLookup(s, now) ? undefined : s;
  }

  /**
   * Resolves at the end of this event-loop turn, once the turn's replication messages were
   * handed to their sockets (see {@link ReplicationHub.turnWritten}): where a response waits with
   * `batchResponses`.
   */
  turnWritten(): Promise<void> {
    return this.hub.turnWritten();
  }

  /**
   * Whether another node may have changed `s` a moment ago, so that a request served from this
   * node's copy should first let the input that arrived with it apply ({@link inputHandled}):
   * another node owns it, or, with ownership none, any member may have.
   */
  copyMayTrail(s: Session): boolean {
    return this.#ownership === undefined ? this.#members().length > 0 : s.ownerId !== this.localId;
  }

  /**
   * Resolves at the end of this event-loop turn, once the input that arrived with the current I/O
   * was handled (see {@link ReplicationHub.inputHandled}).
   */
  inputHandled(): Promise<void> {
    return this.hub.inputHandled();
  }

  /** A request starts using `s`. */
  requestStarted(s: Session, now = Date.now()): void {
    s.active++;
    s.lastAccessedTime = now;
    this.#counters.requests++;
  }

  /**
   * A request that began on `s` ends before it could use it: its client went away while it waited
   * to take the session over (or for the input that came with it). It changed nothing and claims
   * nothing; the session stays with its owner (what {@link requestCompleted} would take).
   */
  requestAbandoned(s: Session): void {
    s.active--;
    this.#counters.requestsAbandoned++;
    if (s.active <= 0) s.revert?.();
    if (s.active <= 0 && s.waiters !== undefined && s.ownerId === this.localId) this.#ownership?.handOver(s);
  }

  /**
   * A request that used `s` ends: replicates what it changed (or, rate-limited, that it was
   * accessed) at the end of the event-loop turn, with the other requests' changes (endTurn). In
   * synchronous mode the returned promise resolves once every member applied them.
   * Never throws: replication failures are counted and logged, the request is not failed.
   */
  requestCompleted(s: Session, replicate = true, now = Date.now()): Promise<void> | undefined {
    s.active--;
    s.lastAccessedTime = now;
    if (!s.valid) return undefined;
    if (s.revert !== undefined) {
      // Another node took the session over while this request ran (fencing.ts): its changes are
      // dropped once the last request here ends, and nothing is sent.
      if (s.active <= 0) s.revert();
      return undefined;
    }
    s.isNew = false;
    s.primary = true;
    s.ownerId = this.localId;
    if (!replicate) {
      // A filtered request sends nothing; what it changed travels with the next replicated one,
      // or with the hand-over to a member waiting for the session (it sends what is unsent first).
      s.detectInPlaceChanges();
      if (s.active <= 0 && s.waiters !== undefined) this.#ownership?.handOver(s);
      s.releaseDecoded();
      return undefined;
    }
    if (this.#members().length > 0) return this.#out.queue(s); // sent at the end of the turn (outbound.ts)
    const sent = this.replicate(s, now);
    s.releaseDecoded();
    if (s.active <= 0 && s.waiters !== undefined) this.#ownership?.handOver(s);
    return sent;
  }

  /** The end of the event-loop turn (ReplicationHub): sends the turn's changes (Outbound.endTurn). */
  endTurn(): void {
    this.#out.endTurn();
  }

  /**
   * A request that may only read `s` (sessions.readOnlyFilter) ends. It did not take the session
   * over and changed nothing, so nothing replicates and the owner stays the owner; the others
   * learn of the access (rate-limited) so that they do not expire the session. An object it
   * changed in place anyway is dropped here, counted and logged: this node's copy must stay what
   * the owner replicated.
   */
  readCompleted(s: Session, now = Date.now()): void {
    s.active--;
    s.lastAccessedTime = now;
    this.#counters.readOnlyRequests++;
    if (!s.valid) return;
    if (s.active <= 0) s.revert?.();
    if (s.active <= 0) {
      // With other requests still on it, the last one to end checks (a writer replicates, as owner).
      this.#changes.discardReadOnly(s);
      s.releaseDecoded();
      if (s.waiters !== undefined) this.#ownership?.handOver(s);
    }
    if (!s.announced) return;
    const members = this.recipientsOf(s, this.#members());
    if (members.length > 0) {
      const message = this.#changes.accessed(s, now, true);
      if (message !== undefined) this.#out.send(members, message, false);
    }
  }

  /** Whether `route` is this node's or a current member's (a cookie naming it needs no re-homing). */
  servesRoute(route: string): boolean {
    if (route === this.route) return true;
    for (const m of this.#members()) if (m.name === route) return true;
    return false;
  }

  /**
   * Before a request on this node uses `s`: if another node owns it (ownership "migrate"), take
   * it over first (see ownership.ts). Undefined when this node may serve it at once.
   */
  acquire(s: Session): Promise<void> | undefined {
    return this.#ownership?.acquire(s);
  }

  /**
   * Sends what changed in `s` now (req.session.save(); also the end of every request): the whole
   * session the first time, then changed attributes only; a rate-limited "accessed" when nothing
   * changed. Resolves, in synchronous mode, once every member applied it.
   */
  replicate(s: Session, now = Date.now()): Promise<void> | undefined {
    if (!s.valid) return undefined;
    this.#out.flush(); // earlier requests' changes first, this session's among them
    const t0 = performance.now();
    const sent = this.#out.sendNow(s, now, this.recipientsOf(s, this.#members()));
    this.#out.replicationTime += performance.now() - t0;
    return sent;
  }

  /** Invalidates `s` here and on every node (SessionOwner). */
  invalidate(s: Session): Promise<void> | undefined {
    return this.#expiry.end(s, 'invalidated', true, false);
  }

  /** Gives `s` a new id (fixation defence); the data stays; every node renames it. Returns the new id. */
  changeSessionId(s: Session): { id: string; sent: Promise<void> | undefined } {
    this.#out.flush(); // queued changes travel under the id the others know
    const old = s.id;
    const members = this.recipientsOf(s, this.#members()); // those that hold it under its old id
    const id = this.#store.freshId();
    this.#store.rename(s, id);
    let sent: Promise<void> | undefined;
    if (s.announced) {
      if (members.length > 0) sent = this.#out.send(members, idChangedMsg(this.contextName, old, id), this.#sync);
    }
    return { id, sent };
  }

  /** SessionOwner: listeners for local changes. */
  attributeChanged(s: Session, name: string, kind: 'added' | 'replaced' | 'removed', value: unknown): void {
    notifyAttribute(this, s, name, kind, value, false);
  }

  /** Expires idle sessions now (expiry.ts; also every processExpiresFrequency seconds) and forgets old tombstones. */
  processExpires(now: number): void {
    this.#expiry.sweep(now);
  }

  // ---- receiving (inbound.ts dispatches to copies.ts, ownership.ts and the state donor) --------

  /** Handles a message of this context from `from`. */
  receive(m: unknown[], from: Member): void | Promise<void> {
    const other = this.receiveOther(m, from);
    if (other === false) this.#in.receive(m, from);
    else if (other !== true) return other;
  }

  memberRemoved(m: Member): void {
    // Apart until a merge with it completes (forks.ts): the state transfer here, the rejoin exchange there.
    this.#store.forks.removed(m.id);
    this.#receiver.memberRemoved(m);
    this.#ownership?.memberRemoved(m.id); // its hand-overs will not come: take those sessions now
  }

  /** A merge with member `id` completed: its records are no longer judged as from the other side (forks.ts). */
  mergedWith(id: string): void {
    this.#store.forks.merged(id);
  }

  /**
   * A member that was already running when this node finished starting, but was not seen then
   * (nodes starting at the same time, a healed partition): take its sessions too, merging by
   * stamps, in the background. A member that starts later takes ours itself.
   */
  memberAdded(m: Member): void {
    if (m.startTime < this.#readyAt) this.mergeWith(m, 'late');
  }

  /** Merges `m`'s sessions in the background (see StateReceiver.merge): a member found late or back. */
  mergeWith(m: Member, why: 'late' | 'rejoined'): boolean {
    return this.#ready && !this.#stopped && this.distributable && this.#receiver.merge(m, why);
  }

  // ---- policy hooks: what a manager with another placement of copies (BackupManager) overrides --

  /** Who gets the changes (and ends, renames, accesses) of `s`, of the context's members: all of them here. */
  protected recipientsOf(_s: Session, members: readonly Member[]): readonly Member[] {
    return members;
  }

  /**
   * This node (the owner) hands `s` over to `to`, its changes sent: what else `to` needs before
   * the GRANT that follows on the same connection. Nothing here: every member got every change.
   */
  protected handingOver(_s: Session, _to: Member): void {}

  /** A session not held here: the member last known to serve it (ACQUIRE redirects there). None here: every node holds every session. */
  protected movedTo(_id: string): string | undefined {
    return undefined;
  }

  /** A take-over of `id` under way by another path than ACQUIRE (ACQUIREs for it wait for it). None here. */
  protected takingOver(_id: string): Promise<unknown> | undefined {
    return undefined;
  }

  /** Before the node serves: every session of the context from the oldest member (state transfer). */
  protected initialTransfer(): Promise<void> {
    return this.#receiver.run();
  }

  /** A message the policy handles itself (types the DeltaManager does not send): true (or a promise that holds its acknowledgement) when handled. */
  protected receiveOther(_m: unknown[], _from: Member): boolean | Promise<void> {
    return false;
  }

  /** Ids a member invalidated (a merge after a silence): they end here too and leave a tombstone. */
  protected endedElsewhere(ids: readonly string[]): void {
    this.#copies.applyTombstones(ids);
  }

  /** Checks and applies one whole session from `from`, merging by stamps (refusals counted); its value bytes. */
  protected applyRecordFrom(raw: unknown, from: Member, now: number): number {
    return this.#copies.applyRecord(raw, from, now);
  }

  /** The outbound barrier: sends what is queued for the end of the turn now. */
  protected flushQueued(): void {
    this.#out.flush();
  }

  /** Sends `message` after what is queued, counted by type (`sync`: resolves once applied). */
  protected sendAfterQueued(
    to: readonly Member[],
    message: readonly unknown[],
    sync: boolean,
  ): Promise<void> | undefined {
    return this.#out.send(to, message as SessionMsg, sync);
  }

  /**
   * This node owns `s` and `to` asked for it: once this node's requests on `s` ended (in the
   * hand-over queue's order), its pending changes go out to their recipients, then `handOver`
   * runs (it checks the owner again, and sets the new one). False without the ownership protocol.
   */
  protected handOverWhenFree(s: Session, handOver: () => void): boolean {
    const ownership = this.#ownership;
    if (ownership === undefined) return false;
    ownership.whenFree(s, () => {
      if (s.valid && s.ownerId === this.localId && (s.dirty !== undefined || s.maxInactiveDirty || !s.announced))
        this.replicate(s);
      handOver();
    });
    return true;
  }

  /** This node owns `s` now by another path than ACQUIRE (a fetch's grant): requests waiting for its ACQUIREs go on. */
  protected ownedByFetch(s: Session): void {
    this.#ownership?.ownedElsewhere(s.id);
  }

  /** Drops this node's copy of `s` without a tombstone and without listeners: the session lives on elsewhere. */
  protected forget(s: Session): void {
    this.#store.forget(s);
  }

  /** Counters and state for monitoring. */
  stats(): ManagerStats {
    return managerStats({
      context: this.contextName,
      manager: 'delta',
      activeSessions: this.sessions.size,
      replicaSessions: this.#store.replicaCount,
      tombstones: this.#store.tombstones.size,
      ready: this.#ready,
      stateTransfer: this.#receiver.stats,
      lateMemberMerges: this.#receiver.merges,
      replicationTime: this.#out.replicationTime,
      counters: this.#counters,
      serialize: this.serializer.stats(),
      sentByType: this.#out.sentByType,
      receivedByType: this.#in.receivedByType,
    });
  }
}
