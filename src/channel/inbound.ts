/**
 * Inbound messages of the channel: the registered handlers, DATA frames from connections sent up
 * the stack (acknowledged as their send options ask), and the dispatch to the handlers at its top.
 */
import { SendFlag } from '../config/send-options.js';
import type { Logger } from '../core/logger.js';
import type { InboundConnection } from '../transport/receiver.js';
import type { AssemblyPolicy } from '../wire/frame.js';
import { type MessageHandler, type MessageHandlerOptions, Received } from './api.js';
import type { IncomingMessage, Member, Upstream } from './types.js';

export class Inbound {
  #handlers: readonly MessageHandler[] = [];
  /** Handlers that may keep messages (registered without `borrow`). */
  #keepers = 0;
  /** Shared with the receiver: reuse assembly buffers while no handler keeps messages. */
  readonly assembly: AssemblyPolicy = { reuse: true };
  handlerErrors = 0;
  /** Messages that reached the top of the stack. */
  received = 0;

  constructor(private readonly logger: Logger) {}

  /** Registers a handler; returns a function that removes it. */
  add(handler: MessageHandler, options: MessageHandlerOptions = {}): () => void {
    const keeps = options.borrow !== true;
    // A new array, not a push: a handler registered while messages are dispatched is not called
    // for the message in flight (the dispatch loop holds the old array).
    this.#handlers = [...this.#handlers, handler];
    if (keeps) this.#addKeepers(1);
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const i = this.#handlers.indexOf(handler);
      if (i >= 0) this.#handlers = this.#handlers.filter((_, k) => k !== i);
      if (keeps) this.#addKeepers(-1);
    };
  }

  /** The receiver reuses assembly buffers exactly while no handler keeps messages. */
  #addKeepers(n: number): void {
    this.#keepers += n;
    this.assembly.reuse = this.#keepers === 0;
  }

  /** A DATA frame from `from`: acknowledged as asked, sent up the stack, answered once handled when sync. */
  data(
    up: Upstream,
    from: Member,
    conn: InboundConnection,
    flags: number,
    seq: number,
    payload: Buffer,
    borrowed: boolean,
  ): void {
    // Assembled in a reused buffer, but a handler that keeps messages came since: give it its own.
    if (borrowed && this.#keepers > 0) payload = Buffer.from(payload);
    if (flags & SendFlag.USE_ACK && !(flags & SendFlag.SYNC_ACK)) conn.ack(seq);
    const msg = new Received(from, flags, payload);
    const sync = (flags & (SendFlag.USE_ACK | SendFlag.SYNC_ACK)) === (SendFlag.USE_ACK | SendFlag.SYNC_ACK);
    let result: void | Promise<void>;
    try {
      result = up.receive(msg);
    } catch (err) {
      this.handlerErrors++;
      if (sync) conn.nack(seq, (err as Error).message);
      else this.logger.warn({ err, from: from.name }, 'message handler failed');
      return;
    }
    if (!sync) {
      if (result instanceof Promise)
        result.catch((err) => {
          this.handlerErrors++;
          this.logger.warn({ err, from: from.name }, 'message handler failed');
        });
      return;
    }
    if (result instanceof Promise) {
      result.then(
        () => conn.ack(seq),
        (err: Error) => {
          this.handlerErrors++;
          conn.nack(seq, err?.message ?? String(err));
        },
      );
    } else conn.ack(seq);
  }

  #dispatch(handlers: readonly MessageHandler[], received: Received): void | Promise<void> {
    if (handlers.length === 1) return handlers[0]!(received);
    let pending: Promise<void>[] | undefined;
    for (const h of handlers) {
      const r = h(received);
      if (r instanceof Promise) (pending ??= []).push(r);
    }
    if (pending) return Promise.all(pending).then(() => {});
  }

  /** The top of the stack: the application's handlers. */
  deliver(msg: IncomingMessage): void | Promise<void> {
    this.received++;
    const handlers = this.#handlers;
    if (handlers.length === 0) return;
    const received = msg instanceof Received ? msg : new Received(msg.from, msg.flags, msg.payload);
    if (this.#keepers === 0) {
      // Every handler borrows: once they returned, the payload's memory may be reused.
      try {
        return this.#dispatch(handlers, received);
      } finally {
        received.expire();
      }
    }
    return this.#dispatch(handlers, received);
  }
}
