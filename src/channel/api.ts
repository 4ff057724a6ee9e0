/**
 * The channel's application-facing types (messages, handlers, events, stats) and the object a
 * received message travels as.
 */
import { decode } from '../codec/value-codec.js';
import { SendFlag, type SendOptionsInput } from '../config/send-options.js';
import { ClusterError, ErrorCode } from '../core/errors.js';
import type { DetectorCounters } from '../membership/detector.js';
import type { DnsMembershipStats } from '../membership/dns.js';
import type { MembershipCounters, RemoveReason } from '../membership/membership.js';
import type { TransportStats } from '../transport/stats.js';
import type { KeySource } from './key-source.js';
import type { IncomingMessage, Member } from './types.js';

/** Per-send options. */
export interface SendOptions {
  /** Tomcat send options for this message (default: the channel's `sendOptions`). */
  options?: SendOptionsInput;
  /** Acknowledgement timeout (default: sender.timeoutMs). */
  timeoutMs?: number;
}

/** A message as the application receives it. */
export interface ReceivedMessage {
  readonly from: Member;
  /** Send option bits it travelled with. */
  readonly options: number;
  /** The raw payload bytes (a Buffer for byte messages). */
  readonly bytes: Buffer;
  /** The decoded value (decoded on first access; a byte message is its bytes). */
  readonly value: unknown;
}

/** A message handler. Return a promise to make synchronous acknowledgements wait for it. */
export type MessageHandler = (msg: ReceivedMessage) => void | Promise<void>;

/** How a handler uses the messages it is given. */
export interface MessageHandlerOptions {
  /**
   * The handler reads `msg.bytes` and `msg.value` only before it returns (before its first
   * `await`), and keeps neither the message nor `msg.bytes` (decoded values are its own). While
   * every registered handler borrows, the channel assembles messages that span socket reads (any
   * message over 64 KiB, and some smaller ones) in one reused buffer per connection instead of
   * allocating one per message, and `bytes` / `value` throw ERR_CLOWDER_MESSAGE_EXPIRED once the
   * handlers returned. Default false: messages stay valid for as long as they are referenced.
   */
  borrow?: boolean;
}

/** Counters of one channel. */
export interface ChannelStats {
  readonly transport: TransportStats;
  /**
   * Members in view, heartbeats refused (all reasons), refused membership claims by kind, and
   * `rejoins`: members back after a silence ({@link ChannelEvents.memberRejoined}).
   */
  readonly membership: {
    readonly members: number;
    readonly heartbeatsRefused: number;
    readonly rejoins: number;
    /** DNS membership only: resolutions, failures, refusals and addresses listed. */
    readonly dns?: Readonly<DnsMembershipStats>;
  } & Readonly<MembershipCounters>;
  readonly messages: {
    readonly sent: number;
    readonly received: number;
    readonly handlerErrors: number;
    /** Sends that failed for at least one member (asynchronous ones included). */
    readonly sendErrors: number;
  };
  readonly interceptors: Readonly<Record<string, Record<string, number>>>;
  /** Where the cluster keys come from (never the keys), and how often each key verified a hello or heartbeat. */
  readonly auth: {
    readonly keySource: KeySource | 'unresolved';
    readonly keyFile?: string;
    /** Keys accepted (a rotation list has several; the first sends). */
    readonly keys: number;
    /** Hellos, hello answers and heartbeats verified, per key index (failures: transport.authFailures, membership.heartbeatsRefused). */
    readonly acceptedByKey: readonly number[];
  };
  /** The receiver's bound port; `unlisted`: the static member list (or DNS membership's port) does not name it (warned at start). */
  readonly receiver: { readonly port: number; readonly unlisted: boolean };
  /** Decodes refused for exceeding their allocation budget (codec bombs), in this process. */
  readonly codec: { readonly decodeBudgetRefusals: number };
  /**
   * The SWIM/Lifeguard failure detector (see config `detector`): probes, suspicions and how they
   * ended, removals, refused datagrams; `mode` "off" when not running, `udp` false when its socket could not bind.
   */
  readonly detector: Readonly<DetectorCounters> & { readonly mode: string; readonly udp: boolean };
}

/**
 * Events: `memberAdded(member)`, `memberRemoved(member, reason)`, `memberRejoined(member)`,
 * `sendError(error, destinations)`, `error(err)`.
 */
export interface ChannelEvents {
  memberAdded: [member: Member];
  memberRemoved: [member: Member, reason: RemoveReason];
  /**
   * A member (the same process: same id) is back after a silence during which messages between
   * it and this node may have been lost: this node had removed it and now added it again (after
   * `memberAdded`), or its heartbeats stopped for longer than dropTime while it kept answering
   * over TCP (a pause or a partition of this node or of it). See docs/architecture.md,
   * "Partitions and merges". The other side may not notice on its own: tell it.
   */
  memberRejoined: [member: Member];
  sendError: [error: Error, destinations: readonly Member[]];
}

/** One object per received message: it travels up the stack (IncomingMessage) and is what handlers get. */
export class Received implements ReceivedMessage, IncomingMessage {
  #value: unknown = NOT_DECODED;
  #expired = false;
  constructor(
    readonly from: Member,
    public flags: number,
    public payload: Buffer,
  ) {}
  get options(): number {
    return this.flags;
  }
  get bytes(): Buffer {
    if (this.#expired) throw expired();
    return this.payload;
  }
  get value(): unknown {
    if (this.#value === NOT_DECODED) {
      if (this.#expired) throw expired();
      this.#value = this.flags & SendFlag.BYTE_MESSAGE ? this.payload : decode(this.payload);
    }
    return this.#value;
  }
  /** The borrowing handlers returned: the payload's memory may be reused from now on. */
  expire(): void {
    this.#expired = true;
    this.payload = NO_BYTES;
  }
}
const NOT_DECODED = Symbol('not decoded');
const NO_BYTES = Buffer.alloc(0);

function expired(): ClusterError {
  return new ClusterError(
    ErrorCode.MESSAGE_EXPIRED,
    'message read after its handler returned: a handler registered with { borrow: true } must read msg.bytes / msg.value before it returns or awaits (copy what it keeps)',
  );
}
