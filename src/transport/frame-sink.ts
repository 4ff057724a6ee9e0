/**
 * The receiving half shared by inbound and outbound connections: parses frames, and once a
 * cluster key is in force accepts only SEALED records, opens them (dropping the connection on the
 * first record that fails authentication) and parses the inner frames.
 */
import { FrameError } from '../core/errors.js';
import type { RecordOpener } from '../wire/auth.js';
import { type AssemblyPolicy, type FrameHandler, FrameReader, FrameType } from '../wire/frame.js';
import { RECORD_BYTES } from './frame-writer.js';
import { RecordReader } from './record-reader.js';
import type { TransportStats } from './stats.js';

export class FrameSink {
  readonly #outer: FrameReader;
  readonly #inner: FrameReader;
  #records: RecordReader | undefined;

  /** @param policy lets the frame readers reuse one buffer for frames that span socket reads */
  constructor(
    maxFrameBytes: number,
    private readonly handler: FrameHandler,
    private readonly stats: TransportStats,
    policy?: AssemblyPolicy,
  ) {
    this.#outer = new FrameReader(maxFrameBytes, (t, f, b, r) => this.#onOuter(t, f, b, r), policy);
    this.#inner = new FrameReader(maxFrameBytes, (t, f, b, r) => this.#onInner(t, f, b, r), policy);
  }

  /** Sets the largest frame body accepted (a connection raises it once its hello completed). */
  setLimit(maxFrameBytes: number): void {
    this.#inner.setLimit(maxFrameBytes);
    this.#outer.setLimit(maxFrameBytes);
  }

  /**
   * From now on only SEALED records (of at most RECORD_BYTES) are accepted; their plaintext is a
   * byte stream of inner frames, which may span records. Called while the hello frame is being
   * handled: the bytes after it are already read as records.
   */
  setOpener(opener: RecordOpener): void {
    if (this.#records !== undefined) throw new Error('FrameSink: the record opener is already set');
    this.#records = new RecordReader(opener, RECORD_BYTES, (plain) => this.#inner.push(plain));
    this.#outer.stop();
  }

  /** True while a frame has been partly received (a stream ending now was cut off mid-frame). */
  get midFrame(): boolean {
    return this.#records !== undefined ? this.#records.midRecord || this.#inner.midFrame : this.#outer.midFrame;
  }

  /**
   * Feeds bytes from the socket; throws FrameError / AuthFailure on a violation. The sink owns
   * `chunk` from now on: encrypted records are decrypted in place (native AES-GCM).
   */
  push(chunk: Buffer): void {
    this.stats.bytesIn += chunk.length;
    if (this.#records !== undefined) {
      this.#records.push(chunk);
      return;
    }
    const rest = this.#outer.push(chunk);
    // The hello handler set the opener meanwhile: what followed the hello is records.
    if (rest !== undefined && rest.length > 0) (this.#records as RecordReader | undefined)?.push(rest);
  }

  #onOuter(type: FrameType, flags: number, body: Buffer, borrowed: boolean): void {
    if (type === FrameType.SEALED) throw new FrameError('sealed record before the hello completed');
    this.stats.framesIn++;
    this.handler(type, flags, body, borrowed);
  }

  #onInner(type: FrameType, flags: number, body: Buffer, borrowed: boolean): void {
    if (type === FrameType.SEALED || type === FrameType.HELLO || type === FrameType.HELLO_ACK) {
      throw new FrameError(`frame type ${type} not allowed inside a record`);
    }
    this.stats.framesIn++;
    this.handler(type, flags, body, borrowed);
  }
}
