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
import { COOKIE_ATTRIBUTE } from './cookie-meta.js';
import { type Counter, newCounters, Refusals } from './counters.js';
import { type FencingHost, fence, isFenced, onTaken } from './fencing.js';
import { isSessionId } from './ids.js';
import { Inbound, type InboundHandlers } from './inbound.js';
import type { SessionManagerEvents } from './manager-events.js';
import type { ManagerStats } from './manager-stats.js';
import { managerStats } from './manager-stats.js';
import { applyWrites, mergeRecord, stamp, stampAlone, type WriteEvents } from './merge.js';
import {
  accessedMsg,
  type ChangeMsg,
  createdOf,
  deltaOf,
  type EndReason,
  expiredMsg,
  idChangedMsg,
  sessionDataMsg,
  sessionRequestMsg,
  stateNoneMsg,
} from './message-builders.js';
import {
  type AccessedMsg,
  type CreatedMsg,
  type DeltaMsg,
  type ExpiredMsg,
  type IdChangedMsg,
  readRecord,
  readTombstones,
  receivedValues,
  type SessionRequestMsg,
  type TakenMsg,
  tooFarAhead,
} from './message-readers.js';
import type { SessionRecord } from './messages.js';
import { Outbound } from './outbound.js';
import { Ownership, type OwnershipHost } from './ownership.js';
import type { HubManager, ReplicationHub } from './replication-hub.js';
import { Attribute, type Session, type SessionOwner } from './session.js';
import type { SessionManager } from './session-manager.js';
import { SessionStore } from './session-store.js';
import { streamSessions, toRecord } from './state-donor.js';
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
  /** Members this node is sending every session to (one state transfer per member at a time). */
  readonly #donating = new Set<string>();
  #expiryTimer: NodeJS.Timeout | undefined;
  #ready = false;
  readonly #receiver: StateReceiver;
  #readyAt = 0;
  #merges = 0;
  #stopped = false;
  readonly #ownership: Ownership | undefined;
  /** Sessions asked for in full (SESSION_REQUEST) and not yet received: whom, and when. */
  readonly #repairing = new Map<string, { from: string; at: number }>();
  readonly #sync: boolean;
  readonly #writes: WriteEvents;

  /**
   * @param distributable false for an application that did not declare itself distributable:
   *   its sessions stay on this node (nothing is sent or received for its context).
   */
  constructor(
    readonly config: SessionConfig,
    private readonly hub: ReplicationHub,
    private readonly logger: Logger,
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
        scheduleTurn: () => this.hub.queueTurn(this),
        changeMessage: (s, now) => this.#changeMessage(s, now),
        alone: (s) => {
          this.#reportInPlaceErrors(s);
          stampAlone(s, this.localId);
        },
        handOver: (s) => this.#ownership?.handOver(s),
      },
      hub.channel,
      config.sendOptions,
      this.#counters,
      logger,
    );
    this.#sync = this.#out.sync;
    this.#ownership = config.ownership === 'migrate' ? new Ownership(this.#ownershipHost()) : undefined;
    this.#in = new Inbound(this.contextName, this.#handlers(), () => this.#receiver, this.#refusals);
    this.#receiver = new StateReceiver(
      {
        applyRecord: (r, from, now) => this.#applyRecord(r, from, now),
        applyTombstones: (ids) => this.#applyTombstones(ids),
        apply: (m, from) => this.#in.apply(m, from),
        refuse: (from, why) => this.#refusals.refuse('refusedSessionData', from, why),
        malformed: (from, why) => this.#in.malformed(from, why),
      },
      hub,
      config,
      logger,
    );
    const manager = this;
    this.#writes = {
      get localId() {
        return manager.localId;
      },
      get notify() {
        return manager.config.notifyListenersOnReplication;
      },
      conflict: (s, name, local, remote, incomingWins) => this.#conflict(s, name, local, remote, incomingWins),
      changed: (s, name, kind, a) => this.#notifyAttribute(s, name, kind, a, true),
      stale: () => {
        this.#counters.staleDeltas++;
      },
    };
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
    this.#expiryTimer = setInterval(() => this.processExpires(Date.now()), this.config.processExpiresFrequency * 1000);
    this.#expiryTimer.unref();
    const knownAtStart = new Set(this.#members().map((m) => m.id));
    await this.#receiver.run();
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
    clearInterval(this.#expiryTimer);
    this.#receiver.cancel();
    if (this.config.expireSessionsOnShutdown) {
      for (const s of [...this.sessions.values()]) if (s.primary) this.#expire(s, 'expired', true, false);
    }
    if (this.distributable) this.hub.unregister(this);
  }

  #ownershipHost(): OwnershipHost {
    // Getters: the channel's local member exists only once it started.
    const manager = this;
    return {
      get localId() {
        return manager.localId;
      },
      contextName: this.contextName,
      timeoutMs: this.config.ownershipTimeoutMs,
      members: () => this.#members(),
      session: (id) => this.sessions.get(id),
      flush: (s) => {
        if (s.dirty !== undefined || s.maxInactiveDirty || !s.announced) this.replicate(s);
      },
      post: (to, message, onError) => {
        this.#out.flush(); // a hand-over follows the changes it hands over
        this.#out.post(to, message, onError);
      },
      count: (counter) => {
        this.#counters[counter]++;
      },
      refuse: (counter, from, why) => this.#refusals.refuse(counter, from, why),
      fence: (s, owner) => {
        // Before this node serves it: the notice precedes its changes on every connection.
        const members = this.#members();
        const message = fence(s, this.contextName, owner);
        if (members.length > 0) void this.#out.send(members, message, false);
      },
    };
  }

  #fencingHost(): FencingHost {
    const manager = this;
    return {
      get localId() {
        return manager.localId;
      },
      logger: this.logger,
      count: (counter, by) => {
        this.#counters[counter] += by;
      },
      handOver: (s) => this.#ownership?.handOver(s),
      repair: (s, from) => this.#repair(s.id, from, Date.now()),
    };
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
    if (s === undefined) return undefined;
    if (s.maxInactiveInterval > 0 && s.active === 0) {
      // A copy learns of use elsewhere at most every accessedIntervalMs: allow for that lag.
      if (s.idleMs(now) >= this.#store.expiresAfter(s, s.maxInactiveInterval * 1000)) {
        this.#expire(s, 'expired', s.primary, false);
        return undefined;
      }
    }
    return s;
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
      // A filtered request sends nothing; what it changed travels with the next replicated one.
      s.detectInPlaceChanges();
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
      const dropped = s.discardInPlaceChanges();
      if (dropped !== undefined) {
        if (this.#counters.readOnlyChangesDiscarded % 100 === 0) {
          this.logger.warn(
            { session: s.id.slice(0, 8), attributes: dropped, discarded: this.#counters.readOnlyChangesDiscarded + 1 },
            'a read-only request (sessions.readOnlyFilter) changed session objects in place; the changes were discarded',
          );
        }
        this.#counters.readOnlyChangesDiscarded += dropped.length;
      }
      s.releaseDecoded();
      if (s.waiters !== undefined) this.#ownership?.handOver(s);
    }
    if (!s.announced) return;
    const members = this.#members();
    if (members.length > 0) {
      const message = this.#accessedMessage(s, now, true);
      if (message !== undefined) this.#out.send(members, message, false);
    }
  }

  /** The ACCESSED message for `s`, or undefined when one was sent less than accessedInterval ago. */
  #accessedMessage(s: Session, now: number, readOnly: boolean): AccessedMsg | undefined {
    if (now - s.accessReplicatedAt < this.#store.accessedInterval(s)) return undefined;
    s.accessReplicatedAt = now;
    this.#counters.accessedSent++;
    return accessedMsg(this.contextName, s.id, now, readOnly);
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
    const sent = this.#out.sendNow(s, now, this.#members());
    this.#out.replicationTime += performance.now() - t0;
    return sent;
  }

  /**
   * What to tell the members about `s` after a request: the whole session the first time, then the
   * changed attributes only; a rate-limited ACCESSED when nothing changed (else undefined).
   * Stamps the session and counts the replication (the outbound path counts its bytes).
   */
  #changeMessage(s: Session, now: number): ChangeMsg | undefined {
    this.#reportInPlaceErrors(s);
    let message: ChangeMsg;
    if (!s.announced) {
      message = createdOf(this.contextName, s, stamp(s, this.localId));
      s.announced = true;
    } else if (s.dirty !== undefined || s.maxInactiveDirty) {
      const base = s.version;
      const dirty = s.dirty;
      const maxInactive = s.maxInactiveDirty ? s.maxInactiveInterval : null;
      message = deltaOf(this.contextName, s, base, stamp(s, this.localId), dirty, maxInactive);
    } else {
      return this.#accessedMessage(s, now, false);
    }
    s.accessReplicatedAt = now;
    this.#counters.replications++;
    return message;
  }

  /** Finds objects changed in place; one that can no longer be encoded is logged, its last value stays. */
  #reportInPlaceErrors(s: Session): void {
    const errors = s.detectInPlaceChanges();
    if (errors) {
      for (const [name, err] of errors) {
        this.#counters.unencodable++;
        this.logger.error(
          { session: s.id.slice(0, 8), attribute: name, err: err.message },
          'session attribute changed in place into something that cannot be replicated; the previous value stays replicated',
        );
      }
    }
  }

  /** Invalidates `s` here and on every node (SessionOwner). */
  invalidate(s: Session): Promise<void> | undefined {
    return this.#expire(s, 'invalidated', true, false);
  }

  /** Gives `s` a new id (fixation defence); the data stays; every node renames it. Returns the new id. */
  changeSessionId(s: Session): { id: string; sent: Promise<void> | undefined } {
    this.#out.flush(); // queued changes travel under the id the others know
    const old = s.id;
    const id = this.#store.freshId();
    this.#store.rename(s, id);
    let sent: Promise<void> | undefined;
    if (s.announced) {
      const members = this.#members();
      if (members.length > 0) sent = this.#out.send(members, idChangedMsg(this.contextName, old, id), this.#sync);
    }
    return { id, sent };
  }

  /** SessionOwner: listeners for local changes. */
  attributeChanged(s: Session, name: string, kind: 'added' | 'replaced' | 'removed', value: unknown): void {
    this.#notifyAttribute(s, name, kind, value, false);
  }

  /**
   * Expires idle sessions: a session this node served last (primary) expires everywhere after
   * maxInactiveInterval; a copy that nobody refreshed expires here, silently, after twice that
   * (a safety net for a primary that crashed). Also forgets old tombstones.
   */
  processExpires(now: number): void {
    for (const s of this.sessions.values())
      if (this.#store.expired(s, now)) this.#expire(s, 'expired', s.primary, false);
    this.#store.forgetTombstones(now);
    // An answer lost with its sender is not awaited for ever (a later one is refused, counted).
    const asked = now - this.config.processExpiresFrequency * 1000;
    for (const [id, r] of this.#repairing) if (r.at <= asked) this.#repairing.delete(id);
  }

  /**
   * Ends `s` here; with `broadcast`, on every node too (in synchronous mode the promise resolves
   * once they all dropped it). `replicated` says whether another node decided it.
   */
  #expire(s: Session, reason: EndReason, broadcast: boolean, replicated: boolean): Promise<void> | undefined {
    if (!s.valid) return undefined;
    if (broadcast) this.#out.flush(); // what requests changed goes before the end (listeners see both)
    s.valid = false;
    this.#store.remove(s);
    if (reason === 'expired') this.#counters.sessionsExpired++;
    else this.#counters.sessionsInvalidated++;
    let sent: Promise<void> | undefined;
    if (broadcast && s.announced) {
      const members = this.#members();
      if (members.length > 0) sent = this.#out.send(members, expiredMsg(this.contextName, s.id, reason), this.#sync);
    }
    if ((!replicated || this.config.notifyListenersOnReplication) && this.listenerCount('sessionDestroyed') > 0) {
      this.emit('sessionDestroyed', s, reason, replicated);
    }
    return sent;
  }

  // ---- receiving (inbound.ts dispatches; the handlers below are the policy) -------------------

  /** Handles a message of this context from `from`. */
  receive(m: unknown[], from: Member): void | Promise<void> {
    this.#in.receive(m, from);
  }

  memberRemoved(m: Member): void {
    this.#receiver.memberRemoved(m);
    this.#ownership?.memberRemoved(m.id); // its hand-overs will not come: take those sessions now
  }

  /**
   * A member that was already running when this node finished starting, but was not seen then
   * (nodes starting at the same time, a healed partition): take its sessions too, merging by
   * stamps, in the background. A member that starts later takes ours itself.
   */
  memberAdded(m: Member): void {
    if (!this.#ready || this.#stopped || !this.distributable || m.startTime >= this.#readyAt) return;
    if (!this.hub.membersFor(this.contextName).some((x) => x.id === m.id)) return;
    if (this.#receiver.transferringFrom(m.id)) return;
    this.#merges++;
    this.logger.info(
      { context: this.contextName, member: m.name },
      'found a member that was running before this node was ready: merging its sessions',
    );
    void this.#receiver.transferFrom(m, Date.now() + this.config.stateTransferTimeoutMs, false);
  }

  #handlers(): InboundHandlers {
    const own = this.#ownership;
    return {
      onCreated: (m, from) => this.#onCreated(m, from),
      onDelta: (m, from) => this.#onDelta(m, from),
      onAccessed: (m, from) => this.#onAccessed(m, from),
      onExpired: (m, from) => this.#onExpired(m, from),
      onIdChanged: (m, from) => this.#onIdChanged(m, from),
      onSessionRequest: (m, from) => this.#onSessionRequest(m, from),
      onSessionData: (r, from) => this.#onSessionData(r, from),
      onStateRequest: (requestId, from) => this.#answerStateRequest(requestId, from),
      ownership:
        own === undefined
          ? undefined
          : {
              onAcquire: (m, from) => own.onAcquire(m, from),
              onGrant: (m, from) => own.onGrant(m, from),
              onTaken: (m, from) => this.#onTaken(m, from),
            },
    };
  }

  #onCreated(m: CreatedMsg, from: Member): void {
    const id = m[2];
    const version = m[5];
    const incoming = receivedValues(m[7], false); // checked whole before anything is applied
    const now = Date.now();
    let s = this.#store.forMessage(id);
    if (s === null) return;
    if (s === undefined) {
      s = this.#newReplica(id, m[3], now, m[4], from);
      if (s === undefined) return;
      if (this.config.notifyListenersOnReplication && this.listenerCount('sessionCreated') > 0) {
        this.emit('sessionCreated', s, true);
      }
    } else if (this.#tooFarAhead(version, s, from) || this.#fenced(s, from, -1)) return;
    applyWrites(this.#writes, s, version, -1, from.id, m[6], incoming, [], now);
  }

  #onDelta(m: DeltaMsg, from: Member): void {
    const id = m[2];
    const version = m[4];
    const maxInactive = m[8];
    const incoming = receivedValues(m[6], false);
    const now = Date.now();
    let s = this.#store.forMessage(id);
    if (s === null) return;
    if (s === undefined) {
      // A delta for a session we never saw whole (we missed its creation, e.g. while membership
      // was forming): keep what it carries and ask the sender for the rest.
      s = this.#newReplica(id, now, now, this.config.maxInactiveInterval, from);
      if (s === undefined) return;
      this.#repair(id, from, now);
    } else if (this.#tooFarAhead(version, s, from) || this.#fenced(s, from, m[3])) return;
    // null: unchanged (-1 is a real value: never expire).
    if (maxInactive !== null && version > s.version) s.maxInactiveInterval = maxInactive;
    applyWrites(this.#writes, s, version, m[3], from.id, m[5], incoming, m[7], now);
  }

  /** Two writes to the same attribute on two nodes, neither having seen the other: counted and reported. */
  #conflict(s: Session, name: string, localWriter: string, remoteWriter: string, incomingWins: boolean): void {
    this.#counters.conflicts++;
    if (this.listenerCount('conflict') > 0) {
      this.emit('conflict', {
        sessionId: s.id,
        attribute: name,
        local: localWriter,
        remote: remoteWriter,
        winner: incomingWins ? remoteWriter : localWriter,
      });
    } else if (this.#counters.conflicts % 100 === 1) {
      this.logger.warn(
        { session: s.id.slice(0, 8), attribute: name, conflicts: this.#counters.conflicts },
        'concurrent writes to the same session attribute on two nodes (the newer write wins; add a "conflict" listener to handle it)',
      );
    }
  }

  #onAccessed(m: AccessedMsg, from: Member): void {
    const s = this.sessions.get(m[2]);
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
  #onExpired(m: ExpiredMsg, from: Member): void {
    const s = this.sessions.get(m[2]);
    if (s !== undefined) this.#expire(s, m[3] === 'invalidated' ? 'invalidated' : 'expired', false, true);
    else if (!this.#store.tombstones.has(m[2])) this.#refusals.refuse('refusedExpired', from, 'an unknown session');
  }

  /** ID_CHANGED: only from an id held here, to one neither held nor invalidated here. */
  #onIdChanged(m: IdChangedMsg, from: Member): void {
    const oldId = m[2];
    const newId = m[3];
    const s = this.sessions.get(oldId);
    if (s === undefined || this.#store.taken(newId)) {
      if (s !== undefined || !this.#store.tombstones.has(oldId))
        this.#refusals.refuse('refusedIdChanges', from, 'an id change from an unknown id or to a taken one');
      return;
    }
    this.#store.rename(s, newId);
    s.primary = false;
  }

  /** SESSION_REQUEST: a member missed a session's creation; it gets the whole session. */
  #onSessionRequest(m: SessionRequestMsg, from: Member): void {
    const s = this.sessions.get(m[2]);
    if (s?.valid && s.announced) {
      this.#out.flush(); // the record's stamps must cover its values
      void this.#out.send([from], sessionDataMsg(this.contextName, toRecord(s)), false);
    }
  }

  /** SESSION_DATA: taken only as the answer of the member this node asked, for the session asked. */
  #onSessionData(r: SessionRecord, from: Member): void {
    const asked = this.#repairing.get(r[0]);
    if (asked === undefined || asked.from !== from.id) {
      this.#refusals.refuse('refusedSessionData', from, 'session data this node did not ask that member for');
      return;
    }
    this.#repairing.delete(r[0]);
    this.#takeRecord(r, from, Date.now());
  }

  /** A write of an owner fenced since it was made (fencing.ts): refused as stale, counted. */
  #fenced(s: Session, from: Member, base: number): boolean {
    if (!isFenced(s, from.id, base)) return false;
    this.#refusals.refuse('fencedWrites', from, 'a write of an owner whose session was taken over since (stale)');
    return true;
  }

  /** TAKEN: another node took a session over from an owner that did not hand it over (fencing.ts). */
  #onTaken(m: TakenMsg, from: Member): void {
    if (m[3] === from.id) {
      this.#in.malformed(from, 'a take-over from itself');
      return;
    }
    const s = this.#store.forMessage(m[2]);
    if (s == null || this.#tooFarAhead(m[4], s, from)) return; // not held here: nothing to fence
    onTaken(this.#fencingHost(), s, m, from);
  }

  /** Asks `from` for the whole session `id` (SESSION_REQUEST), unless already asked. */
  #repair(id: string, from: Member, now: number): void {
    if (this.#repairing.has(id)) return;
    this.#repairing.set(id, { from: from.id, at: now });
    this.#counters.repairs++;
    void this.#out.send([from], sessionRequestMsg(this.contextName, id), false);
  }

  /** A version too far ahead of this node's copy (message-readers.ts): refused, counted. */
  #tooFarAhead(version: number, s: Session, from: Member): boolean {
    if (!tooFarAhead(version, s.version)) return false;
    this.#refusals.refuse('refusedVersion', from, `a version ${version - s.version} ahead of this node's copy`);
    return true;
  }

  /**
   * A copy of a session made on another node; undefined (refused, counted) when this node holds
   * maxReplicaSessions copies already. The sender is not told: its replication succeeded as far
   * as it can see, and this node simply does not hold that session.
   */
  #newReplica(id: string, created: number, accessed: number, maxInactive: number, from: Member): Session | undefined {
    if (!this.#store.replicaRoom) {
      const max = this.config.maxReplicaSessions;
      this.#refusals.refuse('refusedReplicaLimit', from, `this node holds maxReplicaSessions (${max}) copies`);
      return undefined;
    }
    return this.#store.createReplica(id, created, accessed, maxInactive);
  }

  // ---- state transfer -------------------------------------------------------------------------

  /** The donor's tombstones (end of a state transfer): those sessions must not live on here. */
  #applyTombstones(list: unknown): void {
    const ids = readTombstones(list, () => this.#refusals.refuse('malformedIds', undefined, 'a tombstone id'));
    for (const id of ids) {
      this.#store.tombstone(id);
      const gone = this.sessions.get(id);
      if (gone !== undefined) this.#expire(gone, 'invalidated', false, true);
    }
  }

  /**
   * Checks and applies one whole session (state transfer or repair), merging by stamps; returns
   * its value bytes (0 when refused, counted).
   */
  #applyRecord(raw: unknown, from: Member, now: number): number {
    const r = readRecord(raw);
    if (!this.#in.ok(r, from)) return 0;
    try {
      return this.#takeRecord(r, from, now);
    } catch (err) {
      this.#in.malformed(from, (err as Error).message); // a value that does not decode: nothing applied
      return 0;
    }
  }

  #takeRecord(r: SessionRecord, from: Member, now: number): number {
    const id = r[0];
    if (this.#store.tombstones.has(id)) return 0;
    const incoming = receivedValues(r[6], true);
    let s = this.sessions.get(id);
    const fresh = s === undefined;
    if (s === undefined) {
      s = this.#newReplica(id, r[1], Math.min(now, r[2]), r[3], from);
      if (s === undefined) return 0;
    } else if (this.#tooFarAhead(r[4], s, from)) return 0;
    const bytes = mergeRecord(s, r, incoming);
    if (s.ownerId !== this.localId) s.primary = false;
    if (fresh && this.config.notifyListenersOnReplication && this.listenerCount('sessionCreated') > 0) {
      this.emit('sessionCreated', s, true);
    }
    return bytes;
  }

  /**
   * Donor side: streams every session (not awaited: the request's acknowledgement goes back at
   * once). One transfer per member at a time: another request from it meanwhile is answered
   * STATE_NONE (the asker tries the next member) and counted, so a member cannot make this node
   * stream everything many times over at once.
   */
  #answerStateRequest(requestId: unknown, from: Member): void {
    if (this.#donating.has(from.id)) {
      this.#refusals.refuse('refusedStateRequests', from, 'a state request while one from it is being answered');
      this.#out.post(from, stateNoneMsg(this.contextName, requestId));
      return;
    }
    this.#donating.add(from.id);
    void streamSessions(
      {
        channel: this.hub.channel,
        context: this.contextName,
        sessions: this.sessions,
        tombstones: this.#store.tombstones,
        chunkSize: this.config.stateTransferChunkSize,
        logger: this.logger,
        beforeChunk: () => this.#out.flush(), // a record must not carry changes its stamps do not
      },
      from,
      requestId,
    ).finally(() => this.#donating.delete(from.id));
  }

  #notifyAttribute(
    s: Session,
    name: string,
    kind: 'added' | 'replaced' | 'removed',
    value: unknown,
    replicated: boolean,
  ): void {
    const event = kind === 'added' ? 'attributeAdded' : kind === 'replaced' ? 'attributeReplaced' : 'attributeRemoved';
    if (this.listenerCount(event) === 0 || name === COOKIE_ATTRIBUTE) return; // internal: not the application's

    if (kind === 'removed') this.emit('attributeRemoved', s, name, replicated);
    else {
      const v = value instanceof Attribute ? s.getAttribute(name) : value;
      this.emit(event as 'attributeAdded', s, name, v, replicated);
    }
  }

  /** Counters and state for monitoring. */
  stats(): ManagerStats {
    return managerStats({
      context: this.contextName,
      activeSessions: this.sessions.size,
      replicaSessions: this.#store.replicaCount,
      tombstones: this.#store.tombstones.size,
      ready: this.#ready,
      stateTransfer: this.#receiver.stats,
      lateMemberMerges: this.#merges,
      replicationTime: this.#out.replicationTime,
      counters: this.#counters,
      sentByType: this.#out.sentByType,
      receivedByType: this.#in.receivedByType,
    });
  }
}
