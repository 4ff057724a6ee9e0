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
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Member } from '../channel/types.js';
import type { Nested } from '../codec/value-codec.js';
import { SendFlag } from '../config/send-options.js';
import type { SessionConfig } from '../config/session-config.js';
import { ClusterError, ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { COOKIE_ATTRIBUTE } from './cookie-meta.js';
import { byName, type Counter, newCounters, Refusals } from './counters.js';
import { type FencingHost, fence, isFenced, onTaken } from './fencing.js';
import { isSessionId, newSessionId } from './ids.js';
import { mergeRecord } from './merge.js';
import {
  type CreatedMsg,
  type DeltaMsg,
  Refused,
  readAccessed,
  readCreated,
  readDelta,
  readExpired,
  readIdChanged,
  readRecord,
  readSessionRequest,
  readTaken,
  readTombstones,
  receivedValues,
  tooFarAhead,
} from './message-readers.js';
import { MSG_TYPES, Msg, type SessionRecord } from './messages.js';
import { Ownership, type OwnershipHost } from './ownership.js';
import type { HubManager, ReplicationHub } from './replication-hub.js';
import {
  Attribute,
  attributeWire,
  newer,
  type ReceivedValue,
  Session,
  type SessionOwner,
  storeReceived,
  wireSize,
} from './session.js';
import type { SessionManager } from './session-manager.js';
import { streamSessions, toRecord } from './state-donor.js';
import { StateReceiver } from './state-receiver.js';

export type { StateTransferStats } from './state-receiver.js';

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

export interface DeltaManagerEvents {
  sessionCreated: [session: Session, replicated: boolean];
  sessionDestroyed: [session: Session, reason: DestroyReason, replicated: boolean];
  attributeAdded: [session: Session, name: string, value: unknown, replicated: boolean];
  attributeReplaced: [session: Session, name: string, value: unknown, replicated: boolean];
  attributeRemoved: [session: Session, name: string, replicated: boolean];
  conflict: [info: ConflictInfo];
  /** The node can serve: state transfer finished (or there was nobody to ask). */
  ready: [];
}

/** Asynchronous replication: queued, failures counted (Tomcat's channelSendOptions 8). */
const ASYNC = { options: SendFlag.ASYNCHRONOUS };
/** A turn's batch holds at most this many bytes of values (or BATCH_MESSAGES messages); a message that would pass it begins the next. */
const BATCH_BYTES = 256 * 1024;
/** Messages per batch: the most a node sends, and accepts (a longer one is dropped whole). */
const BATCH_MESSAGES = 1024;

export class DeltaManager extends EventEmitter<DeltaManagerEvents> implements HubManager, SessionOwner, SessionManager {
  readonly contextName: string;
  readonly sessions = new Map<string, Session>();
  readonly #tombstones = new Map<string, number>();
  readonly #counters: Record<Counter, number> = newCounters();
  readonly #refusals: Refusals;
  /** Sessions this node holds as copies (made from what a member sent): bounded by maxReplicaSessions. */
  readonly #replicas = new WeakSet<Session>();
  #replicaCount = 0;
  /** Members this node is sending every session to (one state transfer per member at a time). */
  readonly #donating = new Set<string>();
  /** Messages sent and received, by type (index = Msg value, 0 = an unknown type); named in stats(). */
  readonly #sentByType: number[] = new Array<number>(MSG_TYPES).fill(0);
  readonly #receivedByType: number[] = new Array<number>(MSG_TYPES).fill(0);
  #expiryTimer: NodeJS.Timeout | undefined;
  #ready = false;
  readonly #receiver: StateReceiver;
  #readyAt = 0;
  #merges = 0;
  #stopped = false;
  /** Milliseconds spent finding and sending changes at the end of requests. */
  #replicationTime = 0;
  readonly #ownership: Ownership | undefined;
  /** Sessions asked for in full (SESSION_REQUEST) and not yet received: whom, and when. */
  readonly #repairing = new Map<string, { from: string; at: number }>();
  readonly #sync: boolean;
  readonly #syncOptions: { options: number };
  /** Sessions whose requests ended this turn, in that order; sent by endTurn. */
  #turn: Session[] = [];
  #spareTurn: Session[] = [];
  /** endTurn is running: what it sends must not start another one. */
  #draining = false;
  /** Synchronous mode: what the turn's requests wait for — every member applied the turn's changes. */
  #turnApplied: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Largest batch: a bound for the receiver, and for one encode on this node. */
  readonly #batchBytes: number;

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
    this.#sync = (config.sendOptions & SendFlag.SYNC_ACK) !== 0;
    this.#syncOptions = { options: config.sendOptions };
    this.#batchBytes = Math.min(BATCH_BYTES, Math.floor(hub.channel.config.maxMessageBytes / 2));
    this.#ownership = config.ownership === 'migrate' ? new Ownership(this.#ownershipHost()) : undefined;
    this.#refusals = new Refusals(this.#counters, logger);
    this.#receiver = new StateReceiver(
      {
        applyRecord: (r, from, now) => this.#applyRecord(r, from, now),
        applyTombstones: (ids) => this.#applyTombstones(ids),
        apply: (m, from) => this.#apply(m, from),
        refuse: (from, why) => this.#refusals.refuse('refusedSessionData', from, why),
        malformed: (from, why) => this.#malformed(from, why),
      },
      hub,
      config,
      logger,
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
    this.#expiryTimer = setInterval(() => this.processExpires(Date.now()), this.config.processExpiresFrequency * 1000);
    this.#expiryTimer.unref();
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
    this.#sendTurnNow();
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
        this.#sendTurnNow(); // a hand-over follows the changes it hands over
        this.hub.channel.post(to, message, ASYNC, onError ?? this.#onSendError);
      },
      count: (counter) => {
        this.#counters[counter]++;
      },
      refuse: (counter, from, why) => this.#refusals.refuse(counter, from, why),
      fence: (s, owner) => {
        // Before this node serves it: the notice precedes its changes on every connection.
        const members = this.#members();
        const message = fence(s, this.contextName, owner);
        if (members.length > 0) void this.#send(members, message, false);
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
    this.#checkCapacity();
    let id = wanted ?? newSessionId();
    while (this.sessions.has(id) || this.#tombstones.has(id)) id = newSessionId();
    return this.#newSession(id, now);
  }

  /**
   * Creates a session under an id that server code generated (express-session's `genid`, for the
   * express-session store), never one a client presented: undefined when the id is malformed (see
   * isSessionId), already held, or was invalidated or expired lately (its tombstone), so a late
   * write cannot bring an ended session back. @throws ClusterError when maxActiveSessions is reached.
   */
  createSessionWithId(id: string, now = Date.now()): Session | undefined {
    if (!isSessionId(id) || this.sessions.has(id) || this.#tombstones.has(id)) return undefined;
    this.#checkCapacity();
    return this.#newSession(id, now);
  }

  /** Whether a session with this id ended lately (invalidated or expired: its tombstone is kept). */
  endedLately(id: string): boolean {
    return this.#tombstones.has(id);
  }

  /** @throws ClusterError TOO_MANY_SESSIONS when maxActiveSessions is reached (counted). */
  #checkCapacity(): void {
    const max = this.config.maxActiveSessions;
    if (max >= 0 && this.sessions.size - this.#replicaCount >= max) {
      this.#counters.rejectedSessions++;
      throw new ClusterError(
        ErrorCode.TOO_MANY_SESSIONS,
        `too many active sessions (maxActiveSessions ${this.config.maxActiveSessions}): try again later`,
      );
    }
  }

  #newSession(id: string, now: number): Session {
    const s = new Session(id, now, now, this.config.maxInactiveInterval, this);
    s.primary = true;
    s.ownerId = this.localId;
    this.sessions.set(id, s);
    this.#counters.sessionsCreated++;
    if (this.listenerCount('sessionCreated') > 0) this.emit('sessionCreated', s, false);
    return s;
  }

  /** The valid session with this id, or undefined (unknown, invalidated or expired). */
  findSession(id: string, now = Date.now()): Session | undefined {
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    if (s.maxInactiveInterval > 0 && s.active === 0) {
      const idle = s.idleMs(now);
      const max = s.maxInactiveInterval * 1000;
      // A copy learns of use elsewhere at most every accessedIntervalMs: allow for that lag.
      if (idle >= this.#expiresAfter(s, max)) {
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
    if (this.#members().length > 0) {
      // Sent with the turn's other changes at its end (endTurn). Their messages are built in one
      // tight loop there, and travel as one: interleaved with the HTTP work of each request, the
      // same code ran about twice as slow (cold caches), and each message paid the channel's
      // per-message costs on both sides (in synchronous mode an acknowledgement each, too). The
      // response waits for the end of the turn anyway (batchResponses), or its bytes leave then;
      // in synchronous mode it waits until every member applied the turn's changes.
      if (!s.queued) {
        s.queued = true;
        if (this.#turn.push(s) === 1) this.hub.queueTurn(this);
      }
      if (!this.#sync) return undefined;
      if (this.#turnApplied === undefined) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => {
          resolve = r;
        });
        this.#turnApplied = { promise, resolve };
      }
      return this.#turnApplied.promise;
    }
    const sent = this.replicate(s, now);
    s.releaseDecoded();
    if (s.active <= 0 && s.waiters !== undefined) this.#ownership?.handOver(s);
    return sent;
  }

  /**
   * The end of the event-loop turn (ReplicationHub): sends the changes of every session whose
   * request ended during the turn, in that order — one message when there is one, else BATCH
   * messages of up to BATCH_BYTES of values (in synchronous mode each acknowledged once applied,
   * which releases the turn's responses). Never throws: failures are counted and logged.
   */
  endTurn(): void {
    const list = this.#turn;
    if (list.length === 0 || this.#draining) return;
    this.#turn = this.#spareTurn;
    this.#draining = true;
    const t0 = performance.now();
    const applied = this.#turnApplied;
    this.#turnApplied = undefined;
    /** Synchronous mode: the sends of this turn (each settles, failures counted). */
    const sends: Promise<void>[] = [];
    let handOver: Session[] | undefined;
    let i = 0;
    try {
      const all = this.#members();
      const subset = this.#ownRecipients;
      let members: readonly Member[] = all;
      const now = Date.now();
      let batch: unknown[][] = [];
      let bytes = 0;
      for (; i < list.length; i++) {
        // Each session is here once: only this loop unqueues, and whatever sends before the turn
        // ends runs this loop first (#sendTurnNow).
        const s = list[i]!;
        s.queued = false;
        if (!s.valid) continue;
        if (subset) {
          // A policy's own recipients (BackupManager): consecutive sessions with one list share a batch.
          const to = this.recipientsOf(s, all);
          if (to !== members) {
            if (batch.length > 0) this.#postBatch(members, batch, sends);
            batch = [];
            bytes = 0;
            members = to;
          }
        }
        if (members.length === 0) {
          this.#replicate(s, now, members); // the last member left this turn: stamps only
        } else {
          const message = this.#changeMessage(s, now);
          if (message !== undefined) {
            const size = this.#countValueBytes(message, members);
            // The bound holds for the batch sent: a message that would pass it starts the next one
            // (alone, a message larger than the bound still goes, as it would without batching).
            if (batch.length > 0 && bytes + size > this.#batchBytes) {
              this.#postBatch(members, batch, sends);
              batch = [];
              bytes = 0;
            }
            batch.push(message);
            bytes += size;
            if (batch.length >= BATCH_MESSAGES) {
              this.#postBatch(members, batch, sends);
              batch = [];
              bytes = 0;
            }
          }
        }
        s.releaseDecoded();
        if (s.active <= 0 && s.waiters !== undefined) (handOver ??= []).push(s);
      }
      if (batch.length > 0) this.#postBatch(members, batch, sends);
    } catch (err) {
      this.#onSendError(err as Error);
    } finally {
      // After a failure, the sessions not reached keep their changes (dirty) for their next request.
      for (; i < list.length; i++) list[i]!.queued = false;
      list.length = 0;
      this.#spareTurn = list;
      this.#draining = false;
      this.#replicationTime += performance.now() - t0;
      if (applied !== undefined) {
        if (sends.length === 0) applied.resolve();
        else Promise.all(sends).then(applied.resolve);
      }
    }
    // After the changes they hand over (ownership.ts sends the grant at once).
    if (handOver !== undefined) for (const s of handOver) this.#ownership?.handOver(s);
  }

  /** Sends the changes queued for the end of this turn now: whatever is sent next must follow them. */
  #sendTurnNow(): void {
    if (this.#turn.length !== 0 && !this.#draining) this.endTurn();
  }

  /** Sends a turn's batch (a lone message as it is); in synchronous mode adds the send to `sends`. */
  #postBatch(members: readonly Member[], batch: unknown[][], sends: Promise<void>[]): void {
    let message: unknown[];
    if (batch.length === 1) message = batch[0]!;
    else {
      for (let i = 0; i < batch.length; i++) this.#sentByType[batch[i]![0] as number]!++;
      message = [Msg.BATCH, this.contextName, batch];
    }
    const sent = this.#sendChange(members, message);
    if (sent !== undefined) sends.push(sent);
  }

  /** Sends what #changeMessage built: acknowledged in synchronous mode, except a mere ACCESSED. */
  #sendChange(members: readonly Member[], message: unknown[]): Promise<void> | undefined {
    return this.#send(members, message, this.#sync && message[0] !== Msg.ACCESSED);
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
    const members = this.recipientsOf(s, this.#members());
    if (members.length > 0) this.#sendAccessed(s, now, members, true);
  }

  /**
   * Tells the members that `s` was used without a change, at most every accessedInterval, so that
   * they do not expire it. `readOnly`: the sender did not take it over (the owner stays the owner).
   */
  #sendAccessed(s: Session, now: number, members: readonly Member[], readOnly: boolean): void {
    const message = this.#accessedMessage(s, now, readOnly);
    if (message !== undefined) this.#send(members, message, false);
  }

  /** The ACCESSED message for `s`, or undefined when one was sent less than accessedInterval ago. */
  #accessedMessage(s: Session, now: number, readOnly: boolean): unknown[] | undefined {
    if (now - s.accessReplicatedAt < this.#accessedInterval(s)) return undefined;
    s.accessReplicatedAt = now;
    this.#counters.accessedSent++;
    const message: unknown[] = [Msg.ACCESSED, this.contextName, s.id, now];
    if (readOnly) message.push(true);
    return message;
  }

  /** Whether `route` is this node's or a current member's (a cookie naming it needs no re-homing). */
  servesRoute(route: string): boolean {
    if (route === this.route) return true;
    for (const m of this.#members()) if (m.name === route) return true;
    return false;
  }

  // ---- ownership ------------------------------------------------------------------------------

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
    this.#sendTurnNow(); // earlier requests' changes first, this session's among them
    const t0 = performance.now();
    const sent = this.#replicate(s, now, this.recipientsOf(s, this.#members()));
    this.#replicationTime += performance.now() - t0;
    return sent;
  }

  #replicate(s: Session, now: number, members: readonly Member[]): Promise<void> | undefined {
    if (members.length === 0) {
      this.#reportInPlaceErrors(s);
      // Alone: nobody to tell, but the stamps must move on as if we had (a member that joins
      // later receives them by state transfer).
      this.#stampAlone(s);
      return undefined;
    }
    const message = this.#changeMessage(s, now);
    if (message === undefined) return undefined;
    this.#countValueBytes(message, members);
    return this.#sendChange(members, message);
  }

  /** Counts the attribute bytes a CREATED or DELTA message sends to `members`; returns them (0 for others). */
  #countValueBytes(message: unknown[], members: readonly Member[]): number {
    const type = message[0];
    if (type !== Msg.CREATED && type !== Msg.DELTA) return 0;
    let bytes = 0;
    for (const v of message[type === Msg.CREATED ? 7 : 6] as (Buffer | Nested)[]) bytes += wireSize(v);
    this.#counters.valueBytesSent += bytes * members.length;
    return bytes;
  }

  /**
   * What to tell `members` about `s` after a request: the whole session the first time, then the
   * changed attributes only; a rate-limited ACCESSED when nothing changed (else undefined).
   * Stamps the session and counts the replication (the caller counts its bytes when it sends it).
   */
  #changeMessage(s: Session, now: number): unknown[] | undefined {
    this.#reportInPlaceErrors(s);
    let message: unknown[];
    if (!s.announced) {
      message = this.#createdMessage(s);
      s.announced = true;
    } else if (s.dirty !== undefined || s.maxInactiveDirty) {
      message = this.#deltaMessage(s);
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
    this.#sendTurnNow(); // queued changes travel under the id the others know
    const old = s.id;
    const members = this.recipientsOf(s, this.#members()); // those that hold it under its old id
    let id = newSessionId();
    while (this.sessions.has(id) || this.#tombstones.has(id)) id = newSessionId();
    this.sessions.delete(old);
    this.#tombstone(old);
    s.id = id;
    this.sessions.set(id, s);
    let sent: Promise<void> | undefined;
    if (s.announced) {
      if (members.length > 0) sent = this.#send(members, [Msg.ID_CHANGED, this.contextName, old, id], this.#sync);
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
    for (const s of this.sessions.values()) {
      if (s.maxInactiveInterval <= 0 || s.active > 0) continue;
      const idle = s.idleMs(now);
      const max = s.maxInactiveInterval * 1000;
      if (idle >= this.#expiresAfter(s, max)) this.#expire(s, 'expired', s.primary, false);
    }
    for (const [id, until] of this.#tombstones) if (until <= now) this.#tombstones.delete(id);
    // An answer lost with its sender is not awaited for ever (a later one is refused, counted).
    const asked = now - this.config.processExpiresFrequency * 1000;
    for (const [id, r] of this.#repairing) if (r.at <= asked) this.#repairing.delete(id);
  }

  // ---- receiving ------------------------------------------------------------------------------

  /** Handles a message of this context from `from`. */
  receive(m: unknown[], from: Member): void | Promise<void> {
    if (this.receiveOther(m, from)) return;
    const type = m[0] as number;
    this.#receivedByType[type > 0 && type < MSG_TYPES && (type | 0) === type ? type : 0]!++;
    if (type === Msg.STATE_REQUEST) return this.#answerStateRequest(m, from);
    if (type === Msg.STATE_CHUNK || type === Msg.STATE_COMPLETE || type === Msg.STATE_NONE)
      return this.#receiver.onMessage(m, from);
    if (type === Msg.BATCH) {
      this.#receiveBatch(m[2], from);
      return;
    }
    this.#applyOrQueue(m, from);
  }

  /** Live changes wait while a state transfer is running, then apply in order. */
  #applyOrQueue(m: unknown[], from: Member): void {
    const queue = this.#receiver.queue;
    if (queue !== undefined) queue.push([m, from]);
    else this.#apply(m, from);
  }

  /** A BATCH: each message in order; one that is not a change of this context is dropped and counted. */
  #receiveBatch(list: unknown, from: Member): void {
    if (!Array.isArray(list)) {
      this.#malformed(from, 'a batch without its list of messages');
      return;
    }
    if (list.length === 0 || list.length > BATCH_MESSAGES) {
      // No node sends more: one message must not hold the event loop for that long.
      this.#malformed(from, `a batch of ${list.length} messages (1 to ${BATCH_MESSAGES})`);
      return;
    }
    for (let i = 0; i < list.length; i++) {
      const m: unknown = list[i];
      const type = Array.isArray(m) ? m[0] : undefined;
      if (
        (type !== Msg.CREATED && type !== Msg.DELTA && type !== Msg.ACCESSED) ||
        (m as unknown[])[1] !== this.contextName
      ) {
        this.#malformed(from, 'a batch may hold only created, delta and accessed messages of its own context');
        continue;
      }
      this.#receivedByType[type]!++;
      this.#applyOrQueue(m as unknown[], from);
    }
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

  #apply(m: unknown[], from: Member): void {
    try {
      switch (m[0]) {
        case Msg.CREATED:
          this.#onCreated(readCreated(m), from);
          break;
        case Msg.DELTA:
          this.#onDelta(readDelta(m), from);
          break;
        case Msg.ACCESSED:
          this.#onAccessed(m, from);
          break;
        case Msg.ACQUIRE:
          if (this.#ownership) this.#ownership.onAcquire(m, from);
          else this.#malformed(from, 'ownership is "none" here: use the same sessions.ownership on every node');
          break;
        case Msg.GRANT:
          if (this.#ownership) this.#ownership.onGrant(m, from);
          else this.#refusals.refuse('refusedGrant', from, 'a grant, but ownership is "none" here');
          break;
        case Msg.EXPIRED:
          this.#onExpired(m, from);
          break;
        case Msg.ID_CHANGED:
          this.#onIdChanged(m, from);
          break;
        case Msg.SESSION_REQUEST:
          this.#onSessionRequest(m, from);
          break;
        case Msg.SESSION_DATA:
          this.#onSessionData(m, from);
          break;
        case Msg.TAKEN:
          this.#onTaken(m, from);
          break;
        default:
          this.#malformed(from, `unknown message type ${m[0]}`);
      }
    } catch (err) {
      this.#malformed(from, (err as Error).message);
    }
  }

  /** Counts a refusal; true when `r` is the message itself. */
  #ok<T>(r: T | Refused, from: Member): r is T {
    if (!(r instanceof Refused)) return true;
    this.#refusals.refuse(r.counter, from, r.why);
    return false;
  }

  #onCreated(m: CreatedMsg | Refused, from: Member): void {
    if (!this.#ok(m, from)) return;
    const id = m[2];
    const version = m[5];
    const incoming = receivedValues(m[7], false); // checked whole before anything is applied
    const now = Date.now();
    let s = this.#replicaOf(id);
    if (s === null) return;
    if (s === undefined) {
      s = this.#newReplica(id, m[3], now, m[4], from);
      if (s === undefined) return;
      if (this.config.notifyListenersOnReplication && this.listenerCount('sessionCreated') > 0) {
        this.emit('sessionCreated', s, true);
      }
    } else if (this.#tooFarAhead(version, s, from) || this.#fenced(s, from, -1)) return;
    this.#applyAttributes(s, version, -1, from.id, m[6], incoming, [], now);
  }

  #onDelta(m: DeltaMsg | Refused, from: Member): void {
    if (!this.#ok(m, from)) return;
    const id = m[2];
    const version = m[4];
    const maxInactive = m[8];
    const incoming = receivedValues(m[6], false);
    const now = Date.now();
    let s = this.#replicaOf(id);
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
    this.#applyAttributes(s, version, m[3], from.id, m[5], incoming, m[7], now);
  }

  /** A write of an owner fenced since it was made (fencing.ts): refused as stale, counted. */
  #fenced(s: Session, from: Member, base: number): boolean {
    if (!isFenced(s, from.id, base)) return false;
    this.#refusals.refuse('fencedWrites', from, 'a write of an owner whose session was taken over since (stale)');
    return true;
  }

  /** TAKEN: another node took a session over from an owner that did not hand it over (fencing.ts). */
  #onTaken(raw: unknown[], from: Member): void {
    if (this.#ownership === undefined) {
      this.#malformed(from, 'a take-over, but ownership is "none" here: use the same sessions.ownership on every node');
      return;
    }
    const m = readTaken(raw);
    if (!this.#ok(m, from)) return;
    if (m[3] === from.id) {
      this.#malformed(from, 'a take-over from itself');
      return;
    }
    const s = this.#replicaOf(m[2]);
    if (s == null || this.#tooFarAhead(m[4], s, from)) return; // not held here: nothing to fence
    onTaken(this.#fencingHost(), s, m, from);
  }

  /** Asks `from` for the whole session `id` (SESSION_REQUEST), unless already asked. */
  #repair(id: string, from: Member, now: number): void {
    if (this.#repairing.has(id)) return;
    this.#repairing.set(id, { from: from.id, at: now });
    this.#counters.repairs++;
    void this.#send([from], [Msg.SESSION_REQUEST, this.contextName, id], false);
  }

  /** A version too far ahead of this node's copy (message-readers.ts): refused, counted. */
  #tooFarAhead(version: number, s: Session, from: Member): boolean {
    if (!tooFarAhead(version, s.version)) return false;
    this.#refusals.refuse('refusedVersion', from, `a version ${version - s.version} ahead of this node's copy`);
    return true;
  }

  /** The session a replication message is about: undefined if unknown here, null if it was invalidated (counted). */
  #replicaOf(id: string): Session | undefined | null {
    // (size first: most of the time there is no tombstone, and a lookup hashes the fresh id string)
    if (this.#tombstones.size > 0 && this.#tombstones.has(id)) {
      this.#counters.staleDeltas++;
      return null;
    }
    return this.sessions.get(id);
  }

  /**
   * A copy of a session made on another node; undefined (refused, counted) when this node holds
   * maxReplicaSessions copies already. The sender is not told: its replication succeeded as far
   * as it can see, and this node simply does not hold that session.
   */
  #newReplica(id: string, created: number, accessed: number, maxInactive: number, from: Member): Session | undefined {
    const max = this.config.maxReplicaSessions;
    if (max >= 0 && this.#replicaCount >= max) {
      this.#refusals.refuse('refusedReplicaLimit', from, `this node holds maxReplicaSessions (${max}) copies`);
      return undefined;
    }
    const s = new Session(id, created, accessed, maxInactive, this);
    s.announced = true;
    s.isNew = false;
    this.sessions.set(id, s);
    this.#replicas.add(s);
    this.#replicaCount++;
    return s;
  }

  /** Applies attribute writes stamped (version, writer); counts stale ones and same-attribute conflicts. */
  #applyAttributes(
    s: Session,
    version: number,
    base: number,
    writer: string,
    names: readonly string[],
    incoming: readonly (ReceivedValue | null)[],
    removed: readonly string[],
    now: number,
  ): void {
    let applied = 0;
    const notify = this.config.notifyListenersOnReplication;
    for (let i = 0; i < names.length + removed.length; i++) {
      const isRemove = i >= names.length;
      const name = isRemove ? removed[i - names.length]! : names[i]!;
      const a = s.attributes.get(name);
      if (a !== undefined && s.dirty?.has(name)) {
        // A local write not yet replicated: it will be stamped newer than this and win everywhere.
        // A conflict only if the local write had not seen this one (newer than the value it
        // replaced); an older one merely arrived late, e.g. from a former owner two hand-overs ago.
        // None either when this node lost the session meanwhile: its write will be dropped.
        if (s.revert === undefined && newer(version, writer, a.v, a.w))
          this.#conflict(s, name, this.localId, writer, false);
        continue;
      }
      if (a !== undefined) {
        if (!newer(version, writer, a.v, a.w)) {
          // Older than ours: a conflict only if our write had not seen it (else it was merely reordered).
          if (a.w !== writer && a.w !== '' && a.b < version && base >= 0) this.#conflict(s, name, a.w, writer, false);
          continue;
        }
        // Newer: a conflict only if it had not seen our write.
        if (a.w !== writer && a.w !== '' && base >= 0 && base < a.v) this.#conflict(s, name, a.w, writer, true);
        const existed = !a.removed;
        a.v = version;
        a.w = writer;
        a.b = base < 0 ? version : base;
        a.decoded = false;
        a.value = undefined;
        if (isRemove) {
          a.removed = true;
          a.bytes = undefined;
          if (notify && existed) this.#notifyAttribute(s, name, 'removed', undefined, true);
        } else {
          a.removed = false;
          storeReceived(a, incoming[i]!);
          if (notify) this.#notifyAttribute(s, name, existed ? 'replaced' : 'added', a, true);
        }
        s.handedOut?.delete(name);
      } else {
        const attr = new Attribute(undefined, version, writer, isRemove);
        if (!isRemove) storeReceived(attr, incoming[i]!);
        attr.b = base < 0 ? version : base;
        s.attributes.set(name, attr);
        if (notify && !isRemove) this.#notifyAttribute(s, name, 'added', attr, true);
      }
      applied++;
    }
    if (applied === 0 && version <= s.version && names.length + removed.length > 0) this.#counters.staleDeltas++;
    if (version > s.version) {
      s.version = version;
      if (s.active <= 0) {
        // The writer served the last request: it owns the session now.
        s.ownerId = writer;
        s.primary = false;
      }
    }
    s.lastAccessedTime = Math.max(s.lastAccessedTime, now);
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

  #onAccessed(raw: unknown[], from: Member): void {
    const m = readAccessed(raw);
    if (!this.#ok(m, from)) return;
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
  #onExpired(raw: unknown[], from: Member): void {
    const m = readExpired(raw);
    if (!this.#ok(m, from)) return;
    const s = this.sessions.get(m[2]);
    if (s !== undefined) this.#expire(s, m[3] === 'invalidated' ? 'invalidated' : 'expired', false, true);
    else if (!this.#tombstones.has(m[2])) this.#refusals.refuse('refusedExpired', from, 'an unknown session');
  }

  /** ID_CHANGED: only from an id held here, to one neither held nor invalidated here. */
  #onIdChanged(raw: unknown[], from: Member): void {
    const m = readIdChanged(raw);
    if (!this.#ok(m, from)) return;
    const oldId = m[2];
    const newId = m[3];
    const s = this.sessions.get(oldId);
    if (s === undefined || this.sessions.has(newId) || this.#tombstones.has(newId)) {
      if (s !== undefined || !this.#tombstones.has(oldId))
        this.#refusals.refuse('refusedIdChanges', from, 'an id change from an unknown id or to a taken one');
      return;
    }
    this.#tombstone(oldId);
    this.sessions.delete(oldId);
    s.id = newId;
    this.sessions.set(newId, s);
    s.primary = false;
  }

  /** SESSION_REQUEST: a member missed a session's creation; it gets the whole session. */
  #onSessionRequest(raw: unknown[], from: Member): void {
    const m = readSessionRequest(raw);
    if (!this.#ok(m, from)) return;
    const s = this.sessions.get(m[2]);
    if (s?.valid && s.announced) {
      this.#sendTurnNow(); // the record's stamps must cover its values
      void this.#send([from], [Msg.SESSION_DATA, this.contextName, toRecord(s)], false);
    }
  }

  /** SESSION_DATA: taken only as the answer of the member this node asked, for the session asked. */
  #onSessionData(m: unknown[], from: Member): void {
    const r = readRecord(m[2]);
    if (!this.#ok(r, from)) return;
    const asked = this.#repairing.get(r[0]);
    if (asked === undefined || asked.from !== from.id) {
      this.#refusals.refuse('refusedSessionData', from, 'session data this node did not ask that member for');
      return;
    }
    this.#repairing.delete(r[0]);
    this.#takeRecord(r, from, Date.now());
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /**
   * Idle time after which `s` has expired here: maxInactiveInterval on the node that served it
   * last (the primary); twice that on a copy (Tomcat's rule: a copy learns of use elsewhere only
   * through "accessed" messages, and must outlive a primary that crashed only as a safety net).
   */
  #expiresAfter(s: Session, max: number): number {
    return s.primary ? max : Math.max(2 * max, max + this.#accessedInterval(s) + 1000);
  }

  /** How often a read-only use of `s` is told to the others: a quarter of its own timeout, at most the configured interval. */
  #accessedInterval(s: Session): number {
    const own =
      s.maxInactiveInterval > 0 ? Math.max(100, (s.maxInactiveInterval * 1000) / 4) : this.config.accessedIntervalMs;
    return Math.min(this.config.accessedIntervalMs, own);
  }

  /**
   * Ends `s` here; with `broadcast`, on every node too (in synchronous mode the promise resolves
   * once they all dropped it). `replicated` says whether another node decided it.
   */
  #expire(
    s: Session,
    reason: 'expired' | 'invalidated',
    broadcast: boolean,
    replicated: boolean,
  ): Promise<void> | undefined {
    if (!s.valid) return undefined;
    if (broadcast) this.#sendTurnNow(); // what requests changed goes before the end (listeners see both)
    s.valid = false;
    this.sessions.delete(s.id);
    if (this.#replicas.delete(s)) this.#replicaCount--;
    this.#tombstone(s.id);
    if (reason === 'expired') this.#counters.sessionsExpired++;
    else this.#counters.sessionsInvalidated++;
    let sent: Promise<void> | undefined;
    if (broadcast && s.announced) {
      const members = this.recipientsOf(s, this.#members());
      if (members.length > 0) sent = this.#send(members, [Msg.EXPIRED, this.contextName, s.id, reason], this.#sync);
    }
    if ((!replicated || this.config.notifyListenersOnReplication) && this.listenerCount('sessionDestroyed') > 0) {
      this.emit('sessionDestroyed', s, reason, replicated);
    }
    return sent;
  }

  #tombstone(id: string): void {
    this.#tombstones.set(id, Date.now() + this.config.tombstoneTtlMs);
  }

  // ---- sending --------------------------------------------------------------------------------

  /**
   * A local write: the session's version moves on and every attribute it writes (all of them the
   * first time, else those changed since the last write) gets its stamp. Returns the new version.
   */
  #stamp(s: Session): number {
    const base = s.version;
    const v = ++s.version;
    const me = this.localId;
    const written = s.announced ? s.dirty : s.attributes.keys();
    if (written !== undefined) {
      for (const name of written) {
        const a = s.attributes.get(name);
        if (a === undefined) continue;
        a.v = v;
        a.w = me;
        a.b = base;
      }
    }
    s.dirty = undefined;
    s.maxInactiveDirty = false;
    return v;
  }

  /** Alone: the stamps move on as if the write had been sent (a later member gets them by transfer). */
  #stampAlone(s: Session): void {
    if (s.announced && s.dirty === undefined && !s.maxInactiveDirty) return;
    this.#stamp(s);
    s.announced = true;
  }

  #createdMessage(s: Session): unknown[] {
    const v = this.#stamp(s);
    const names: string[] = [];
    const values: (Buffer | Nested)[] = [];
    s.attributes.forEach((a, name) => {
      if (a.removed) return;
      names.push(name);
      values.push(attributeWire(a));
    });
    return [Msg.CREATED, this.contextName, s.id, s.creationTime, s.maxInactiveInterval, v, names, values];
  }

  #deltaMessage(s: Session): unknown[] {
    const base = s.version;
    const dirty = s.dirty;
    const maxInactive = s.maxInactiveDirty ? s.maxInactiveInterval : null;
    const v = this.#stamp(s);
    const names: string[] = [];
    const values: (Buffer | Nested)[] = [];
    const removed: string[] = [];
    if (dirty !== undefined) {
      for (const name of dirty) {
        const a = s.attributes.get(name);
        if (a === undefined) continue;
        if (a.removed) removed.push(name);
        else {
          names.push(name);
          values.push(attributeWire(a));
        }
      }
    }
    return [Msg.DELTA, this.contextName, s.id, base, v, names, values, removed, maxInactive];
  }

  #send(members: readonly Member[], message: readonly unknown[], sync: boolean): Promise<void> | undefined {
    this.#sendTurnNow();
    this.#sentByType[message[0] as number]!++;
    if (!sync) {
      this.hub.channel.post(members, message, ASYNC, this.#onSendError);
      return undefined;
    }
    return this.hub.channel.send(members, message, this.#syncOptions).catch(this.#onSendError);
  }

  readonly #onSendError = (err: Error): void => {
    if (this.#counters.replicationErrors++ % 100 === 0) {
      this.logger.warn({ err: err.message, failures: this.#counters.replicationErrors }, 'replication failed');
    }
  };

  // ---- state transfer -------------------------------------------------------------------------

  /** The donor's tombstones (end of a state transfer): those sessions must not live on here. */
  #applyTombstones(list: unknown): void {
    const ids = readTombstones(list, () => this.#refusals.refuse('malformedIds', undefined, 'a tombstone id'));
    for (const id of ids) {
      this.#tombstone(id);
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
    if (!this.#ok(r, from)) return 0;
    try {
      return this.#takeRecord(r, from, now);
    } catch (err) {
      this.#malformed(from, (err as Error).message); // a value that does not decode: nothing applied
      return 0;
    }
  }

  #takeRecord(r: SessionRecord, from: Member, now: number): number {
    const id = r[0];
    if (this.#tombstones.has(id)) return 0;
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
  #answerStateRequest(m: unknown[], from: Member): void {
    if (this.#donating.has(from.id)) {
      this.#refusals.refuse('refusedStateRequests', from, 'a state request while one from it is being answered');
      this.hub.channel.post(from, [Msg.STATE_NONE, this.contextName, m[2]], ASYNC, this.#onSendError);
      return;
    }
    this.#donating.add(from.id);
    void streamSessions(
      {
        channel: this.hub.channel,
        context: this.contextName,
        sessions: this.sessions,
        tombstones: this.#tombstones,
        chunkSize: this.config.stateTransferChunkSize,
        logger: this.logger,
        beforeChunk: () => this.#sendTurnNow(), // a record must not carry changes its stamps do not
      },
      from,
      m[2],
    ).finally(() => this.#donating.delete(from.id));
  }

  #malformed(from: Member, why: string): void {
    this.#refusals.refuse('malformed', from, why);
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

  // ---- policy hooks: what a manager with another placement of copies (BackupManager) overrides --

  /** Whether a subclass chose its own recipients (else endTurn sends everything to every member). */
  get #ownRecipients(): boolean {
    return this.recipientsOf !== DeltaManager.prototype.recipientsOf;
  }

  /** Who gets the changes (and ends, renames, accesses) of `s`, of the context's members: all of them here. */
  protected recipientsOf(_s: Session, members: readonly Member[]): readonly Member[] {
    return members;
  }

  /** Before the node serves: every session of the context from the oldest member (state transfer). */
  protected initialTransfer(): Promise<void> {
    return this.#receiver.run();
  }

  /** A message the policy handles itself (types the DeltaManager does not send): true when handled. */
  protected receiveOther(_m: unknown[], _from: Member): boolean {
    return false;
  }

  /** Checks and applies one whole session from `from`, merging by stamps (refusals counted); its value bytes. */
  protected applyRecordFrom(raw: unknown, from: Member, now: number): number {
    return this.#applyRecord(raw, from, now);
  }

  /** The outbound barrier: sends what is queued for the end of the turn now. */
  protected flushQueued(): void {
    this.#sendTurnNow();
  }

  /** Sends `message` after what is queued, counted by type (`sync`: resolves once applied). */
  protected sendAfterQueued(
    to: readonly Member[],
    message: readonly unknown[],
    sync: boolean,
  ): Promise<void> | undefined {
    return this.#send(to, message, sync);
  }

  /** Drops this node's copy of `s` without a tombstone and without listeners: the session lives on elsewhere. */
  protected forget(s: Session): void {
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    if (this.#replicas.delete(s)) this.#replicaCount--;
  }

  /** Counters and state for monitoring. */
  stats(): Record<string, unknown> {
    return {
      context: this.contextName,
      /** Which manager (sessions.manager); a BackupManager says "backup". */
      manager: 'delta',
      activeSessions: this.sessions.size,
      replicaSessions: this.#replicaCount,
      tombstones: this.#tombstones.size,
      ready: this.#ready,
      stateTransfer: { ...this.#receiver.stats },
      lateMemberMerges: this.#merges,
      replicationTimeMs: Math.round(this.#replicationTime * 1000) / 1000,
      ...this.#counters,
      sent: byName(this.#sentByType),
      received: byName(this.#receivedByType),
    };
  }
}
