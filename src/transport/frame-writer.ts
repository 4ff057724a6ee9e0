/**
 * Batched, optionally sealed, writes for one socket. Frames pushed during one turn of the event
 * loop leave in one write (one syscall, Nagle off): many HTTP requests served in one turn share
 * one write per peer instead of one each. A batch leaves sooner once FLUSH_BYTES are queued, so a
 * sender that never yields cannot pile up an unbounded batch. With a cluster key the byte stream is cut into SEALED
 * records of at most RECORD_BYTES (a frame may span records: the receiver reads the unsealed
 * bytes as a stream), so sealing costs one cipher per record, not per message.
 */
import type { Socket } from 'node:net';
import type { RecordSealer } from '../wire/auth.js';
import { FrameType, HEADER_BYTES, writeHeader } from '../wire/frame.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Flush at once when this much is queued. */
const FLUSH_BYTES = 256 * 1024;
/**
 * Plaintext per sealed record: large enough to amortise the cipher set-up (a Node cipher object
 * costs several µs; at 64 KiB, MAC-only sealing and opening take half the CPU per byte they took at
 * 16 KiB), small enough to bound what a receiver buffers before it authenticates. A record carries
 * only what one flush has queued, so small messages still travel in small records.
 */
export const RECORD_BYTES = 64 * 1024;
/** Authenticating only: parts this large on average are written as they are; smaller ones are copied into one. */
const MAC_PARTS_ABOVE = 512;
/** Pieces smaller than this are copied together before sealing; larger ones are sealed in place. */
const COPY_BELOW = 16 * 1024;

export class FrameWriter {
  #queue: Buffer[] = [];
  #queued = 0;
  #scheduled = false;
  #waiters: Waiter[] = [];
  #sealer: RecordSealer | undefined;
  #closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly stats: { bytesOut: number },
  ) {}

  /** From now on, batches are sealed. */
  setSealer(sealer: RecordSealer | undefined): void {
    this.#sealer = sealer;
  }

  /** Bytes waiting here plus bytes the socket has not yet handed to the kernel. */
  get pendingBytes(): number {
    return this.#queued + this.socket.writableLength;
  }

  /** Queues bytes (whole frames, or a frame as header then payload) for the next flush. */
  push(bytes: Buffer): void {
    if (this.#closed) return;
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    if (this.#queued >= FLUSH_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(flushTick, this);
    }
  }

  /** Resolves once everything queued so far has been written to the socket. */
  whenWritten(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(flushTick, this);
      }
    });
  }

  /** Writes the queued bytes now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    const queue = this.#queue;
    const waiters = this.#waiters;
    if (queue.length === 0 && waiters.length === 0) return;
    this.#queue = [];
    this.#waiters = [];
    const total = this.#queued;
    this.#queued = 0;
    const done =
      waiters.length === 0
        ? undefined
        : (err?: Error | null) => {
            for (const w of waiters) err ? w.reject(err) : w.resolve();
          };
    if (queue.length === 0) {
      this.socket.write(EMPTY, done);
      return;
    }
    this.stats.bytesOut += total;
    const socket = this.socket;
    if (this.#sealer) {
      socket.cork();
      this.#writeSealed(queue, done);
      socket.uncork();
      return;
    }
    if (queue.length === 1) {
      socket.write(queue[0]!, done);
    } else if (total <= COPY_BELOW * 4 && queue.length > 2) {
      socket.write(Buffer.concat(queue, total), done);
    } else {
      socket.cork();
      const last = queue.length - 1;
      for (let i = 0; i < last; i++) socket.write(queue[i]!);
      socket.write(queue[last]!, done);
      socket.uncork();
    }
  }

  #writeSealed(queue: Buffer[], done: ((err?: Error | null) => void) | undefined): void {
    const sealer = this.#sealer!;
    const socket = this.socket;
    let i = 0;
    let offset = 0; // into queue[i]
    while (i < queue.length) {
      // Gather up to RECORD_BYTES of plaintext, as views (no copy yet).
      const parts: Buffer[] = [];
      let size = 0;
      while (i < queue.length && size < RECORD_BYTES) {
        const b = queue[i]!;
        const take = Math.min(b.length - offset, RECORD_BYTES - size);
        parts.push(offset === 0 && take === b.length ? b : b.subarray(offset, offset + take));
        size += take;
        offset += take;
        if (offset === b.length) {
          i++;
          offset = 0;
        }
      }
      // Encrypting: one cipher update over one copy beats an update (and an output buffer) per
      // part. Authenticating only: parts of a useful size are written as they are (the sealer
      // hashes them from its own scratch copy); many small ones are copied into one buffer first,
      // which is then one write instead of hundreds.
      const plain =
        parts.length > 1 && (sealer.encrypting || size < parts.length * MAC_PARTS_ABOVE)
          ? [Buffer.concat(parts, size)]
          : parts;
      const header = Buffer.allocUnsafe(HEADER_BYTES);
      writeHeader(header, 0, FrameType.SEALED, 0, size + TAG);
      const out = sealer.seal(plain, header);
      socket.write(header);
      const last = i >= queue.length;
      for (let k = 0; k < out.length; k++) socket.write(out[k]!, last && k === out.length - 1 ? done : undefined);
    }
  }

  /** Stops writing; rejects everyone waiting for a write. */
  close(err: Error): void {
    this.#closed = true;
    this.#queue = [];
    this.#queued = 0;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }
}

const EMPTY = Buffer.alloc(0);
const TAG = 16;

function flushTick(writer: FrameWriter): void {
  if (writer) writer.flush();
}
