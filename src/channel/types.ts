/**
 * Public types of the channel layer: members, messages and the interceptor contract.
 *
 *   application ── send ──▶ interceptor 1 ▶ … ▶ interceptor N ▶ coordinator ▶ transport (TCP)
 *   application ◀─ receive/membership ── interceptor 1 ◀ … ◀ interceptor N ◀ coordinator ◀ transport, membership
 */
import type { ChannelConfig } from '../config/channel-config.js';
import type { Logger } from '../core/logger.js';
import type { MembershipContext, RemoveReason } from '../membership/membership.js';

export type { RemoveReason };

/** A cluster member as the application sees it. */
export interface Member {
  /** 32 hex characters, random per process start: a restarted node is a new member. */
  readonly id: string;
  /** The node's name (jvmRoute). */
  readonly name: string;
  /** Receiver host and port. */
  readonly host: string;
  readonly port: number;
  /** Cluster partition. */
  readonly domain: string;
  /** Start time, ms since epoch. */
  readonly startTime: number;
  readonly protocolVersion: number;
  /** The application payload the member advertises (decoded), or undefined. */
  readonly payload: unknown;
}

/** A message on its way down the stack. Interceptors may replace `payload` and `flags`. */
export interface OutgoingMessage {
  readonly destinations: readonly Member[];
  flags: number;
  payload: Uint8Array;
  /** Acknowledgement timeout for this send. */
  readonly timeoutMs: number;
  /** False when nobody awaits delivery (asynchronous dispatch): the bottom queues without waiting. */
  wait: boolean;
  /**
   * The buffer `payload` was encoded into, with room for the frame header before it (set by
   * send()); an interceptor that replaces `payload` leaves it, and the bottom then copies as usual.
   */
  readonly framed?: Buffer;
}

/**
 * A message on its way up the stack. `payload` is valid until `receive` returns (not across an
 * `await`: with borrowing handlers its memory is then reused); copy what you keep.
 */
export interface IncomingMessage {
  readonly from: Member;
  flags: number;
  payload: Buffer;
}

/** Passes an event on to the next interceptor (or the application at the top). */
export interface Upstream {
  receive(msg: IncomingMessage): void | Promise<void>;
  memberAdded(member: Member): void;
  memberRemoved(member: Member, reason: RemoveReason): void;
  memberSuspected(member: Member, error: Error): void;
}

/** What an interceptor can use, given to its `start`. */
export interface InterceptorContext {
  readonly config: ChannelConfig;
  readonly logger: Logger;
  /** The local member. */
  local(): Member;
  /** Members currently visible above this interceptor's position. */
  members(): Member[];
  /** Probes `member` over a fresh TCP connection: true if it answers with the same id within timeoutMs. */
  verify(member: Member, timeoutMs: number): Promise<boolean>;
  /** True while an authenticated connection from `member` to this node is open (what it sends there still arrives). */
  connectedFrom(member: Member): boolean;
  /** Tells the membership service that `member` is dead (no further removal event from below). */
  forget(member: Member): void;
  /** Events injected from this interceptor's position upwards. */
  readonly up: Upstream;
  /** Sends from this interceptor's position downwards. */
  send(msg: OutgoingMessage): Promise<void>;
  /** Bytes queued for `member` (dispatch backpressure). */
  pendingBytes(member: Member): number;
  /** Resolves once what is queued for `member` has been written to its socket. */
  drained(member: Member): Promise<void>;
  /** A membership context whose events enter the stack above this interceptor (static members). */
  membershipContext(): MembershipContext;
  /** Reports an asynchronous delivery failure to the application ('sendError' event). */
  reportSendError(error: Error, msg: OutgoingMessage): void;
}

/**
 * An interceptor: a plain object with optional hooks, built into the stack once at start.
 * A hook that does not call `next` stops the event there (e.g. a filter). Hooks must not block.
 */
export interface Interceptor {
  readonly name: string;
  start?(ctx: InterceptorContext): void | Promise<void>;
  stop?(): void | Promise<void>;
  /** Downwards. Return next(msg)'s promise (or your own). */
  send?(msg: OutgoingMessage, next: (msg: OutgoingMessage) => Promise<void>): Promise<void>;
  /** Upwards. Return what `next` returns so synchronous acknowledgements wait for processing. */
  receive?(msg: IncomingMessage, next: (msg: IncomingMessage) => void | Promise<void>): void | Promise<void>;
  memberAdded?(member: Member, next: (member: Member) => void): void;
  memberRemoved?(member: Member, reason: RemoveReason, next: (member: Member, reason: RemoveReason) => void): void;
  /** A connection to `member` broke or a send to it failed: it may be dead. */
  memberSuspected?(member: Member, error: Error, next: (member: Member, error: Error) => void): void;
  /** `member` announced over TCP that it is leaving. */
  memberLeft?(id: string): void;
  /** An inbound connection from member `id` closed (what it had sent half is lost with it). */
  connectionClosed?(id: string): void;
  /** Called every second (Tribes' heartbeat). */
  tick?(now: number): void;
  /** Counters for monitoring. */
  stats?(): Record<string, number>;
}
