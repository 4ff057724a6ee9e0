/**
 * Inbound dispatch of a session manager: a message of its context arrives (ReplicationHub) →
 * counted by type → state-transfer messages to the receiver, a BATCH unpacked → live changes wait
 * while a state transfer runs → the checked reader (message-readers.ts) → the manager's handler
 * with the typed message. A message a reader refuses, or one whose handler throws, is counted
 * (a refusal counter) and dropped; a handler sees only messages that passed their reader. What a
 * message does is the handlers' (the manager's policy), not this module's.
 */
import type { Member } from '../channel/types.js';
import type { Copies } from './copies.js';
import type { Refusals } from './counters.js';
import {
  type AccessedMsg,
  type CreatedMsg,
  type DeltaMsg,
  type ExpiredMsg,
  type IdChangedMsg,
  Refused,
  readAccessed,
  readCreated,
  readDelta,
  readExpired,
  readIdChanged,
  readRecord,
  readSessionRequest,
  readTaken,
  type SessionRequestMsg,
  type TakenMsg,
} from './message-readers.js';
import { MSG_TYPES, Msg, type SessionRecord } from './messages.js';
import { BATCH_MESSAGES } from './outbound.js';
import type { Ownership } from './ownership.js';

/** What the manager does with each message (each already checked by its reader). */
export interface InboundHandlers {
  onCreated(m: CreatedMsg, from: Member): void;
  onDelta(m: DeltaMsg, from: Member): void;
  onAccessed(m: AccessedMsg, from: Member): void;
  onExpired(m: ExpiredMsg, from: Member): void;
  onIdChanged(m: IdChangedMsg, from: Member): void;
  onSessionRequest(m: SessionRequestMsg, from: Member): void;
  /** SESSION_DATA: the record it carries. */
  onSessionData(r: SessionRecord, from: Member): void;
  /** STATE_REQUEST: a member asks for every session (`requestId` as it came: echoed, never used). */
  onStateRequest(requestId: unknown, from: Member): void;
  /**
   * The ownership protocol (ACQUIRE, GRANT: read by ownership.ts; TAKEN); absent with ownership
   * "none", where they are refused and counted.
   */
  readonly ownership?: {
    onAcquire(raw: unknown[], from: Member): void;
    onGrant(raw: unknown[], from: Member): void;
    onTaken(m: TakenMsg, from: Member): void;
  };
}

/** The handlers of a manager: its copies (copies.ts), its ownership protocol (ownership.ts, if any), its state donor. */
export function handlersOf(
  c: Copies,
  own: Ownership | undefined,
  onStateRequest: (requestId: unknown, from: Member) => void,
): InboundHandlers {
  return {
    onCreated: (m, from) => c.onCreated(m, from),
    onDelta: (m, from) => c.onDelta(m, from),
    onAccessed: (m, from) => c.onAccessed(m, from),
    onExpired: (m, from) => c.onExpired(m, from),
    onIdChanged: (m, from) => c.onIdChanged(m, from),
    onSessionRequest: (m, from) => c.onSessionRequest(m, from),
    onSessionData: (r, from) => c.onSessionData(r, from),
    onStateRequest,
    ownership:
      own === undefined
        ? undefined
        : {
            onAcquire: (m, from) => own.onAcquire(m, from),
            onGrant: (m, from) => own.onGrant(m, from),
            onTaken: (m, from) => c.onTaken(m, from),
          },
  };
}

/** What dispatch needs of the state receiver (state-receiver.ts). */
export interface InboundReceiver {
  /** Live changes that wait while a state transfer runs (undefined: none runs). */
  readonly queue: [unknown[], Member][] | undefined;
  /** STATE_CHUNK, STATE_COMPLETE or STATE_NONE. */
  onMessage(m: unknown[], from: Member): void;
}

export class Inbound {
  /** Messages received, by type (index = Msg value, 0 = an unknown type); named in stats(). */
  readonly receivedByType: number[] = new Array<number>(MSG_TYPES).fill(0);

  constructor(
    private readonly contextName: string,
    private readonly handlers: InboundHandlers,
    private readonly receiver: InboundReceiver,
    private readonly refusals: Refusals,
  ) {}

  /** Handles a message of this context from `from`. */
  receive(m: unknown[], from: Member): void {
    const type = m[0] as number;
    this.receivedByType[type > 0 && type < MSG_TYPES && (type | 0) === type ? type : 0]!++;
    if (type === Msg.STATE_REQUEST) this.handlers.onStateRequest(m[2], from);
    else if (type === Msg.STATE_CHUNK || type === Msg.STATE_COMPLETE || type === Msg.STATE_NONE)
      this.receiver.onMessage(m, from);
    else if (type === Msg.BATCH) this.#receiveBatch(m[2], from);
    else this.#applyOrQueue(m, from);
  }

  /** Live changes wait while a state transfer is running, then apply in order. */
  #applyOrQueue(m: unknown[], from: Member): void {
    const queue = this.receiver.queue;
    if (queue !== undefined) queue.push([m, from]);
    else this.apply(m, from);
  }

  /** A BATCH: each message in order; one that is not a change of this context is dropped and counted. */
  #receiveBatch(list: unknown, from: Member): void {
    if (!Array.isArray(list)) {
      this.malformed(from, 'a batch without its list of messages');
      return;
    }
    if (list.length === 0 || list.length > BATCH_MESSAGES) {
      // No node sends more: one message must not hold the event loop for that long.
      this.malformed(from, `a batch of ${list.length} messages (1 to ${BATCH_MESSAGES})`);
      return;
    }
    for (let i = 0; i < list.length; i++) {
      const m: unknown = list[i];
      const type = Array.isArray(m) ? m[0] : undefined;
      if (
        (type !== Msg.CREATED && type !== Msg.DELTA && type !== Msg.ACCESSED) ||
        (m as unknown[])[1] !== this.contextName
      ) {
        this.malformed(from, 'a batch may hold only created, delta and accessed messages of its own context');
        continue;
      }
      this.receivedByType[type]!++;
      this.#applyOrQueue(m as unknown[], from);
    }
  }

  /** Reads a live message and hands it to its handler (also for those that waited in the receiver's queue). */
  apply(m: unknown[], from: Member): void {
    const h = this.handlers;
    try {
      switch (m[0]) {
        case Msg.CREATED: {
          const r = readCreated(m);
          if (this.ok(r, from)) h.onCreated(r, from);
          break;
        }
        case Msg.DELTA: {
          const r = readDelta(m);
          if (this.ok(r, from)) h.onDelta(r, from);
          break;
        }
        case Msg.ACCESSED: {
          const r = readAccessed(m);
          if (this.ok(r, from)) h.onAccessed(r, from);
          break;
        }
        case Msg.ACQUIRE:
          if (h.ownership) h.ownership.onAcquire(m, from);
          else this.malformed(from, 'ownership is "none" here: use the same sessions.ownership on every node');
          break;
        case Msg.GRANT:
          if (h.ownership) h.ownership.onGrant(m, from);
          else this.refusals.refuse('refusedGrant', from, 'a grant, but ownership is "none" here');
          break;
        case Msg.EXPIRED: {
          const r = readExpired(m);
          if (this.ok(r, from)) h.onExpired(r, from);
          break;
        }
        case Msg.ID_CHANGED: {
          const r = readIdChanged(m);
          if (this.ok(r, from)) h.onIdChanged(r, from);
          break;
        }
        case Msg.SESSION_REQUEST: {
          const r = readSessionRequest(m);
          if (this.ok(r, from)) h.onSessionRequest(r, from);
          break;
        }
        case Msg.SESSION_DATA: {
          const r = readRecord(m[2]);
          if (this.ok(r, from)) h.onSessionData(r, from);
          break;
        }
        case Msg.TAKEN: {
          if (h.ownership === undefined) {
            this.malformed(
              from,
              'a take-over, but ownership is "none" here: use the same sessions.ownership on every node',
            );
            break;
          }
          const r = readTaken(m);
          if (this.ok(r, from)) h.ownership.onTaken(r, from);
          break;
        }
        default:
          this.malformed(from, `unknown message type ${m[0]}`);
      }
    } catch (err) {
      this.malformed(from, (err as Error).message);
    }
  }

  /** Counts a refusal; true when `r` is the message itself. */
  ok<T>(r: T | Refused, from: Member): r is T {
    if (!(r instanceof Refused)) return true;
    this.refusals.refuse(r.counter, from, r.why);
    return false;
  }

  malformed(from: Member, why: string): void {
    this.refusals.refuse('malformed', from, why);
  }
}
