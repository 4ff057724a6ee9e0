/**
 * Reads the SEALED records of an authenticated connection as their bytes arrive: each record's
 * data goes through the opener piece by piece (socket chunks as they are, no copy of the record
 * into one buffer first), and its plaintext is handed on only once the record's tag verified —
 * nothing of a forged or damaged record is ever parsed. At most one record's plaintext is held.
 */
import { FrameError } from '../core/errors.js';
import { type RecordOpener, TAG_BYTES } from '../wire/auth.js';
import { checkHeader, FrameType, HEADER_BYTES } from '../wire/frame.js';

/** Thrown for a record that fails authentication (counted separately from malformed frames). */
export class AuthFailure extends FrameError {}

const HEADER = 0;
const DATA = 1;
const TAG = 2;

export class RecordReader {
  #state = HEADER;
  readonly #header = Buffer.allocUnsafe(HEADER_BYTES);
  #headerFill = 0;
  #dataLeft = 0;
  readonly #tag = Buffer.allocUnsafe(TAG_BYTES);
  #tagFill = 0;
  #plain: Buffer[] = [];

  /**
   * @param maxData the largest record data accepted (bytes, without the tag)
   * @param onPlain receives each authenticated record's plaintext, in pieces, in order
   */
  constructor(
    private readonly opener: RecordOpener,
    private readonly maxData: number,
    private readonly onPlain: (plain: Buffer) => void,
  ) {}

  /** True while a record has been partly received. */
  get midRecord(): boolean {
    return this.#state !== HEADER || this.#headerFill > 0;
  }

  /**
   * Feeds bytes from the socket (decrypted in place when the opener is native); throws FrameError /
   * AuthFailure on a violation.
   */
  push(chunk: Buffer): void {
    const len = chunk.length;
    let off = 0;
    while (off < len) {
      if (this.#state === HEADER) {
        let header: Buffer;
        if (this.#headerFill === 0 && len - off >= HEADER_BYTES) {
          header = chunk.subarray(off, off + HEADER_BYTES);
          off += HEADER_BYTES;
        } else {
          const n = Math.min(HEADER_BYTES - this.#headerFill, len - off);
          chunk.copy(this.#header, this.#headerFill, off, off + n);
          this.#headerFill += n;
          off += n;
          if (this.#headerFill < HEADER_BYTES) return;
          this.#headerFill = 0;
          header = this.#header;
        }
        this.#begin(header);
      } else if (this.#state === DATA) {
        const n = Math.min(this.#dataLeft, len - off);
        const plain = this.opener.update(chunk.subarray(off, off + n));
        if (plain.length > 0) this.#plain.push(plain);
        off += n;
        this.#dataLeft -= n;
        if (this.#dataLeft === 0) this.#state = TAG;
      } else {
        const n = Math.min(TAG_BYTES - this.#tagFill, len - off);
        chunk.copy(this.#tag, this.#tagFill, off, off + n);
        this.#tagFill += n;
        off += n;
        if (this.#tagFill < TAG_BYTES) return;
        this.#end();
      }
    }
  }

  #begin(header: Buffer): void {
    const body = checkHeader(header, 0, this.maxData + TAG_BYTES);
    if (header[3] !== FrameType.SEALED)
      throw new AuthFailure(`unsealed frame of type ${header[3]} on an authenticated connection`);
    if (body < TAG_BYTES) throw new AuthFailure('record shorter than its authentication tag');
    this.opener.begin(header);
    this.#dataLeft = body - TAG_BYTES;
    this.#state = this.#dataLeft > 0 ? DATA : TAG;
  }

  #end(): void {
    this.#tagFill = 0;
    this.#state = HEADER;
    const plain = this.#plain;
    this.#plain = [];
    if (!this.opener.end(this.#tag))
      throw new AuthFailure('record failed authentication (tampered, replayed or wrong key)');
    for (let i = 0; i < plain.length; i++) this.onPlain(plain[i]!);
  }
}
