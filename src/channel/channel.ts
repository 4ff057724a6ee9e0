/**
 * The channel: clowder's group-communication layer (Tomcat's Tribes GroupChannel). It owns the
 * receiver, one outbound connection per member, the membership service and the interceptor
 * stack, and knows nothing of HTTP or sessions.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { decodeBudgetRefusals, encode } from '../codec/value-codec.js';
import { type ChannelConfig, type ChannelConfigInput, resolveChannelConfig } from '../config/channel-config.js';
import { parseSendOptions, SendFlag } from '../config/send-options.js';
import { ClusterError, ErrorCode } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { createMembership } from '../membership/create.js';
import { type MembershipContext, type MembershipService, newMembershipCounters } from '../membership/membership.js';
import { LOCAL_SOCKETS_SUPPORTED, localSocketPath } from '../transport/local-socket.js';
import { type InboundConnection, Receiver } from '../transport/receiver.js';
import type { TransportSettings } from '../transport/settings.js';
import { createTransportStats } from '../transport/stats.js';
import type { ClusterKeys } from '../wire/auth.js';
import { encodeMember, type MemberDescriptor, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../wire/member.js';
import { gcmEngine } from '../wire/native-gcm.js';
import type { ChannelEvents, ChannelStats, MessageHandler, MessageHandlerOptions, SendOptions } from './api.js';
import { unlistedReceiverWarning } from './bind-check.js';
import { DepartedMembers } from './departed.js';
import { Inbound } from './inbound.js';
import { createInterceptors } from './interceptors/index.js';
import { type ResolvedKeys, replaceClusterKeys, resolveClusterKeys } from './key-source.js';
import { Liveness } from './liveness.js';
import { MemberCache } from './member-cache.js';
import { DATA_HEAD, Outbound } from './outbound.js';
import { buildPipeline, type Pipeline, RESOLVED } from './pipeline.js';
import type { Interceptor, InterceptorContext, Member, Upstream } from './types.js';

export type {
  ChannelEvents,
  ChannelStats,
  MessageHandler,
  MessageHandlerOptions,
  ReceivedMessage,
  SendOptions,
} from './api.js';

type State = 'new' | 'starting' | 'started' | 'stopping' | 'stopped';

/**
 * A running member of a cluster. Create with {@link createChannel}, then `start()`.
 */
export class Channel extends EventEmitter<ChannelEvents> {
  readonly config: ChannelConfig;
  readonly #logger: Logger;
  #keys: ClusterKeys | undefined;
  #keySource: ResolvedKeys | undefined;
  readonly #stats = createTransportStats();
  #settings: TransportSettings;
  readonly #interceptors: Interceptor[];
  readonly #membership: MembershipService;
  readonly #id = randomBytes(16).toString('hex');
  readonly #startTime = Date.now();
  #state: State = 'new';
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #receiver: Receiver | undefined;
  #local: Member | undefined;
  #localDescriptor: MemberDescriptor | undefined;
  #localBytes: Buffer | undefined;
  #payloadBytes: Uint8Array;
  #pipeline: Pipeline | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  /** Members visible to the application (what came out of the top of the stack). */
  readonly #view = new Map<string, Member>();
  /** Member objects by id, for messages from connections (cached decode of the descriptor). */
  readonly #members = new MemberCache();
  readonly #out: Outbound = new Outbound({
    settings: () => this.#settings,
    suspected: (m, err) => {
      if (this.#state === 'started' && this.#view.has(m.id)) this.#pipeline!.up.memberSuspected(m, err);
    },
  });
  readonly #in: Inbound;
  #sent = 0;
  #sendErrors = 0;
  #heartbeatsRefused = 0;
  readonly #liveness: Liveness;
  /** The static member list does not name this node's receiver (see bind-check.ts). */
  #receiverUnlisted = false;
  /** Ids removed from the view, so that one added again is known as a rejoin (see departed.ts). */
  readonly #departed = new DepartedMembers();
  /**
   * Members in view that a membership service reported gone (heartbeats silent past dropTime)
   * while an interceptor (the failure detector: it answered over TCP) kept them in view.
   */
  readonly #silent = new Set<string>();
  #rejoins = 0;

  constructor(config: ChannelConfigInput = {}, deps: { logger?: Logger } = {}) {
    super();
    this.config = resolveChannelConfig(config);
    this.#logger = (deps.logger ?? createLogger()).child({ component: 'channel', node: this.config.name });
    this.#in = new Inbound(this.#logger);
    this.#payloadBytes = this.config.payload === undefined ? new Uint8Array(0) : encode(this.config.payload);
    const c = this.config;
    this.#settings = {
      connectTimeoutMs: c.sender.connectTimeoutMs,
      timeoutMs: c.sender.timeoutMs,
      maxRetryAttempts: c.sender.maxRetryAttempts,
      maxQueueBytes: c.sender.maxQueueBytes,
      maxFrameBytes: c.maxFrameBytes,
      replayWindowMs: c.replayWindowMs,
      handshakeTimeoutMs: c.receiver.handshakeTimeoutMs,
      idleTimeoutMs: c.receiver.idleTimeoutMs,
      reconnectMinMs: c.sender.reconnectMinMs,
      reconnectMaxMs: c.sender.reconnectMaxMs,
      keys: undefined, // resolved at start (a key file may have to be read or created)
      encrypt: c.encrypt,
      localSockets: c.receiver.localSocket && LOCAL_SOCKETS_SUPPORTED,
      localDescriptor: () => this.#localBytes!,
      stats: this.#stats,
      versionRefused: (err, peer, via) => this.#liveness.versionRefused(err, peer, via),
    };
    this.#liveness = new Liveness({
      config: c,
      logger: this.#logger,
      stats: this.#stats,
      settings: () => this.#settings,
      connection: (id) => this.#out.connections.get(id),
      member: (id) => this.#view.get(id),
      dead: (m) => {
        if (this.#state !== 'started') return;
        this.#membership.forget(m.id);
        this.#pipeline!.up.memberRemoved(m, 'unreachable');
      },
    });
    this.#interceptors = createInterceptors(c);
    this.#membership = createMembership(c.membership);
  }

  /** The local member (available once started). */
  get local(): Member {
    if (this.#local === undefined)
      throw new ClusterError(ErrorCode.NOT_STARTED, 'channel not started: call start() first');
    return this.#local;
  }

  /** True between a completed start() and stop(). */
  get running(): boolean {
    return this.#state === 'started';
  }

  /** Members other than this one, as the application sees them. */
  members(): Member[] {
    return Array.from(this.#view.values());
  }

  /**
   * Resolves once the membership service finished its first round of discovery (multicast: two
   * heartbeat periods; static: every listed peer answered or failed a ping). A starting session
   * manager waits for this before it decides whether anyone holds sessions for it.
   */
  settled(): Promise<void> {
    if (this.#state !== 'started')
      return Promise.reject(new ClusterError(ErrorCode.NOT_STARTED, 'channel not started'));
    return this.#membership.settled();
  }

  /**
   * Registers a message handler; returns a function that removes it. See
   * {@link MessageHandlerOptions.borrow} for handlers that do not keep messages.
   */
  onMessage(handler: MessageHandler, options: MessageHandlerOptions = {}): () => void {
    return this.#in.add(handler, options);
  }

  /**
   * Starts the receiver, the interceptors and membership, in that order (Tribes' order: the
   * receiver's bound port is what membership advertises).
   */
  start(): Promise<void> {
    if (this.#state !== 'new')
      return Promise.reject(new ClusterError(ErrorCode.STOPPED, `channel cannot start from state ${this.#state}`));
    this.#state = 'starting';
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const c = this.config;
    try {
      const resolved = await resolveClusterKeys(c);
      this.#keySource = resolved;
      this.#keys = resolved.keys;
      this.#settings = { ...this.#settings, keys: resolved.keys };
      if (resolved.created) this.#logger.info({ keyFile: resolved.file }, 'created the cluster key file (mode 0600)');
      if (resolved.stretched > 0)
        this.#logger.warn(
          { stretched: resolved.stretched },
          'cluster key looks like a passphrase: stretched with scrypt; prefer a random key (`openssl rand -base64 32`)',
        );
      const receiver = new Receiver(
        {
          host: c.receiver.address,
          port: c.receiver.port,
          autoBind: c.receiver.autoBind,
          maxConnections: c.receiver.maxConnections,
          maxConnectionsPerAddress: c.receiver.maxConnectionsPerAddress,
          ...(this.#settings.localSockets ? { localPath: localSocketPath(this.#id) } : {}),
          assembly: this.#in.assembly,
        },
        this.#settings,
        {
          data: (conn, flags, seq, payload, borrowed) => this.#onData(conn, flags, seq, payload, borrowed),
          leave: (conn) => this.#onLeave(conn.remote.id),
          hello: (conn) => {
            if (this.#state === 'started') this.#membership.heard(conn.remote);
          },
          closed: (conn) => {
            for (const ic of this.#interceptors) ic.connectionClosed?.(conn.remote.id);
          },
        },
        this.#logger,
      );
      this.#receiver = receiver;
      const bound = await receiver.listen();
      this.#setLocal(bound.host, bound.port);
      const unlisted = unlistedReceiverWarning(c, bound.host, bound.port);
      if (unlisted !== undefined) {
        this.#receiverUnlisted = true;
        this.#logger.warn({ bound: `${bound.host}:${bound.port}`, configuredPort: c.receiver.port }, unlisted);
      }
      this.#pipeline = buildPipeline(this.#interceptors, (msg) => this.#out.transmit(msg), this.#top());
      for (let i = 0; i < this.#interceptors.length; i++) await this.#interceptors[i]!.start?.(this.#contextFor(i));
      await this.#membership.start(this.#membershipContext());
      await this.#liveness.start(this.#id, bound.host, bound.port, this.#keys);
      this.#tickTimer = setInterval(() => {
        const now = Date.now();
        for (const ic of this.#interceptors) ic.tick?.(now);
      }, 1000);
      this.#tickTimer.unref();
      this.#state = 'started';
      this.#logger.info(
        {
          id: this.#id,
          host: bound.host,
          port: bound.port,
          membership: this.#membership.kind,
          auth: this.#keys ? (c.encrypt ? 'encrypt' : 'mac') : 'none',
          keySource: resolved.source,
          ...(resolved.file !== undefined ? { keyFile: resolved.file } : {}),
          ...(this.#keys && this.#keys.size > 1 ? { keys: this.#keys.size } : {}),
          // Who seals records: the native module (native/gcm.c) when built, else node:crypto (~3x slower).
          ...(this.#keys ? { gcm: gcmEngine } : {}),
        },
        'channel started',
      );
    } catch (err) {
      await this.#shutdown(false);
      this.#state = 'stopped';
      throw err;
    }
  }

  /** Graceful stop: flushes queued messages, tells the others this member leaves, closes everything. */
  async stop(): Promise<void> {
    // A start in progress ends first (it takes milliseconds: bind, interceptors, membership), so
    // that nothing it opens afterwards outlives the stop.
    if (this.#state === 'starting') await this.#starting?.catch(() => {});
    if (this.#state === 'stopped') return;
    // A second caller waits for the same shutdown: when stop() resolves, the member has left.
    if (this.#state === 'stopping') return this.#stopping;
    if (this.#state === 'new') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    this.#stopping = this.#shutdown(true)
      .finally(() => {
        this.#state = 'stopped';
      })
      .then(() => this.#logger.info({}, 'channel stopped'));
    return this.#stopping;
  }

  /**
   * Sends `message` to `to` (a member, a list, or all members when omitted). A Uint8Array travels
   * as raw bytes; anything else is encoded with the codec (ERR_CLOWDER_CODEC_ENCODE says why not).
   * Resolves per the send options: asynchronous = queued; use_ack = every recipient acknowledged
   * receipt; use_ack,sync = every recipient processed it. Rejects with a SendError naming each
   * member that failed or timed out.
   */
  send(to: Member | readonly Member[] | undefined, message: unknown, options?: SendOptions): Promise<void> {
    if (this.#state !== 'started') {
      return Promise.reject(new ClusterError(ErrorCode.NOT_STARTED, `cannot send: channel is ${this.#state}`));
    }
    let flags = options?.options === undefined ? this.config.sendOptions : parseSendOptions(options.options, 'options');
    let payload: Uint8Array;
    let framed: Buffer | undefined;
    if (message instanceof Uint8Array) {
      payload = message;
      flags |= SendFlag.BYTE_MESSAGE;
    } else {
      try {
        // Encoded once, straight behind room for the DATA header: a queued asynchronous message
        // then travels as this very buffer to every destination (see #transmit).
        framed = encode(message, undefined, DATA_HEAD);
      } catch (err) {
        return Promise.reject(err);
      }
      payload = framed.subarray(DATA_HEAD);
    }
    const destinations =
      to === undefined ? this.members() : Array.isArray(to) ? (to as readonly Member[]) : [to as Member];
    if (destinations.length === 0) return RESOLVED;
    this.#sent++;
    return this.#pipeline!.send({
      destinations,
      flags,
      payload,
      timeoutMs: options?.timeoutMs ?? this.config.sender.timeoutMs,
      wait: true,
      framed,
    });
  }

  /**
   * Fire and forget: like {@link send}, but returns nothing and allocates no promise for the
   * caller when the message was queued; a failure goes to `onError` (or the 'sendError' event).
   */
  post(
    to: Member | readonly Member[] | undefined,
    message: unknown,
    options?: SendOptions,
    onError?: (err: Error) => void,
  ): void {
    const p = this.send(to, message, options);
    if (p === RESOLVED) return;
    p.catch(
      onError ??
        ((err: Error) => {
          if (this.listenerCount('sendError') > 0)
            this.emit('sendError', err, Array.isArray(to) ? to : to ? [to as Member] : []);
          else this.#logger.warn({ err }, 'send failed');
        }),
    );
  }

  /**
   * Replaces the cluster keys of a running channel, for a rotation without restart (the same
   * steps as with restarts: [K1] → [K1,K2] on every node, then [K2,K1], then [K2]). From now on
   * hellos and heartbeats are signed with the first key and accepted under any; connections
   * already open keep the keys they were made with until they close (restart a node to drop them).
   * @throws ConfigError for a bad key (never shown); ClusterError when the channel runs without keys
   */
  async setClusterKeys(keys: string | readonly string[]): Promise<void> {
    if (this.#state !== 'started' || this.#keys === undefined)
      throw new ClusterError(
        ErrorCode.NOT_STARTED,
        this.#keys === undefined && this.#state === 'started'
          ? 'this channel runs without a cluster key (insecure: true): restart it with one'
          : `cannot set cluster keys: channel is ${this.#state}`,
      );
    this.#keySource = await replaceClusterKeys(this.#keys, keys);
    this.#logger.info({ keys: this.#keys.size, keySource: 'clusterKey' }, 'cluster keys replaced');
  }

  /** Changes the payload this member advertises (e.g. the contexts it serves); peers see it at once. */
  setPayload(value: unknown): void {
    this.#payloadBytes = value === undefined ? new Uint8Array(0) : encode(value);
    if (this.#local) {
      this.#setLocal(this.#local.host, this.#local.port);
      this.#membership.localChanged();
    }
  }

  /**
   * Hands every queued message to its socket now, instead of at the end of this event-loop turn
   * (where the batch is written otherwise). For a caller whose next output must follow them.
   */
  flushNow(): void {
    this.#out.flushNow();
  }

  /** Resolves when every queued message has been written to its socket. */
  flush(): Promise<void> {
    return this.#out.flush();
  }

  /** Bytes queued for a member (or all members). */
  pendingBytes(member?: Member): number {
    return this.#out.pendingBytes(member);
  }

  /** Counters for monitoring. */
  stats(): ChannelStats {
    const interceptors: Record<string, Record<string, number>> = {};
    for (const ic of this.#interceptors) if (ic.stats) interceptors[ic.name] = ic.stats();
    return {
      transport: { ...this.#stats },
      membership: {
        members: this.#view.size,
        heartbeatsRefused: this.#heartbeatsRefused,
        rejoins: this.#rejoins,
        ...newMembershipCounters(),
        ...this.#membership.stats?.(),
      },
      messages: {
        sent: this.#sent,
        received: this.#in.received,
        handlerErrors: this.#in.handlerErrors,
        sendErrors: this.#sendErrors + this.#out.sendErrors,
      },
      interceptors,
      auth: {
        keySource: this.#keySource?.source ?? 'unresolved',
        ...(this.#keySource?.file !== undefined ? { keyFile: this.#keySource.file } : {}),
        keys: this.#keys?.size ?? 0,
        acceptedByKey: this.#keys ? [...this.#keys.accepted] : [],
      },
      receiver: { port: this.#local?.port ?? 0, unlisted: this.#receiverUnlisted },
      codec: { decodeBudgetRefusals: decodeBudgetRefusals() },
      detector: this.#liveness.stats(),
    };
  }

  // ---- internals ------------------------------------------------------------------------------

  #setLocal(host: string, port: number): void {
    const c = this.config;
    const desc: MemberDescriptor = {
      id: this.#id,
      protocolVersion: PROTOCOL_VERSION,
      minProtocolVersion: MIN_PROTOCOL_VERSION,
      host,
      port,
      name: c.name,
      domain: c.domain,
      startTime: this.#startTime,
      payload: this.#payloadBytes,
    };
    this.#localDescriptor = desc;
    this.#localBytes = encodeMember(desc);
    this.#local = this.#members.get(desc);
  }

  #onData(conn: InboundConnection, flags: number, seq: number, payload: Buffer, borrowed: boolean): void {
    if (this.#state !== 'started') return;
    // The sender's Member is computed once per connection, not per message.
    let from = conn.tag as Member | undefined;
    if (from === undefined) conn.tag = from = this.#members.get(conn.remote);
    this.#in.data(this.#pipeline!.up, from, conn, flags, seq, payload, borrowed);
  }

  /** Resolves once the leave is processed (verified, and the member removed if it checks out). */
  #onLeave(id: string): void | Promise<void> {
    if (this.#state !== 'started') return;
    for (const ic of this.#interceptors) ic.memberLeft?.(id);
    return this.#membership.left(id);
  }

  /** The top of the stack: the application. */
  #top(): Upstream {
    return {
      receive: (msg) => this.#in.deliver(msg),
      memberAdded: (m) => {
        if (this.#state === 'stopping' || this.#state === 'stopped') return;
        if (this.#view.has(m.id)) {
          // Membership lost it (silence past dropTime) and heard it again, while the failure
          // detector kept it (it answered over TCP): this node or that one was paused or cut off.
          // (Else a second membership source reporting the same member: nothing happened.)
          if (this.#silent.delete(m.id)) this.#rejoined(m);
          return;
        }
        this.#view.set(m.id, m);
        this.#logger.info({ member: m.name, id: m.id, host: m.host, port: m.port }, 'member added');
        this.#out.connectionFor(m).warm();
        this.#liveness.added(m);
        this.emit('memberAdded', m);
        if (this.#departed.back(m.id)) this.#rejoined(m);
      },
      memberRemoved: (m, reason) => {
        if (!this.#view.delete(m.id)) return;
        this.#departed.gone(m.id);
        this.#silent.delete(m.id);
        this.#liveness.removed(m.id);
        this.#out.close(m.id, new ClusterError(ErrorCode.UNKNOWN_MEMBER, `member ${m.name} is gone (${reason})`));
        this.#logger.info({ member: m.name, id: m.id, reason }, 'member removed');
        this.emit('memberRemoved', m, reason);
      },
      memberSuspected: () => {
        // No failure detector in the stack: suspicion alone removes nobody.
      },
    };
  }

  #rejoined(m: Member): void {
    this.#rejoins++;
    this.#logger.info({ member: m.name, id: m.id }, 'member rejoined after a silence: what it missed must be merged');
    this.emit('memberRejoined', m);
  }

  #contextFor(i: number): InterceptorContext {
    const pipeline = this.#pipeline!;
    return {
      config: this.config,
      logger: this.#logger.child({ interceptor: this.#interceptors[i]!.name }),
      local: () => this.local,
      members: () => this.members(),
      verify: (m, timeoutMs) => this.#liveness.verify(m, timeoutMs),
      forget: (m) => this.#membership.forget(m.id),
      connectedFrom: (m) => this.#receiver?.connectedFrom(m.id) ?? false,
      up: pipeline.upFrom(i),
      send: pipeline.sendFrom(i),
      pendingBytes: (m) => this.pendingBytes(m),
      drained: (m) => this.#out.connections.get(m.id)?.drained() ?? RESOLVED,
      membershipContext: () => this.#membershipContext(pipeline.upFrom(i)),
      reportSendError: (error, msg) => {
        this.#sendErrors++;
        if (this.listenerCount('sendError') > 0) this.emit('sendError', error, msg.destinations);
        else this.#logger.warn({ err: error }, 'asynchronous send failed');
      },
    };
  }

  #membershipContext(up: Upstream = this.#pipeline!.up): MembershipContext {
    return {
      localId: this.#id,
      localDescriptor: () => this.#localBytes!,
      local: () => this.#localDescriptor!,
      keys: this.#keys,
      replayWindowMs: this.config.replayWindowMs,
      encrypt: this.config.encrypt,
      domain: this.config.domain,
      logger: this.#logger.child({ membership: this.#membership.kind }),
      events: {
        added: (d) => up.memberAdded(this.#members.get(d)),
        removed: (d, reason) => {
          if (this.#view.has(d.id)) this.#silent.add(d.id); // deleted when it leaves the view
          up.memberRemoved(this.#members.get(d), reason);
        },
      },
      ping: (host, port, timeoutMs) => this.#liveness.ping(host, port, timeoutMs),
      verify: (d) => this.#liveness.verify(this.#members.get(d), this.config.sender.connectTimeoutMs),
      countRefused: (reason, from) => {
        if (this.#heartbeatsRefused++ % 100 === 0)
          this.#logger.warn({ from, reason, refused: this.#heartbeatsRefused }, 'heartbeat refused');
      },
      versionRefused: (err, from) => {
        this.#stats.refusedProtocolVersion++;
        this.#liveness.versionRefused(err, from, 'heartbeat');
      },
    };
  }

  async #shutdown(graceful: boolean): Promise<void> {
    clearInterval(this.#tickTimer);
    // Refuse new connections before saying goodbye: a peer verifying our LEAVE (over TCP or
    // multicast) then finds us gone at once, while one forged in our name finds us answering.
    this.#receiver?.stopAccepting();
    // Deliver what is queued, then say goodbye on every connection (bounded by the send timeout).
    if (graceful) await this.#out.leave(this.#view.values(), this.config.sender.timeoutMs);
    await this.#membership.stop().catch(() => {});
    for (const ic of [...this.#interceptors].reverse()) await ic.stop?.();
    const reason = new ClusterError(ErrorCode.STOPPED, 'channel stopped');
    this.#out.closeAll(reason);
    this.#liveness.stop(reason);
    await this.#receiver?.close();
    this.#view.clear();
    this.#silent.clear();
  }
}

/** Creates a channel from a config (validated now: a bad key throws ConfigError before anything starts). */
export function createChannel(config?: ChannelConfigInput, deps?: { logger?: Logger }): Channel {
  return new Channel(config, deps);
}
