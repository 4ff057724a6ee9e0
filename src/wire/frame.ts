/**
 * Connection framing. Every frame on a cluster TCP connection is a 10-byte header and a body:
 *
 *   0..1 magic 0xC1 0x0D | 2 version | 3 type | 4..5 flags (u16) | 6..9 body length (u32) | body
 *
 * All integers are big-endian. docs/wire-format.md describes each frame type's body.
 * The reader checks magic, version, type and length against the limit before it buffers a byte
 * of the body, so a hostile peer cannot make it allocate more than `maxFrameBytes`.
 */
import { FrameError } from '../core/errors.js';

export const MAGIC0 = 0xc1;
export const MAGIC1 = 0x0d;
export const WIRE_VERSION = 1;
export const HEADER_BYTES = 10;

/** Frame types. Append only: a value, once shipped, keeps its meaning. */
export const FrameType = {
  /** Client's first frame: nonce, timestamp, member descriptor, MAC. */
  HELLO: 1,
  /** Server's answer to HELLO: nonce, timestamp, member descriptor, MAC bound to the client nonce. */
  HELLO_ACK: 2,
  /** An application message: u32 sequence number, then the payload. Flags carry the send options. */
  DATA: 3,
  /** Positive acknowledgement of a DATA or PING sequence number. */
  ACK: 4,
  /** Negative acknowledgement: u32 sequence, u16 reason length, UTF-8 reason. */
  NACK: 5,
  /** Liveness probe: u32 sequence; answered with ACK. */
  PING: 6,
  /** The sender is stopping gracefully: u32 sequence, acknowledged once the leave is processed. */
  LEAVE: 7,
  /** Authenticated (and optionally encrypted) record holding one or more inner frames; body = data + 16-byte tag. */
  SEALED: 8,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
const MAX_TYPE = 8;

/** Flag bits of the header that are not send options. */
export const FrameFlag = {
  /** HELLO / HELLO_ACK carry a MAC (the node has a cluster key). */
  AUTH: 0x0100,
  /** HELLO: the client will send SEALED records encrypted (not only authenticated). */
  ENCRYPT: 0x0200,
  /** DATA: the payload is one fragment of a larger message (fragmentation interceptor). */
  FRAGMENT: 0x0400,
} as const;

/** Writes a frame header into `buf` at `offset`. */
export function writeHeader(buf: Buffer, offset: number, type: FrameType, flags: number, bodyLength: number): void {
  buf[offset] = MAGIC0;
  buf[offset + 1] = MAGIC1;
  buf[offset + 2] = WIRE_VERSION;
  buf[offset + 3] = type;
  buf.writeUInt16BE(flags & 0xffff, offset + 4);
  buf.writeUInt32BE(bodyLength, offset + 6);
}

/** A whole frame with a body of `body`. */
export function encodeFrame(type: FrameType, flags: number, body: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  writeHeader(buf, 0, type, flags, body.length);
  buf.set(body, HEADER_BYTES);
  return buf;
}

/** A frame whose body is just a u32 (ACK, PING). */
export function encodeSeqFrame(type: FrameType, seq: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + 4);
  writeHeader(buf, 0, type, 0, 4);
  buf.writeUInt32BE(seq >>> 0, HEADER_BYTES);
  return buf;
}

/** The longest NACK reason, in UTF-8 bytes. */
export const NACK_REASON_BYTES = 1000;

/** NACK frame: sequence and a reason (cut to NACK_REASON_BYTES bytes, at a character boundary). */
export function encodeNack(seq: number, reason: string): Buffer {
  let text = Buffer.from(reason.length > NACK_REASON_BYTES ? reason.slice(0, NACK_REASON_BYTES) : reason, 'utf8');
  if (text.length > NACK_REASON_BYTES) {
    let end = NACK_REASON_BYTES;
    while (end > 0 && (text[end]! & 0xc0) === 0x80) end--; // not inside a multi-byte character
    text = text.subarray(0, end);
  }
  const buf = Buffer.allocUnsafe(HEADER_BYTES + 6 + text.length);
  writeHeader(buf, 0, FrameType.NACK, 0, 6 + text.length);
  buf.writeUInt32BE(seq >>> 0, HEADER_BYTES);
  buf.writeUInt16BE(text.length, HEADER_BYTES + 4);
  text.copy(buf, HEADER_BYTES + 6);
  return buf;
}

/**
 * Checks the frame header at `buf[off]` (magic, version, type, body length against `maxBody`)
 * and returns the body length; throws {@link FrameError} naming what is wrong.
 */
export function checkHeader(buf: Uint8Array, off: number, maxBody: number): number {
  if (buf[off] !== MAGIC0 || buf[off + 1] !== MAGIC1)
    throw new FrameError('bad magic: not a clowder cluster connection');
  if (buf[off + 2] !== WIRE_VERSION)
    throw new FrameError(`unsupported wire version ${buf[off + 2]} (this node speaks ${WIRE_VERSION})`);
  const type = buf[off + 3]!;
  if (type < 1 || type > MAX_TYPE) throw new FrameError(`unknown frame type ${type}`);
  const body = ((buf[off + 6]! << 24) | (buf[off + 7]! << 16) | (buf[off + 8]! << 8) | buf[off + 9]!) >>> 0;
  if (body > maxBody) throw new FrameError(`frame of ${body} bytes exceeds maxFrameBytes ${maxBody}`);
  return body;
}

/**
 * Receives one frame: its type, flags and body (a view; valid until the handler returns unless
 * copied). `borrowed` is true when the body sits in the reader's reused assembly buffer: its bytes
 * are overwritten by a later frame, so whoever keeps it past the call must copy it. Otherwise the
 * body is a view of the pushed chunk and stays valid as long as the chunk does.
 */
export type FrameHandler = (type: FrameType, flags: number, body: Buffer, borrowed: boolean) => void;

/**
 * Whether a reader may assemble frames that span chunks in one reused buffer instead of a fresh
 * one each. The owner flips `reuse` while the reader runs (a channel whose handlers all borrow).
 */
export interface AssemblyPolicy {
  reuse: boolean;
}

/** A reused assembly buffer is kept only up to this size; larger frames get their own buffer. */
const REUSE_MAX_BYTES = 1024 * 1024;
/**
 * A frame's own buffer is allocated whole up to this size (a default 256 KiB fragment fits);
 * beyond, it starts here and doubles as bytes arrive, so a header claiming maxFrameBytes costs
 * what was actually sent, not what was claimed.
 */
const EAGER_BYTES = 256 * 1024 + 64;

/**
 * Incremental frame parser for one connection. `push` bytes as they arrive; whole frames go to the
 * handler in order. Throws {@link FrameError} on the first malformed header; the caller closes the
 * connection. Never buffers more than one frame's worth of bytes beyond `maxFrameBytes`.
 *
 * A frame inside one pushed chunk is delivered as a view of it. A frame that spans chunks (every
 * 64 KiB message: Node reads at most 64 KiB at a time) must be copied into one buffer; when the
 * policy allows, that buffer is reused rather than allocated per frame. Allocating it was most of
 * what a large message cost the receiver: hundreds of MB/s of fresh memory for the GC.
 */
export class FrameReader {
  #pending: Buffer | null = null; // partial frame (header known) being filled
  #filled = 0;
  #size = 0; // the pending frame's whole size (#pending may be shorter: it grows)
  #head: Buffer | null = null; // fewer than HEADER_BYTES bytes carried over
  #maxBody: number;
  #stopped = false;
  #scratch: Buffer | null = null; // the reused assembly buffer
  #pendingBorrowed = false; // #pending is #scratch
  readonly #onFrame: FrameHandler;
  readonly #policy: AssemblyPolicy | undefined;

  /** @param policy when given and `policy.reuse` is on, frames that span chunks share one buffer */
  constructor(maxFrameBytes: number, onFrame: FrameHandler, policy?: AssemblyPolicy) {
    this.#maxBody = maxFrameBytes;
    this.#onFrame = onFrame;
    this.#policy = policy;
  }

  /** Changes the body-size limit (a connection raises it once its hello completed). */
  setLimit(maxBody: number): void {
    this.#maxBody = maxBody;
  }

  /**
   * Parses no further: called from the handler, it makes the current {@link push} return the
   * bytes after the frame being delivered (a connection switching to sealed records).
   */
  stop(): void {
    this.#stopped = true;
  }

  /** True while a frame is partially received. */
  get midFrame(): boolean {
    return this.#pending !== null || this.#head !== null;
  }

  /** Parses `chunk`; returns what follows once {@link stop} was called (undefined otherwise). */
  push(chunk: Buffer): Buffer | undefined {
    if (this.#stopped) return chunk;
    let off = 0;
    const len = chunk.length;
    if (this.#head !== null) {
      // Complete the header with as few bytes as it needs (not a copy of the whole chunk).
      const head = this.#head;
      const need = HEADER_BYTES - head.length;
      if (len < need) {
        this.#head = Buffer.concat([head, chunk]);
        return undefined;
      }
      this.#head = null;
      const header = Buffer.concat([head, chunk.subarray(0, need)], HEADER_BYTES);
      off = need;
      const body = this.#checkHeader(header, 0);
      header.copy(this.#assembly(HEADER_BYTES + body), 0);
      this.#filled = HEADER_BYTES;
    }
    if (this.#pending !== null) {
      const n = Math.min(this.#size - this.#filled, len - off);
      if (this.#filled + n > this.#pending.length) this.#grow(this.#filled + n);
      const p = this.#pending;
      chunk.copy(p, this.#filled, off, off + n);
      this.#filled += n;
      off += n;
      if (this.#filled < this.#size) return undefined;
      this.#pending = null;
      this.#deliver(p, 0, this.#pendingBorrowed);
      if (this.#stopped) return chunk.subarray(off);
    }
    while (off < len) {
      if (len - off < HEADER_BYTES) {
        this.#head = chunk.subarray(off);
        return undefined;
      }
      const body = this.#checkHeader(chunk, off);
      const end = off + HEADER_BYTES + body;
      if (end <= len) {
        this.#deliver(chunk, off, false);
        off = end;
        if (this.#stopped) return chunk.subarray(off);
      } else {
        const p = this.#assembly(HEADER_BYTES + body);
        if (len - off > p.length) this.#grow(len - off);
        chunk.copy(this.#pending!, 0, off, len);
        this.#filled = len - off;
        return undefined;
      }
    }
    return undefined;
  }

  #checkHeader(buf: Buffer, off: number): number {
    return checkHeader(buf, off, this.#maxBody);
  }

  /**
   * Starts a frame of `size` bytes that spans chunks and returns its buffer (also #pending): the
   * reused one when allowed; otherwise its own, of `size` bytes or, for a large frame, a first part
   * that #grow enlarges.
   */
  #assembly(size: number): Buffer {
    this.#size = size;
    this.#filled = 0;
    this.#pending = this.#buffer(size);
    return this.#pending;
  }

  /** Enlarges #pending to hold at least `need` bytes (doubling), keeping what it holds. */
  #grow(need: number): void {
    const old = this.#pending!;
    const next = Buffer.allocUnsafe(Math.min(this.#size, Math.max(need, old.length * 2)));
    old.copy(next, 0, 0, this.#filled);
    this.#pending = next;
  }

  #buffer(size: number): Buffer {
    const reuse = this.#policy?.reuse === true;
    if (!reuse) this.#scratch = null; // reuse was switched off (a handler keeps messages): free it
    this.#pendingBorrowed = reuse && size <= REUSE_MAX_BYTES;
    if (!this.#pendingBorrowed) return Buffer.allocUnsafe(Math.min(size, EAGER_BYTES));
    let s = this.#scratch;
    if (s === null || s.length < size) {
      // Grow in steps, so a stream of slightly growing frames does not reallocate each time.
      s = Buffer.allocUnsafeSlow(Math.min(REUSE_MAX_BYTES, Math.max(size, (s?.length ?? 0) * 2)));
      this.#scratch = s;
    }
    return s.length === size ? s : s.subarray(0, size);
  }

  #deliver(buf: Buffer, off: number, borrowed: boolean): void {
    const type = buf[off + 3] as FrameType;
    const flags = buf.readUInt16BE(off + 4);
    const body = buf.readUInt32BE(off + 6);
    this.#onFrame(type, flags, buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + body), borrowed);
  }
}
