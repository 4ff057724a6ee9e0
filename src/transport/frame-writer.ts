/**
 * Batched, optionally sealed, writes for one socket. Frames pushed during one turn of the event
 * loop leave in one write (one syscall, Nagle off): many HTTP requests served in one turn share
 * one write per peer instead of one each. A batch leaves sooner once FLUSH_BYTES are queued, so a
 * sender that never yields cannot pile up an unbounded batch. Small frames are copied into
 * reused slabs (write-slabs.ts) rather than written one by one; large ones go as they are. With a
 * cluster key the byte stream is cut into SEALED records of at most RECORD_BYTES (a frame may
 * span records: the receiver reads the unsealed bytes as a stream), so sealing costs one cipher
 * per record, not per message.
 */
import type { Socket } from 'node:net';
import { type RecordSealer, TAG_BYTES } from '../wire/auth.js';
import { FrameType, HEADER_BYTES, writeHeader } from '../wire/frame.js';
import { releaseSlab, SLAB_BYTES, takeSlab } from './write-slabs.js';

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
/** Pieces smaller than this are copied into a slab; larger ones are written (and sealed) where they are. */
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
    const done: WriteDone | undefined =
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
    if (queue.length === 1 && this.#sealer === undefined) {
      socket.write(queue[0]!, done);
      return;
    }
    socket.cork();
    if (this.#sealer) this.#writeSealed(this.#sealer, queue, done);
    else this.#writePlain(queue, done);
    socket.uncork();
  }

  /**
   * Runs of small frames are copied into slabs, one write each; a large frame, or a small one
   * alone between large ones (a header before its payload), is written as it is.
   */
  #writePlain(queue: Buffer[], done: WriteDone | undefined): void {
    const socket = this.socket;
    const n = queue.length;
    let i = 0;
    while (i < n) {
      const b = queue[i]!;
      if (b.length >= COPY_BELOW || i + 1 === n || queue[i + 1]!.length >= COPY_BELOW) {
        socket.write(b, i === n - 1 ? done : undefined);
        i++;
        continue;
      }
      // Two or more small frames: copy as many as fit into one slab.
      const slab = takeSlab();
      let used = 0;
      while (i < n) {
        const c = queue[i]!;
        if (c.length >= COPY_BELOW || used + c.length > SLAB_BYTES) break;
        slab.set(c, used);
        used += c.length;
        i++;
      }
      writeSlab(socket, slab, used, i === n ? done : undefined);
    }
  }

  #writeSealed(sealer: RecordSealer, queue: Buffer[], done: WriteDone | undefined): void {
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
      const cb = i >= queue.length ? done : undefined;
      if (parts.length === 1 || size >= parts.length * COPY_BELOW) {
        // Large pieces: sealed where they are (authenticating only, not even copied).
        const header = Buffer.allocUnsafe(HEADER_BYTES);
        writeHeader(header, 0, FrameType.SEALED, 0, size + TAG_BYTES);
        const out = sealer.seal(parts, header);
        socket.write(header);
        for (let k = 0; k < out.length; k++) socket.write(out[k]!, k === out.length - 1 ? cb : undefined);
        continue;
      }
      // Small pieces: header and data in one slab, sealed there (encrypted in place, tag after it).
      const slab = takeSlab();
      writeHeader(slab, 0, FrameType.SEALED, 0, size + TAG_BYTES);
      let end = HEADER_BYTES;
      for (const p of parts) {
        slab.set(p, end);
        end += p.length;
      }
      sealer.sealInPlace(slab, HEADER_BYTES, end);
      writeSlab(socket, slab, end + TAG_BYTES, cb);
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

type WriteDone = (err?: Error | null) => void;

const EMPTY = Buffer.alloc(0);

/** Writes the first `length` bytes of `slab`; the slab is reused once the write completed. */
function writeSlab(socket: Socket, slab: Buffer, length: number, done: WriteDone | undefined): void {
  socket.write(slab.subarray(0, length), slabDone(slab, done));
}

/** A write callback that gives `slab` back (then calls `done`): its bytes have left for the kernel. */
function slabDone(slab: Buffer, done: WriteDone | undefined): WriteDone {
  return (err) => {
    releaseSlab(slab);
    done?.(err);
  };
}

function flushTick(writer: FrameWriter): void {
  if (writer) writer.flush();
}
