/**
 * An in-memory twin of what the session layer uses of the channel (src/session/session-channel.ts),
 * so that two or three session managers run in one process without sockets. What it keeps of the
 * real channel: every message is encoded with the value codec and decoded on arrival (the managers
 * see the bytes a peer would send); per sender and receiver, messages arrive in the order sent and
 * never in the turn they were sent (a later event-loop turn, as from a socket); an acknowledged
 * send (use_ack with sync) resolves once the receiver's handler settled; membership changes arrive
 * as memberAdded / memberRemoved events; a member's payload (the contexts it serves) is seen by
 * all. What it leaves out: interceptors, framing, authentication, timeouts (a message to a member
 * that is gone fails at once), heartbeats.
 *
 * `MemoryNetwork.hold(from, to)` queues a link's messages until `release`: a member that is alive
 * but silent (the forced take-over), or a message that arrives late.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ChannelEvents, MessageHandler, ReceivedMessage, SendOptions } from '../../src/channel/channel.js';
import type { Member } from '../../src/channel/types.js';
import { decode, encode } from '../../src/codec/value-codec.js';
import { parseSendOptions, SendFlag } from '../../src/config/send-options.js';
import type { SessionChannel } from '../../src/session/session-channel.js';

/** Default largest message (the channel's default is larger; state transfer halves it for a chunk). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

interface Envelope {
  readonly from: MemoryChannel;
  readonly bytes: Buffer;
  readonly flags: number;
  /** Settles the sender's promise: after the handler for an acknowledged send, else on arrival. */
  readonly done: (err?: Error) => void;
}

class Link {
  readonly queue: Envelope[] = [];
  held = false;
  scheduled = false;
}

/** The network the twins share: who is up, who sees whom, and the links between them. */
export class MemoryNetwork {
  readonly #up = new Set<MemoryChannel>();
  readonly #links = new Map<string, Link>();
  /** Messages delivered (for tests that count traffic). */
  delivered = 0;

  /** A channel named `name` (its route) on this network; joins with {@link MemoryChannel.start}. */
  channel(name: string, startTime = Date.now()): MemoryChannel {
    return new MemoryChannel(this, name, startTime);
  }

  /** Members up, in the order they started. */
  get up(): readonly MemoryChannel[] {
    return [...this.#up];
  }

  /** Holds the messages from `a` to `b` (queued, not delivered) until {@link release}. */
  hold(a: MemoryChannel, b: MemoryChannel): void {
    this.#link(a, b).held = true;
  }

  /** Delivers what was held from `a` to `b`, in order, and lets later messages through. */
  release(a: MemoryChannel, b: MemoryChannel): void {
    const link = this.#link(a, b);
    link.held = false;
    this.#schedule(link, b);
  }

  /** Loses what is held from `a` to `b` (its senders see a success, as for a message lost after it was written); returns how many. */
  dropHeld(a: MemoryChannel, b: MemoryChannel): number {
    const lost = this.#link(a, b).queue.splice(0);
    for (const e of lost) e.done();
    return lost.length;
  }

  /** Messages queued from `a` to `b` and not delivered yet. */
  pending(a: MemoryChannel, b: MemoryChannel): number {
    return this.#link(a, b).queue.length;
  }

  /** @internal */
  join(c: MemoryChannel): void {
    const others = [...this.#up];
    this.#up.add(c);
    for (const o of others) {
      o.addMember(c.local);
      c.addMember(o.local);
    }
  }

  /** @internal `c` is gone: every member removes it; messages to and from it are dropped (their senders fail). */
  leave(c: MemoryChannel): void {
    if (!this.#up.delete(c)) return;
    for (const [key, link] of this.#links) {
      const [from, to] = key.split('>');
      if (from !== c.local.id && to !== c.local.id) continue;
      for (const e of link.queue.splice(0)) e.done(new Error(`member ${c.local.name} is gone`));
    }
    for (const o of this.#up) o.removeMember(c.local);
  }

  /** @internal */
  transmit(from: MemoryChannel, to: Member, bytes: Buffer, flags: number, done: (err?: Error) => void): void {
    const target = [...this.#up].find((c) => c.local.id === to.id);
    if (target === undefined || !this.#up.has(from)) {
      done(new Error(`member ${to.name} is not reachable`));
      return;
    }
    const link = this.#link(from, target);
    link.queue.push({ from, bytes, flags, done });
    this.#schedule(link, target);
  }

  #link(a: MemoryChannel, b: MemoryChannel): Link {
    const key = `${a.local.id}>${b.local.id}`;
    let link = this.#links.get(key);
    if (link === undefined) {
      link = new Link();
      this.#links.set(key, link);
    }
    return link;
  }

  #schedule(link: Link, to: MemoryChannel): void {
    if (link.scheduled || link.held || link.queue.length === 0) return;
    link.scheduled = true;
    // A later turn, as input from a socket: never inside the sender's own call.
    setImmediate(() => {
      link.scheduled = false;
      while (!link.held && link.queue.length > 0) {
        const e = link.queue.shift()!;
        if (!this.#up.has(to)) {
          e.done(new Error(`member ${to.local.name} is gone`));
          continue;
        }
        this.delivered++;
        to.deliver(e);
      }
    });
  }
}

export class MemoryChannel extends EventEmitter<ChannelEvents> implements SessionChannel {
  readonly config: { readonly name: string; readonly maxMessageBytes: number };
  readonly #view = new Map<string, Member>();
  #handlers: MessageHandler[] = [];
  #local: Member & { payload: unknown };
  #started = false;

  constructor(
    readonly network: MemoryNetwork,
    name: string,
    startTime: number,
  ) {
    super();
    this.config = { name, maxMessageBytes: MAX_MESSAGE_BYTES };
    this.#local = {
      id: randomBytes(16).toString('hex'),
      name,
      host: '127.0.0.1',
      port: 0,
      domain: '',
      startTime,
      protocolVersion: 1,
      payload: undefined,
    };
  }

  get local(): Member {
    return this.#local;
  }

  /** Joins the network: every member up sees this one (memberAdded), and this one sees them. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.network.join(this);
  }

  /** Leaves (or crashes: the same to the others): every member removes it. */
  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    this.network.leave(this);
    for (const m of [...this.#view.values()]) this.removeMember(m);
  }

  members(): Member[] {
    return Array.from(this.#view.values());
  }

  setPayload(value: unknown): void {
    // The member object is shared with every view (as a heartbeat would bring it to each).
    this.#local.payload = value;
  }

  onMessage(handler: MessageHandler): () => void {
    this.#handlers = [...this.#handlers, handler];
    return () => {
      this.#handlers = this.#handlers.filter((h) => h !== handler);
    };
  }

  flushNow(): void {
    // Nothing to flush: a message is queued on its link at once.
  }

  send(to: Member | readonly Member[] | undefined, message: unknown, options?: SendOptions): Promise<void> {
    if (!this.#started) return Promise.reject(new Error('cannot send: channel is stopped'));
    const flags = options?.options === undefined ? 0 : parseSendOptions(options.options, 'options');
    let bytes: Buffer;
    try {
      bytes = encode(message);
    } catch (err) {
      return Promise.reject(err);
    }
    const destinations =
      to === undefined ? this.members() : Array.isArray(to) ? (to as readonly Member[]) : [to as Member];
    return Promise.all(
      destinations.map(
        (m) =>
          new Promise<void>((resolve, reject) =>
            this.network.transmit(this, m, bytes, flags, (err) => (err ? reject(err) : resolve())),
          ),
      ),
    ).then(() => {});
  }

  post(
    to: Member | readonly Member[] | undefined,
    message: unknown,
    options?: SendOptions,
    onError?: (err: Error) => void,
  ): void {
    this.send(to, message, options).catch((err: Error) => onError?.(err));
  }

  /** @internal */
  addMember(m: Member): void {
    if (this.#view.has(m.id)) return;
    this.#view.set(m.id, m);
    this.emit('memberAdded', m);
  }

  /** @internal */
  removeMember(m: Member): void {
    if (!this.#view.delete(m.id)) return;
    this.emit('memberRemoved', m, 'leave');
  }

  /** @internal A message arrives: every handler, in order; acknowledged once they settled (use_ack + sync). */
  deliver(e: Envelope): void {
    const from = this.#view.get(e.from.local.id) ?? e.from.local;
    let value: unknown;
    const msg: ReceivedMessage = {
      from,
      options: e.flags,
      bytes: e.bytes,
      get value() {
        value ??= decode(e.bytes);
        return value;
      },
    };
    const waits: Promise<void>[] = [];
    for (const h of this.#handlers) {
      try {
        const r = h(msg);
        if (r instanceof Promise) waits.push(r);
      } catch (err) {
        e.done(err as Error);
        return;
      }
    }
    const sync = SendFlag.USE_ACK | SendFlag.SYNC_ACK;
    const ack = (e.flags & sync) === sync;
    if (!ack || waits.length === 0) e.done();
    else Promise.all(waits).then(() => e.done(), e.done);
  }
}
