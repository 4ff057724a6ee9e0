/**
 * The one outbound path of a session manager: what requests changed is queued for the end of the
 * event-loop turn and sent then, in order, in batches (endTurn); every other message goes through
 * {@link Outbound.send} or {@link Outbound.post}, after what is queued ({@link Outbound.flush}, the
 * single "send what is queued" barrier: whatever is sent next must follow the changes before it).
 * Synchronous and asynchronous sends, value-byte and per-type counting, and send failures
 * (counted, logged, never thrown) are handled here. Who receives what is the policy's: the
 * context's members (DeltaManager), or a subset per session ({@link OutboundHost.recipients}).
 */
import { performance } from 'node:perf_hooks';
import type { Member } from '../channel/types.js';
import { SendFlag } from '../config/send-options.js';
import type { Logger } from '../core/logger.js';
import type { Counter } from './counters.js';
import { batchMsg, type ChangeMsg, type SessionMsg, valuesOf } from './message-builders.js';
import { MSG_TYPES, Msg } from './messages.js';
import { type Session, wireSize } from './session.js';
import type { SessionChannel } from './session-channel.js';

/** Asynchronous replication: queued, failures counted (Tomcat's channelSendOptions 8). */
const ASYNC = { options: SendFlag.ASYNCHRONOUS };
/** A turn's batch holds at most this many bytes of values (or BATCH_MESSAGES messages); a message that would pass it begins the next. */
const BATCH_BYTES = 256 * 1024;
/** Messages per batch: the most a node sends, and accepts (a longer one is dropped whole). */
export const BATCH_MESSAGES = 1024;

/** What the outbound path needs of the channel. */
export type OutboundChannel = Pick<SessionChannel, 'post' | 'send' | 'config'>;

/** A turn's changes gathered for one recipient list, and their value bytes. */
interface Group {
  batch: ChangeMsg[];
  bytes: number;
}

/** The policy the outbound path serves. */
export interface OutboundHost {
  readonly contextName: string;
  /** The members serving the context (the same array until membership changes). */
  members(): readonly Member[];
  /**
   * Who gets the changes of `s`, of `members` (default: all of them). Return the same array for
   * sessions that go to the same members: a turn's sessions with one recipient list share batches.
   */
  recipients?(s: Session, members: readonly Member[]): readonly Member[];
  /** Asks for {@link Outbound.endTurn} at the end of this event-loop turn (ReplicationHub.queueTurn). */
  scheduleTurn(): void;
  /** The message telling the recipients what changed in `s` (stamping it), or undefined when there is nothing to say. */
  changeMessage(s: Session, now: number): ChangeMsg | undefined;
  /** Nobody to tell about `s`: its stamps move on as if its changes had been sent. */
  alone(s: Session): void;
  /** After the turn's changes were sent: `s`'s requests ended and another node waits for it. */
  handOver(s: Session): void;
}

export class Outbound {
  /** Messages sent, by type (index = Msg value); named in stats(). */
  readonly sentByType: number[] = new Array<number>(MSG_TYPES).fill(0);
  /** Milliseconds spent finding and sending changes at the end of requests. */
  replicationTime = 0;
  readonly sync: boolean;
  readonly #syncOptions: { options: number };
  /** Largest batch: a bound for the receiver, and for one encode on this node. */
  readonly #batchBytes: number;
  /** Sessions whose requests ended this turn, in that order; sent by endTurn. */
  #turn: Session[] = [];
  #spareTurn: Session[] = [];
  /** endTurn's batches by recipient list (emptied after each turn). */
  readonly #groups = new Map<readonly Member[], Group>();
  /** endTurn is running: what it sends must not start another one. */
  #draining = false;
  /** Synchronous mode: what the turn's requests wait for — every member applied the turn's changes. */
  #turnApplied: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(
    private readonly host: OutboundHost,
    private readonly channel: OutboundChannel,
    sendOptions: number,
    private readonly counters: Record<Counter, number>,
    private readonly logger: Logger,
  ) {
    this.sync = (sendOptions & SendFlag.SYNC_ACK) !== 0;
    this.#syncOptions = { options: sendOptions };
    this.#batchBytes = Math.min(BATCH_BYTES, Math.floor(channel.config.maxMessageBytes / 2));
  }

  /**
   * Queues the changes of `s` for the end of this turn (once per turn). In synchronous mode the
   * promise resolves once every recipient applied the turn's changes.
   */
  queue(s: Session): Promise<void> | undefined {
    // Sent with the turn's other changes at its end (endTurn). Their messages are built in one
    // tight loop there, and travel as one: interleaved with the HTTP work of each request, the
    // same code ran about twice as slow (cold caches), and each message paid the channel's
    // per-message costs on both sides (in synchronous mode an acknowledgement each, too). The
    // response waits for the end of the turn anyway (batchResponses), or its bytes leave then;
    // in synchronous mode it waits until every member applied the turn's changes.
    if (!s.queued) {
      s.queued = true;
      if (this.#turn.push(s) === 1) this.host.scheduleTurn();
    }
    if (!this.sync) return undefined;
    if (this.#turnApplied === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#turnApplied = { promise, resolve };
    }
    return this.#turnApplied.promise;
  }

  /** Sends what is queued for the end of this turn now: whatever is sent next must follow it. */
  flush(): void {
    if (this.#turn.length !== 0 && !this.#draining) this.endTurn();
  }

  /**
   * The end of the event-loop turn: sends the changes of every session whose request ended during
   * the turn, in that order — one message when there is one, else BATCH messages of up to
   * BATCH_BYTES of values (in synchronous mode each acknowledged once applied, which releases the
   * turn's responses). Never throws: failures are counted and logged.
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
      const members = this.host.members();
      const subset = this.host.recipients;
      const now = Date.now();
      // One batch per recipient list (the policy returns one array per list), so a turn whose
      // sessions go to different members (the BackupManager's) still sends one message to each
      // list: a session appears once per turn, so its changes keep their order at every member.
      const groups = this.#groups;
      // The DeltaManager's sessions all go to one list: that common case skips the map lookup.
      let lastTo: readonly Member[] | undefined;
      let last: Group | undefined;
      for (; i < list.length; i++) {
        // Each session is here once: only this loop unqueues, and whatever sends before the turn
        // ends runs this loop first (flush).
        const s = list[i]!;
        s.queued = false;
        if (!s.valid) continue;
        const recipients = subset === undefined ? members : subset.call(this.host, s, members);
        if (recipients.length === 0) {
          this.host.alone(s); // nobody to tell (the last member left this turn): stamps only
        } else {
          const message = this.host.changeMessage(s, now);
          if (message !== undefined) {
            const size = this.countValueBytes(message, recipients);
            let g = recipients === lastTo ? last : groups.get(recipients);
            if (g === undefined) {
              g = { batch: [], bytes: 0 };
              groups.set(recipients, g);
            }
            lastTo = recipients;
            last = g;
            // The bound holds for the batch sent: a message that would pass it starts the next one
            // (alone, a message larger than the bound still goes, as it would without batching).
            if (g.batch.length > 0 && g.bytes + size > this.#batchBytes) this.#postGroup(recipients, g, sends);
            g.batch.push(message);
            g.bytes += size;
            if (g.batch.length >= BATCH_MESSAGES) this.#postGroup(recipients, g, sends);
          }
        }
        s.releaseDecoded();
        if (s.active <= 0 && s.waiters !== undefined) (handOver ??= []).push(s);
      }
      for (const [to, g] of groups) if (g.batch.length > 0) this.#postGroup(to, g, sends);
    } catch (err) {
      this.onSendError(err as Error);
    } finally {
      // After a failure, the sessions not reached keep their changes (dirty) for their next request.
      for (; i < list.length; i++) list[i]!.queued = false;
      list.length = 0;
      this.#spareTurn = list;
      this.#groups.clear();
      this.#draining = false;
      this.replicationTime += performance.now() - t0;
      if (applied !== undefined) {
        if (sends.length === 0) applied.resolve();
        else Promise.all(sends).then(applied.resolve);
      }
    }
    // After the changes they hand over (ownership.ts sends the grant at once).
    if (handOver !== undefined) for (const s of handOver) this.host.handOver(s);
  }

  /**
   * Sends the changes of `s` now, after what is queued: to `recipients`, or when there are none
   * moves its stamps on ({@link OutboundHost.alone}). Resolves, in synchronous mode, once applied.
   */
  sendNow(s: Session, now: number, recipients: readonly Member[]): Promise<void> | undefined {
    if (recipients.length === 0) {
      this.host.alone(s);
      return undefined;
    }
    const message = this.host.changeMessage(s, now);
    if (message === undefined) return undefined;
    this.countValueBytes(message, recipients);
    return this.#sendChange(recipients, message);
  }

  /** Counts the attribute bytes a CREATED or DELTA message sends to `to`; returns them (0 for others). */
  countValueBytes(message: ChangeMsg, to: readonly Member[]): number {
    const values = valuesOf(message);
    if (values === undefined) return 0;
    let bytes = 0;
    for (const v of values) bytes += wireSize(v);
    this.counters.valueBytesSent += bytes * to.length;
    return bytes;
  }

  /** Sends the batch gathered for `to` and starts an empty one. */
  #postGroup(to: readonly Member[], g: Group, sends: Promise<void>[]): void {
    this.#postBatch(to, g.batch, sends);
    g.batch = [];
    g.bytes = 0;
  }

  /** Sends a turn's batch (a lone message as it is); in synchronous mode adds the send to `sends`. */
  #postBatch(to: readonly Member[], batch: ChangeMsg[], sends: Promise<void>[]): void {
    let sent: Promise<void> | undefined;
    if (batch.length === 1) sent = this.#sendChange(to, batch[0]!);
    else {
      for (let i = 0; i < batch.length; i++) this.sentByType[batch[i]![0]]!++;
      sent = this.send(to, batchMsg(this.host.contextName, batch), this.sync);
    }
    if (sent !== undefined) sends.push(sent);
  }

  /** A change message: acknowledged in synchronous mode, except a mere ACCESSED. */
  #sendChange(to: readonly Member[], message: ChangeMsg): Promise<void> | undefined {
    return this.send(to, message, this.sync && message[0] !== Msg.ACCESSED);
  }

  /**
   * Sends `message` to `to` after what is queued, counted by type: acknowledged (`sync`, the
   * promise resolves once applied, failures counted) or posted.
   */
  send(to: readonly Member[], message: SessionMsg, sync: boolean): Promise<void> | undefined {
    this.flush();
    this.sentByType[message[0]]!++;
    if (!sync) {
      this.channel.post(to, message, ASYNC, this.onSendError);
      return undefined;
    }
    return this.channel.send(to, message, this.#syncOptions).catch(this.onSendError);
  }

  /** Posts `message` to `to` as it is (not after the queue, not counted by type): protocol answers. */
  post(to: Member, message: SessionMsg, onError?: (err: Error) => void): void {
    this.channel.post(to, message, ASYNC, onError ?? this.onSendError);
  }

  readonly onSendError = (err: Error): void => {
    if (this.counters.replicationErrors++ % 100 === 0) {
      this.logger.warn({ err: err.message, failures: this.counters.replicationErrors }, 'replication failed');
    }
  };
}
