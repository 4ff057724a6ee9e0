/**
 * Batched, optionally sealed, writes for one socket. Frames pushed during one tick leave in one
 * write (one syscall, Nagle off); with a cluster key each batch becomes SEALED records.
 */
import type { Socket } from 'node:net';
import type { RecordSealer } from '../wire/auth.js';
import { FrameType, HEADER_BYTES, writeHeader } from '../wire/frame.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class FrameWriter {
  #queue: Buffer[] = [];
  #queued = 0;
  #scheduled = false;
  #waiters: Waiter[] = [];
  #sealer: RecordSealer | undefined;
  #closed = false;
  /** Largest plaintext per sealed record (a record is one frame on the wire). */
  readonly #recordLimit: number;
  constructor(
    private readonly socket: Socket,
    recordLimit: number,
    private readonly stats: { bytesOut: number },
  ) {
    this.#recordLimit = recordLimit;
  }

  /** From now on, batches are sealed. */
  setSealer(sealer: RecordSealer | undefined): void {
    this.#sealer = sealer;
  }

  /** Bytes waiting here plus bytes the socket has not yet handed to the kernel. */
  get pendingBytes(): number {
    return this.#queued + this.socket.writableLength;
  }

  /** Queues a whole frame for the next flush (end of this tick). */
  push(frame: Buffer): void {
    if (this.#closed) return;
    this.#queue.push(frame);
    this.#queued += frame.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(flushTick, this);
    }
  }

  /** Resolves once everything queued so far has been written to the socket. */
  whenWritten(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      if (!this.#scheduled && this.#queue.length === 0) {
        this.#scheduled = true;
        process.nextTick(flushTick, this);
      }
    });
  }

  /** Writes the queued frames now. */
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
    if (this.#sealer) {
      this.#writeSealed(queue, total, done);
      return;
    }
    if (queue.length === 1) {
      this.socket.write(queue[0]!, done);
    } else if (total <= 65536) {
      this.socket.write(Buffer.concat(queue, total), done);
    } else {
      this.socket.cork();
      const last = queue.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(queue[i]!);
      this.socket.write(queue[last]!, done);
      this.socket.uncork();
    }
  }

  #writeSealed(queue: Buffer[], total: number, done: ((err?: Error | null) => void) | undefined): void {
    const sealer = this.#sealer!;
    let start = 0;
    while (start < queue.length) {
      let end = start;
      let bytes = 0;
      // Group whole frames up to the record limit (a single larger frame gets its own record).
      while (end < queue.length && (end === start || bytes + queue[end]!.length <= this.#recordLimit)) {
        bytes += queue[end]!.length;
        end++;
      }
      const plain = end - start === 1 ? queue[start]! : Buffer.concat(queue.slice(start, end), bytes);
      const header = Buffer.allocUnsafe(HEADER_BYTES);
      const [data, tag] = sealer.seal(plain, headerFor(header, plain.length));
      const last = end === queue.length;
      this.socket.write(Buffer.concat([header, data!, tag!]), last ? done : undefined);
      start = end;
    }
    void total;
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

function headerFor(header: Buffer, plainLength: number): Buffer {
  writeHeader(header, 0, FrameType.SEALED, 0, plainLength + TAG);
  return header;
}

function flushTick(writer: FrameWriter): void {
  writer.flush();
}
