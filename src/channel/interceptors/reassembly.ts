/**
 * Reassembly of fragmented messages, with every byte it holds bounded. A fragment's header claims
 * a count that a hostile sender chooses, so nothing is allocated from the claim: parts are kept in
 * arrival order (one connection per ordered pair of members delivers them in order), and what is
 * held is what actually arrived. Limits: open messages per sender and in total, bytes per sender
 * (maxMessageBytes, for all its open messages together) and in total. Anything past a limit is refused and counted, and the refused
 * message's parts are freed at once.
 */
import { FrameError } from '../../core/errors.js';

/** Fragment header: message number u32, index u32, count u32. */
export const FRAGMENT_HEAD = 12;
/** Fragments are at least this large (the config minimum of fragmentBytes), which bounds the count. */
export const MIN_FRAGMENT = 1024;

/** The bounds of one reassembler. */
export interface ReassemblyLimits {
  /** Largest message after reassembly. */
  readonly maxMessageBytes: number;
  /** Incomplete messages open per sender. */
  readonly maxOpenPerMember: number;
  /** Incomplete messages open in total. */
  readonly maxOpenMessages: number;
  /** Bytes held by incomplete messages in total. */
  readonly maxOpenBytes: number;
}

/** Counters of refused and dropped fragments (all visible in the interceptor's stats). */
export interface ReassemblyCounters {
  reassembled: number;
  expired: number;
  /** Fragments refused as malformed: bad header, index out of order or count changed. */
  refused: number;
  /** Fragments from a sender that is not a member (yet): never buffered. */
  refusedNotMember: number;
  /** A new message refused because its sender or the node already had the most open messages. */
  refusedOpenLimit: number;
  /** A message dropped because it outgrew maxMessageBytes or the node's maxOpenBytes. */
  refusedBytes: number;
  /** Incomplete messages dropped because their sender's connection closed or it left. */
  droppedOnDisconnect: number;
}

interface Assembly {
  readonly count: number;
  readonly parts: Buffer[];
  bytes: number;
  last: number;
}

interface Sender {
  readonly open: Map<number, Assembly>;
  bytes: number;
}

/** A fragment refused by a limit: the caller counts it; the sender (if acknowledged) sees the reason. */
export class FragmentRefused extends FrameError {}

export class Reassembler {
  readonly #senders = new Map<string, Sender>();
  #openMessages = 0;
  #openBytes = 0;
  readonly #maxCount: number;
  readonly counters: ReassemblyCounters = {
    reassembled: 0,
    expired: 0,
    refused: 0,
    refusedNotMember: 0,
    refusedOpenLimit: 0,
    refusedBytes: 0,
    droppedOnDisconnect: 0,
  };

  constructor(private readonly limits: ReassemblyLimits) {
    this.#maxCount = Math.ceil(limits.maxMessageBytes / MIN_FRAGMENT) + 1;
  }

  /** Incomplete messages held now. */
  get openMessages(): number {
    return this.#openMessages;
  }

  /** Bytes held by incomplete messages now. */
  get openBytes(): number {
    return this.#openBytes;
  }

  /**
   * Adds fragment `p` (header and data) from `sender`. Returns the whole message when this was its
   * last missing part, else undefined. `lastExpected` says the sender marked this fragment as the
   * one that must complete the message (it waits for processing): if it does not, earlier parts
   * were lost and the refusal tells the sender. Throws {@link FragmentRefused} for anything refused.
   */
  add(sender: string, p: Buffer, now: number, lastExpected = false): Buffer | undefined {
    if (p.length < FRAGMENT_HEAD) return this.#refuse('refused', 'fragment without header');
    const id = p.readUInt32BE(0);
    const index = p.readUInt32BE(4);
    const count = p.readUInt32BE(8);
    if (count < 2 || index >= count || count > this.#maxCount) {
      return this.#refuse('refused', `bad fragment ${index}/${count}`);
    }
    const size = p.length - FRAGMENT_HEAD;
    let s = this.#senders.get(sender);
    let a = s?.open.get(id);
    if (a === undefined) {
      // Parts arrive in order: a message starts with its first fragment, or it is not reassembled.
      if (index !== 0) return this.#refuse('refused', `fragment ${index}/${count} of a message never started`);
      if (s !== undefined && s.open.size >= this.limits.maxOpenPerMember) {
        return this.#refuse(
          'refusedOpenLimit',
          `more than ${this.limits.maxOpenPerMember} open messages from one member`,
        );
      }
      if (this.#openMessages >= this.limits.maxOpenMessages) {
        return this.#refuse('refusedOpenLimit', `more than ${this.limits.maxOpenMessages} open messages in total`);
      }
      if (s === undefined) this.#senders.set(sender, (s = { open: new Map(), bytes: 0 }));
      a = { count, parts: [], bytes: 0, last: now };
      s.open.set(id, a);
      this.#openMessages++;
    } else if (a.count !== count || index !== a.parts.length) {
      this.#drop(sender, s!, id, a);
      return this.#refuse('refused', `fragment ${index}/${count} out of order (expected ${a.parts.length}/${a.count})`);
    }
    const sender_ = s!;
    // Per sender, what its open messages hold together may not exceed one largest message.
    if (sender_.bytes + size > this.limits.maxMessageBytes || this.#openBytes + size > this.limits.maxOpenBytes) {
      this.#drop(sender, sender_, id, a);
      return this.#refuse(
        'refusedBytes',
        `open fragmented messages over maxMessageBytes ${this.limits.maxMessageBytes} for one member or fragmentation.maxOpenBytes ${this.limits.maxOpenBytes} in total`,
      );
    }
    // A copy: the payload may lie in a reused receive buffer.
    a.parts.push(Buffer.from(p.subarray(FRAGMENT_HEAD)));
    a.bytes += size;
    a.last = now;
    sender_.bytes += size;
    this.#openBytes += size;
    if (a.parts.length < count) {
      if (lastExpected) {
        this.#drop(sender, sender_, id, a);
        return this.#refuse(
          'refused',
          `last fragment ${index}/${count} arrived before the others (lost with a connection)`,
        );
      }
      return undefined;
    }
    this.#drop(sender, sender_, id, a);
    this.counters.reassembled++;
    return Buffer.concat(a.parts, a.bytes);
  }

  /** Drops every incomplete message from `sender` (its connection closed, or it left). */
  forget(sender: string): number {
    const s = this.#senders.get(sender);
    if (s === undefined) return 0;
    const n = s.open.size;
    for (const [id, a] of s.open) this.#drop(sender, s, id, a);
    this.counters.droppedOnDisconnect += n;
    return n;
  }

  /** Counts a fragment refused before it was looked at (its sender is not a member). */
  refuseStranger(): never {
    return this.#refuse('refusedNotMember', 'fragment from a sender that is not a member');
  }

  /** Drops messages whose last fragment is older than `expireMs`; calls `onExpired` for each. */
  expire(now: number, expireMs: number, onExpired: (sender: string, received: number, of: number) => void): void {
    for (const [sender, s] of this.#senders) {
      for (const [id, a] of s.open) {
        if (now - a.last > expireMs) {
          this.#drop(sender, s, id, a);
          this.counters.expired++;
          onExpired(sender, a.parts.length, a.count);
        }
      }
    }
  }

  #drop(sender: string, s: Sender, id: number, a: Assembly): void {
    if (!s.open.delete(id)) return;
    this.#openMessages--;
    this.#openBytes -= a.bytes;
    s.bytes -= a.bytes;
    if (s.open.size === 0) this.#senders.delete(sender);
  }

  #refuse(counter: keyof ReassemblyCounters, reason: string): never {
    this.counters[counter]++;
    throw new FragmentRefused(reason);
  }
}
