/**
 * The receiving half shared by inbound and outbound connections: parses frames, and once a
 * cluster key is in force accepts only SEALED records, opens them (dropping the connection on the
 * first record that fails authentication) and parses the inner frames.
 */
import { FrameError } from '../core/errors.js';
import type { RecordOpener } from '../wire/auth.js';
import { type FrameHandler, FrameReader, FrameType, HEADER_BYTES, writeHeader } from '../wire/frame.js';
import { RECORD_BYTES } from './frame-writer.js';
import type { TransportStats } from './stats.js';

/** Thrown for a record that fails authentication (counted separately from malformed frames). */
export class AuthFailure extends FrameError {}

const TAG_BYTES = 16;

export class FrameSink {
  readonly #outer: FrameReader;
  readonly #inner: FrameReader;
  #opener: RecordOpener | undefined;
  readonly #aad = Buffer.allocUnsafe(HEADER_BYTES);
  #maxFrameBytes: number;

  constructor(
    maxFrameBytes: number,
    private readonly handler: FrameHandler,
    private readonly stats: TransportStats,
  ) {
    this.#maxFrameBytes = maxFrameBytes;
    this.#outer = new FrameReader(maxFrameBytes, (t, f, b) => this.#onOuter(t, f, b));
    this.#inner = new FrameReader(maxFrameBytes, (t, f, b) => this.#onInner(t, f, b));
  }

  /** Sets the largest frame body accepted (a connection raises it once its hello completed). */
  setLimit(maxFrameBytes: number): void {
    this.#maxFrameBytes = maxFrameBytes;
    this.#inner.setLimit(maxFrameBytes);
    this.#outer.setLimit(this.#opener ? RECORD_BYTES + TAG_BYTES : maxFrameBytes);
  }

  /**
   * From now on only SEALED records (of at most RECORD_BYTES) are accepted; their plaintext is a
   * byte stream of inner frames, which may span records.
   */
  setOpener(opener: RecordOpener | undefined): void {
    this.#opener = opener;
    this.#outer.setLimit(opener ? RECORD_BYTES + TAG_BYTES : this.#maxFrameBytes);
  }

  /** True while a frame has been partly received (a stream ending now was cut off mid-frame). */
  get midFrame(): boolean {
    return this.#outer.midFrame || this.#inner.midFrame;
  }

  /** Feeds bytes from the socket; throws FrameError / AuthFailure on a violation. */
  push(chunk: Buffer): void {
    this.stats.bytesIn += chunk.length;
    this.#outer.push(chunk);
  }

  #onOuter(type: FrameType, flags: number, body: Buffer): void {
    if (this.#opener === undefined) {
      if (type === FrameType.SEALED) throw new FrameError('sealed record before the hello completed');
      this.stats.framesIn++;
      this.handler(type, flags, body);
      return;
    }
    if (type !== FrameType.SEALED)
      throw new AuthFailure(`unsealed frame of type ${type} on an authenticated connection`);
    writeHeader(this.#aad, 0, FrameType.SEALED, flags, body.length);
    const plain = this.#opener.open(body, this.#aad);
    if (plain === null) throw new AuthFailure('record failed authentication (tampered, replayed or wrong key)');
    this.#inner.push(plain);
  }

  #onInner(type: FrameType, flags: number, body: Buffer): void {
    if (type === FrameType.SEALED || type === FrameType.HELLO || type === FrameType.HELLO_ACK) {
      throw new FrameError(`frame type ${type} not allowed inside a record`);
    }
    this.stats.framesIn++;
    this.handler(type, flags, body);
  }
}
