/**
 * What the session layer uses of the channel: the Channel class provides it, and so does the
 * in-memory twin the session unit tests run managers on (test/helpers/memory-channel.ts). Nothing
 * in src/session/ needs more of the channel than this.
 */
import type { MessageHandler, SendOptions } from '../channel/channel.js';
import type { Member } from '../channel/types.js';

export interface SessionChannel {
  /** This node as a member (exists once the channel started). */
  readonly local: Member;
  /** `name`: this node's route; `maxMessageBytes`: the largest message a member accepts. */
  readonly config: { readonly name: string; readonly maxMessageBytes: number };
  /** The live members, this node excluded. */
  members(): Member[];
  /** Sends `message` (encoded with the value codec); resolves per the send options (acknowledged once applied with use_ack + sync). */
  send(to: Member | readonly Member[] | undefined, message: unknown, options?: SendOptions): Promise<void>;
  /** Sends without a promise; a failure goes to `onError`. */
  post(
    to: Member | readonly Member[] | undefined,
    message: unknown,
    options?: SendOptions,
    onError?: (err: Error) => void,
  ): void;
  /** Hands every queued message to its connection now (end of the event-loop turn). */
  flushNow(): void;
  /** The application payload this node advertises to the members (the contexts it serves). */
  setPayload(value: unknown): void;
  onMessage(handler: MessageHandler): () => void;
  on(event: 'memberAdded', listener: (member: Member) => void): unknown;
  on(event: 'memberRemoved', listener: (member: Member) => void): unknown;
  /** A member back after a silence (a pause, a healed partition): see Channel's `memberRejoined`. */
  on(event: 'memberRejoined', listener: (member: Member) => void): unknown;
}
